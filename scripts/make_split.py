"""Split training data into a training part and a held-out validation part, as folders.

    python scripts/make_split.py --clean_dir CBSD432/ --derain_dir Rain100L_train/ \\
        --output ~/airnet_data --val_clean 32 --val_derain 20

writes (symbolic links to the originals, nothing copied):

    OUTPUT/train/denoise/          clean photos for noise (and synthetic haze/rain)
    OUTPUT/train/derain/{rainy,gt}/ rainy/rain-N.png <-> gt/norain-N.png
    OUTPUT/val/denoise/             held-out clean photos (train.py adds seeded noise)
    OUTPUT/val/derain/{input,target}/
    OUTPUT/val/dehaze/{input,target}/  synthetic haze on the held-out photos, written as PNG:
                                    input/STEM_A_B.png <-> target/STEM.png, A and beta seeded

The held-out images are drawn by a seeded permutation, so the split is the same on every
machine. Model selection uses OUTPUT/val; the test sets stay untouched.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.image_io import list_images, read_image, save_image  # noqa: E402
from utils.synthetic import ATMOSPHERE_RANGE, BETA_RANGE, add_haze  # noqa: E402
from utils.train_dataset import derain_partner  # noqa: E402


def held_out(items: list[Path], count: int, seed: int) -> set[Path]:
    """``count`` items drawn by a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(items))
    return {items[index] for index in order[:count]}


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(source.resolve())


def write_val_haze(clean_path: Path, folder: Path, seed: int) -> None:
    """A hazy copy of one held-out photo, A and beta seeded by (seed, file name)."""
    rng = np.random.default_rng([seed, zlib.crc32(clean_path.name.encode())])
    atmosphere = round(float(rng.uniform(*ATMOSPHERE_RANGE)), 2)
    beta = round(float(rng.uniform(*BETA_RANGE)), 3)
    clean = read_image(clean_path)
    save_image(
        folder / "input" / f"{clean_path.stem}_{atmosphere}_{beta}.png",
        add_haze(clean, atmosphere, beta),
    )
    save_image(folder / "target" / f"{clean_path.stem}.png", clean)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clean_dir", type=Path, required=True, help="clean photos")
    parser.add_argument("--derain_dir", type=Path, help="rainy/rain-N.png + gt/norain-N.png")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--val_clean", type=int, default=32, help="held-out clean photos")
    parser.add_argument("--val_derain", type=int, default=20, help="held-out rain pairs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    clean = list_images(args.clean_dir)
    val_clean = held_out(clean, args.val_clean, args.seed)
    for path in clean:
        part = "val" if path in val_clean else "train"
        link(path, args.output / part / "denoise" / path.name)
        if part == "val":
            write_val_haze(path, args.output / "val" / "dehaze", args.seed)
    counts = [f"clean {len(clean) - len(val_clean)} train / {len(val_clean)} val"]

    if args.derain_dir is not None:
        rainy = list_images(args.derain_dir / "rainy")
        val_rain = held_out(rainy, args.val_derain, args.seed)
        for path in rainy:
            gt = derain_partner(path)
            if path in val_rain:
                link(path, args.output / "val" / "derain" / "input" / path.name)
                link(gt, args.output / "val" / "derain" / "target" / path.name)
            else:
                link(path, args.output / "train" / "derain" / "rainy" / path.name)
                link(gt, args.output / "train" / "derain" / "gt" / gt.name)
        counts.append(f"rain pairs {len(rainy) - len(val_rain)} train / {len(val_rain)} val")
    print(f"{args.output}: " + ", ".join(counts) + ", synthetic haze on the val photos")


if __name__ == "__main__":
    main()
