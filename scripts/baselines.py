"""Classical baselines under test.py's protocol: CBM3D for noise, the dark channel prior for haze.

    pip install -r requirements-tools.txt      # bm3d (and matplotlib for card_figures.py)
    python scripts/baselines.py --denoise_path CBSD68/ --images 10 --dehaze_path SOTS_outdoor/

Same crops (multiple of 16), same seeded noise (``noise_rng(name, sigma, seed)``) and the same
PSNR/SSIM as test.py, so the numbers sit beside a network's in one table. CBM3D (Dabov et al.,
ICIP 2007, the ``bm3d`` package) takes about a minute per 481x321 image on one core: use
``--images`` for a fixed subset (the first N images by name). The dark channel prior (He et al.,
CVPR 2009) is written here: 15x15 dark channel, airlight from its brightest 0.1 %,
t = 1 - 0.95 dark(I / A), refined by a guided filter (radius 60, eps 1e-3), t >= 0.1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import minimum_filter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.cli import SEED, SIGMA, ArgumentParser, Range  # noqa: E402
from utils.degradations import add_gaussian_noise, crop_to_multiple, noise_rng  # noqa: E402
from utils.eval_dataset import LayoutError, find_dehaze_sets, find_denoise_sets  # noqa: E402
from utils.image_io import ImageReadError, read_image  # noqa: E402
from utils.metrics import psnr, ssim  # noqa: E402
from utils.optional import require  # noqa: E402
from utils.outputs import OutputError, check_writable_file, writing  # noqa: E402
from utils.paths import show_names_in_output, shown_all  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402
from utils.synthetic import box_blur  # noqa: E402


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """CBM3D of a uint8 (H, W, 3) image with noise sigma (0-255 scale) -> float (H, W, 3) in
    [0, 1]."""
    import bm3d  # optional: requirements-tools.txt

    return bm3d.bm3d_rgb(noisy.astype(np.float64) / 255.0, sigma / 255.0)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide (H, W) and source (H, W), both float."""
    mean_g, mean_s = box_blur(guide, radius), box_blur(source, radius)
    cov = box_blur(guide * source, radius) - mean_g * mean_s
    var = box_blur(guide * guide, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return box_blur(a, radius) * guide + box_blur(b, radius)


def dark_channel_prior(hazy: np.ndarray, patch: int = 15, omega: float = 0.95) -> np.ndarray:
    """Dehaze a uint8 (H, W, 3) image -> float (H, W, 3) in [0, 1]."""
    image = hazy.astype(np.float32) / 255.0
    dark = minimum_filter(image.min(axis=2), size=patch)
    brightest = np.argsort(dark.ravel())[-max(1, dark.size // 1000) :]
    airlight = image.reshape(-1, 3)[brightest].max(axis=0)  # (3,)
    normalised_dark = minimum_filter((image / airlight).min(axis=2), size=patch)
    transmission = 1.0 - omega * normalised_dark
    transmission = guided_filter(image.mean(axis=2), transmission, radius=60, eps=1e-3)
    transmission = np.maximum(transmission, 0.1)[..., None]
    return np.clip((image - airlight) / transmission + airlight, 0.0, 1.0)


def score(restored: np.ndarray, degraded: np.ndarray, target: np.ndarray) -> dict[str, float]:
    return {
        "psnr": psnr(restored, target),
        "ssim": ssim(restored, target),
        "input_psnr": psnr(degraded, target),
        "input_ssim": ssim(degraded, target),
    }


def summarise(name: str, task: str, scores: list[dict[str, float]], seconds: float) -> dict:
    means = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
    return {"set": name, "task": task, **means, "images": len(scores), "seconds": seconds}


def run_cbm3d(paths: list[Path], sigmas: list[int], images: int, seed: int) -> list[dict]:
    results = []
    for image_set in find_denoise_sets(paths):
        pairs = image_set.pairs[:images] if images else image_set.pairs
        for sigma in sigmas:
            start, scores = time.perf_counter(), []
            for pair in pairs:
                clean = crop_to_multiple(read_image(pair.target), 16)
                noisy = add_gaussian_noise(clean, sigma, noise_rng(pair.name, sigma, seed))
                scores.append(score(cbm3d(noisy, sigma), noisy, clean))
                print(f"  {pair.name} sigma {sigma}: {scores[-1]['psnr']:.2f} dB", flush=True)
            elapsed = time.perf_counter() - start
            results.append(summarise(image_set.name, f"CBM3D denoise_{sigma}", scores, elapsed))
    return results


def run_dcp(paths: list[Path]) -> list[dict]:
    results = []
    for image_set in find_dehaze_sets(paths):
        start, scores = time.perf_counter(), []
        for pair in image_set.pairs:
            hazy = crop_to_multiple(read_image(pair.degraded), 16)
            clean = crop_to_multiple(read_image(pair.target), 16)
            scores.append(score(dark_channel_prior(hazy), hazy, clean))
        elapsed = time.perf_counter() - start
        results.append(summarise(image_set.name, "DCP dehaze", scores, elapsed))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--denoise_path", type=Path, nargs="*", default=[])
    parser.add_argument("--sigmas", type=SIGMA, nargs="+", default=[15, 25, 50])
    parser.add_argument(
        "--images", type=Range(int, 0, 10**6), default=0, help="first N images per set (0: all)"
    )
    parser.add_argument("--dehaze_path", type=Path, nargs="*", default=[])
    parser.add_argument("--seed", type=SEED, default=0, help="test.py's --seed")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.denoise_path:  # before the dehazing runs, not after
        require("bm3d", "requirements-tools.txt")
    try:
        if args.output:  # before hours of BM3D
            check_writable_file(args.output, "--output")
        results = run_dcp(args.dehaze_path) if args.dehaze_path else []
        if args.denoise_path:
            results += run_cbm3d(args.denoise_path, args.sigmas, args.images, args.seed)
    except (LayoutError, ImageReadError, OutputError) as error:  # a missing folder, a bad file
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{'set':<14} {'method / task':<20} {'PSNR':>7} {'SSIM':>7} {'in PSNR':>8} {'images':>6}")
    for r in results:
        print(
            f"{r['set']:<14} {r['task']:<20} {r['psnr']:>7.2f} {r['ssim']:>7.4f} "
            f"{r['input_psnr']:>8.2f} {r['images']:>6d}"
        )
    if args.output:
        try:
            with writing(args.output):
                args.output.write_text(json.dumps(shown_all(results), indent=2) + "\n")
        except OutputError as error:  # the disk filled up meanwhile
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
