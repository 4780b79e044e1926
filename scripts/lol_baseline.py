"""A classical baseline for LOL: one global gamma and gain, fitted on the training pairs.

    python scripts/lol_baseline.py --train_dir LOLdataset/our485 --test_dir LOLdataset/eval15

enhanced = round(255 * clip(gain * (low / 255) ** gamma, 0, 1)), the same gamma and gain for
every pixel, channel and image. The pair (gamma, gain) maximises the mean PSNR over the
training pairs (``--train_dir``: LOL's our485, or train/LOL; never the test pairs), found by a
grid search (gamma 0.05 to 2 in steps of 0.01, gain 0.5 to 40 in 400 log-spaced steps, then a
10x finer grid around the best) rather than by least squares in the log domain, which weights
the darkest, noisiest pixels most and ignores clipping. Because the curve acts on each 8-bit
value alone, every image's squared error for any (gamma, gain) comes exactly from three
256-bin sums per image (count, sum and sum of squares of the target values for each input
value), so the search sees every pixel of every pair.

The fitted curve is then scored on the test pairs (``--test_dir``: eval15, or test/LOL) with
the repository's PSNR and SSIM (``utils/metrics.py``: RGB, per image, averaged), on the full
600 x 400 images and, as test.py does by default, centre-cropped to multiples of 16
(592 x 400); the low input's own scores are printed beside. It gives learned models' LOL
numbers a floor: what a global tone curve alone recovers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.cli import ArgumentParser  # noqa: E402
from utils.degradations import crop_to_multiple  # noqa: E402
from utils.image_files import ImageReadError, read_image  # noqa: E402
from utils.metrics import psnr, ssim  # noqa: E402
from utils.pairing import LayoutError, find_pairs  # noqa: E402
from utils.paths import show_names_in_output  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402

GAMMAS = np.arange(0.05, 2.0 + 1e-9, 0.01)
GAINS = np.geomspace(0.5, 40.0, 400)
LEVELS = np.arange(256) / 255.0  # input values in [0, 1]


def pixel_statistics(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(3, 256) float64 for one pair of uint8 images: for each input value v, the number of
    pixels (channels counted apart) with low == v, the sum of their high values and of their
    squares (high in [0, 1])."""
    low, target = low.ravel(), high.ravel().astype(np.float64) / 255.0
    return np.stack(
        [
            np.bincount(low, minlength=256),
            np.bincount(low, weights=target, minlength=256),
            np.bincount(low, weights=target**2, minlength=256),
        ]
    )


def curve(gamma: float | np.ndarray, gain: float | np.ndarray) -> np.ndarray:
    """The 8-bit output of each input value, in [0, 1]: (..., 256) for broadcast arguments."""
    gamma, gain = np.asarray(gamma)[..., None], np.asarray(gain)[..., None]
    return np.round(np.clip(gain * LEVELS**gamma, 0.0, 1.0) * 255.0) / 255.0


def mean_psnr(outputs: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Mean PSNR over images (dB) of curves ``outputs`` (K, 256) on images ``stats``
    (N, 3, 256): (K,). MSE_i = sum_v count f(v)^2 - 2 f(v) sum + sum of squares."""
    counts, sums, squares = stats[:, 0], stats[:, 1], stats[:, 2]  # (N, 256) each
    squared_error = outputs**2 @ counts.T - 2 * outputs @ sums.T + squares.sum(axis=1)  # (K, N)
    mse = np.maximum(squared_error / counts.sum(axis=1), 1e-12)
    return (-10.0 * np.log10(mse)).mean(axis=1)


def _grid_best(stats: np.ndarray, gammas: np.ndarray, gains: np.ndarray):
    best = (-np.inf, 0.0, 0.0)
    for gamma in gammas:
        scores = mean_psnr(curve(gamma, gains), stats)
        index = int(np.argmax(scores))
        if scores[index] > best[0]:
            best = (float(scores[index]), float(gamma), float(gains[index]))
    return best


def fit_gamma_gain(stats: np.ndarray) -> tuple[float, float, float]:
    """(gamma, gain, mean training PSNR) maximising the mean PSNR of ``stats`` (N, 3, 256):
    the coarse grid (GAMMAS x GAINS), then a 10x finer grid around its best."""
    _, gamma, gain = _grid_best(stats, GAMMAS, GAINS)
    fine_gammas = np.arange(gamma - 0.01, gamma + 0.01 + 1e-9, 0.001)
    step = GAINS[1] / GAINS[0]
    fine_gains = gain * np.geomspace(1 / step, step, 21)
    score, gamma, gain = _grid_best(stats, fine_gammas[fine_gammas > 0], fine_gains)
    return gamma, gain, score


def enhance(low: np.ndarray, gamma: float, gain: float) -> np.ndarray:
    """Apply the fitted curve to a uint8 image: uint8, same shape."""
    return (curve(gamma, gain) * 255.0).round().astype(np.uint8)[low]


def score(pairs, gamma: float, gain: float, crop: bool) -> dict[str, float]:
    """Mean PSNR/SSIM of the low inputs and of their enhanced versions against the targets."""
    rows = []
    for pair in pairs:
        low, high = read_image(pair.degraded), read_image(pair.clean)
        if crop:
            low, high = crop_to_multiple(low, 16), crop_to_multiple(high, 16)
        out = enhance(low, gamma, gain)
        rows.append((psnr(low, high), ssim(low, high), psnr(out, high), ssim(out, high)))
    means = np.mean(rows, axis=0)
    return dict(zip(("in_psnr", "in_ssim", "psnr", "ssim"), map(float, means), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_dir", type=Path, required=True, help="LOL training pairs")
    parser.add_argument("--test_dir", type=Path, required=True, help="LOL test pairs (eval15)")
    args = parser.parse_args(argv)
    try:
        train = find_pairs("lowlight", args.train_dir, "train")
        test = find_pairs("lowlight", args.test_dir, "test")
        for what, scan in (("--train_dir", train), ("--test_dir", test)):
            for path, reason in scan.problems:
                print(f"{what}: skipped {path}: {reason}", file=sys.stderr)
            if not scan.pairs:
                raise LayoutError(f"{what} {scan.folder}: no low/high pair")
        stats = np.stack(
            [pixel_statistics(read_image(p.degraded), read_image(p.clean)) for p in train.pairs]
        )
        gamma, gain, train_psnr = fit_gamma_gain(stats)
        results = {crop: score(test.pairs, gamma, gain, crop) for crop in (False, True)}
    except (LayoutError, ImageReadError, OSError) as error:
        print(f"lol_baseline.py: {error}", file=sys.stderr)
        return 2
    print(
        f"fitted on {len(train.pairs)} training pairs: gamma {gamma:.3f}, gain {gain:.3f} "
        f"(training mean PSNR {train_psnr:.2f} dB)"
    )
    print(f"{'test pairs':<28} {'in PSNR':>8} {'in SSIM':>8} {'PSNR':>7} {'SSIM':>7}")
    for crop, result in results.items():
        label = f"{len(test.pairs)}, " + ("cropped to 16" if crop else "full size")
        print(
            f"{label:<28} {result['in_psnr']:8.2f} {result['in_ssim']:8.4f} "
            f"{result['psnr']:7.2f} {result['ssim']:7.4f}"
        )
    return 0


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
