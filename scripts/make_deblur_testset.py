"""Write the fixed synthetic-deblur test set: seeded camera-shake blur on clean test photos.

    python scripts/make_deblur_testset.py --clean_dir CBSD68/ \\
        --output ~/airnet_data/test/CBSD68_synthetic_blur

writes ``OUTPUT/input/NAME.png`` (blurred) + ``OUTPUT/target/NAME.png`` (the clean photo), the
layout test.py reads with ``--deblur_path``, plus ``OUTPUT/kernels.npz`` (each image's kernel)
and ``OUTPUT/proxy.json`` (what this set is and how it was made).

GoPro, the deblurring benchmark, is not available here: this set gives deblurring a number,
and every number on it names its proxy (the folder name says "synthetic_blur"). It is a TEST
set: never choose anything on it (validation blur comes from ``scripts/make_split.py
--val_deblur`` on held-out training photos). The blur is ``utils.synthetic.motion_blur``
(camera-shake trajectories after Boracchi & Foi, TIP 2012), one kernel per image drawn from
``numpy.random.default_rng([seed, crc32(file name)])``: an image's blur does not depend on the
other images, and the set is the same on every machine (up to 1 grey level of floating-point
rounding between FFT libraries; the kernels are recorded).
"""

from __future__ import annotations

import json
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.cli import SEED, ArgumentParser  # noqa: E402
from utils.image_files import ImageReadError, list_images, read_image, save_image  # noqa: E402
from utils.outputs import check_writable_folder  # noqa: E402
from utils.paths import name_bytes, show_names_in_output, shown, shown_all  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402
from utils.synthetic import blur_image, motion_kernel  # noqa: E402

PROXY = (
    "synthetic camera-shake motion blur (utils/synthetic.py motion_blur, after Boracchi & Foi, "
    "TIP 2012), one uniform kernel per image; a proxy for GoPro, not GoPro"
)


def image_rng(name: str, seed: int) -> np.random.Generator:
    """The generator of one image's kernel: a function of (seed, file name) only, the name
    hashed as its bytes on disk (a name that is not UTF-8 has its kernel too)."""
    return np.random.default_rng([seed, zlib.crc32(name_bytes(name))])


def output_stems(paths: list[Path]) -> list[str]:
    """One output stem per input: its stem, with its extension added where two inputs share a
    stem (``a.png``, ``a.jpg`` -> ``a_png``, ``a_jpg``), so no two write the same file."""
    counts = Counter(path.stem for path in paths)
    return [f"{p.stem}_{p.suffix[1:]}" if counts[p.stem] > 1 else p.stem for p in paths]


def write_testset(clean_dir: Path, output: Path, seed: int = 0) -> int:
    """Blur every image of ``clean_dir`` into ``output``; returns the number written.

    Raises FileNotFoundError when ``clean_dir`` is missing or holds no image, ImageReadError
    naming a file that cannot be read.
    """
    clean_paths = list_images(clean_dir)
    if not clean_paths:
        raise FileNotFoundError(f"--clean_dir {clean_dir}: no images")
    kernels = {}
    for path, stem in zip(clean_paths, output_stems(clean_paths), strict=True):
        clean = read_image(path)
        kernel = motion_kernel(image_rng(path.name, seed))
        save_image(output / "input" / f"{stem}.png", blur_image(clean, kernel))
        save_image(output / "target" / f"{stem}.png", clean)
        kernels[shown(stem)] = kernel  # the keys are names inside a zip: UTF-8
    np.savez_compressed(output / "kernels.npz", **kernels)
    record = {"proxy": PROXY, "source": str(clean_dir), "seed": seed, "images": len(kernels)}
    (output / "proxy.json").write_text(json.dumps(shown_all(record), indent=2) + "\n")
    return len(kernels)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clean_dir", type=Path, required=True, help="clean photos (CBSD68)")
    parser.add_argument("--output", type=Path, required=True, help="the test set's folder")
    parser.add_argument("--seed", type=SEED, default=0, help="keep 0: the published set")
    args = parser.parse_args(argv)
    try:
        check_writable_folder(args.output, "--output")
        count = write_testset(args.clean_dir, args.output, args.seed)
    except (FileNotFoundError, ImageReadError, OSError) as error:
        print(f"make_deblur_testset.py: {error}", file=sys.stderr)
        return 2
    print(f"{args.output}: {count} blurred/sharp pairs (input/, target/), seed {args.seed}")
    return 0


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
