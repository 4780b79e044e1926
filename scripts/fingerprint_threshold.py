"""Measure the pHash distances that set utils/fingerprints.py's PERCEPTUAL_THRESHOLD.

    python scripts/fingerprint_threshold.py --copies test/CBSD68 \\
        --different train/CBSD432 test/CBSD68 test/SOTS_outdoor/target \\
        --pairs derain:test/Rain100L dehaze:test/SOTS_outdoor

prints markdown tables of distances in bits (of utils/fingerprints.HASH_BITS), each the
nearest of a query's 8 orientations, as the check computes them:

- ``--copies DIR``: every image against changed copies of itself (re-encoded, resized,
  flipped, turned, grey, cropped): what the check must find (crops and small rotations
  excepted);
- ``--different A B ...``: every image of each folder against every image of the others,
  folders that hold different photos (pairs with equal pixels left out): the negative control,
  what it must not find;
- ``--pairs TYPE:DIR``: each degraded test input against its own clean target, paired as
  test.py pairs them: how far a rainy or hazy copy of a photo is from the photo.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.fingerprints import (  # noqa: E402
    HASH_BITS,
    PERCEPTUAL_THRESHOLD,
    ImageHashes,
    hash_image,
    images_under,
    perceptual_distances,
)
from utils.image_files import read_image  # noqa: E402
from utils.pairing import find_pairs  # noqa: E402

LOWEST = 6  # histogram bins shown


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def centre_crop(image: np.ndarray, keep: float) -> np.ndarray:
    height, width = image.shape[:2]
    top, left = round(height * (1 - keep) / 2), round(width * (1 - keep) / 2)
    return image[top : height - top, left : width - left]


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).rotate(degrees, Image.Resampling.BICUBIC))


def grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(Image.fromarray(image).convert("L"))[..., None], 3, axis=2)


COPIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "JPEG quality 90": lambda x: jpeg(x, 90),
    "JPEG quality 50": lambda x: jpeg(x, 50),
    "JPEG quality 20": lambda x: jpeg(x, 20),
    "resized x0.5 (bicubic)": lambda x: resize(x, 0.5),
    "resized x0.25": lambda x: resize(x, 0.25),
    "resized x2": lambda x: resize(x, 2),
    "resized x0.5, JPEG 75": lambda x: jpeg(resize(x, 0.5), 75),
    "flipped left-right": lambda x: x[:, ::-1],
    "turned 90 degrees": np.rot90,
    "turned 270 degrees, JPEG 75": lambda x: jpeg(np.rot90(x, 3), 75),
    "grey": grey,
    "turned 2 degrees (bicubic)": lambda x: rotate(x, 2),
    "turned 5 degrees (not caught)": lambda x: rotate(x, 5),
    "centre crop 95 % (not caught)": lambda x: centre_crop(x, 0.95),
    "centre crop 90 % (not caught)": lambda x: centre_crop(x, 0.90),
}


def histogram(distances: np.ndarray) -> str:
    """``distance: count`` of the LOWEST smallest distances."""
    counts = sorted(Counter(distances.ravel().tolist()).items())[:LOWEST]
    return ", ".join(f"{d}: {n}" for d, n in counts)


def measure_copies(folder: Path) -> None:
    """The table of ``--copies``: each COPIES change of every image against the image."""
    paths = images_under(folder)
    images = [read_image(path) for path in paths]
    originals = [hash_image(image).phashes[0] for image in images]
    print(f"\nCopies of the {len(images)} images of {folder} (distance to the original)\n")
    print("| copy | max | mean | lowest distances: count |")
    print("| --- | ---: | ---: | --- |")
    for name, change in COPIES.items():
        copies = [hash_image(np.ascontiguousarray(change(image))) for image in images]
        distances = np.diag(perceptual_distances(copies, originals))
        print(f"| {name} | {distances.max()} | {distances.mean():.1f} | {histogram(distances)} |")


def hashed(folder: Path) -> tuple[list[Path], list[ImageHashes]]:
    """The images under ``folder`` and their hashes."""
    paths = images_under(folder)
    return paths, [hash_image(read_image(path)) for path in paths]


def measure_different(folders: list[Path]) -> None:
    """The table of ``--different``: every image of each folder against the others'."""
    start = time.perf_counter()
    sets = [hashed(folder) for folder in folders]
    count = sum(len(paths) for paths, _ in sets)
    seconds = time.perf_counter() - start
    print(f"\nDifferent photos: {count} images hashed in {seconds:.1f} s\n")
    print("| A | B | pairs | min | lowest distances: count | nearest pair | within threshold |")
    print("| --- | --- | ---: | ---: | --- | --- | ---: |")
    for i, (paths_a, hashes_a) in enumerate(sets):
        for j in range(i + 1, len(sets)):
            paths_b, hashes_b = sets[j]
            distances = perceptual_distances(hashes_a, [h.phashes[0] for h in hashes_b])
            equal = np.array([[a.pixels == b.pixels for b in hashes_b] for a in hashes_a])
            distances = np.where(equal, HASH_BITS, distances)  # the same image is no control
            a, b = np.unravel_index(distances.argmin(), distances.shape)
            within = int((distances <= PERCEPTUAL_THRESHOLD).sum())
            print(
                f"| {folders[i]} | {folders[j]} | {distances.size - int(equal.sum())} | "
                f"{distances.min()} | {histogram(distances)} | {paths_a[a].name} ~ "
                f"{paths_b[b].name} | {within} |"
            )


def measure_pairs(specs: list[str]) -> None:
    """The table of ``--pairs``: each degraded test input against its own target."""
    print("\nDegraded test inputs against their own targets\n")
    print("| set | pairs | min | median | max | within threshold |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for spec in specs:
        task, folder = spec.split(":", 1)
        pairs = find_pairs(task, folder, "test").pairs
        degraded = [hash_image(read_image(pair.degraded)) for pair in pairs]
        clean = [hash_image(read_image(pair.clean)).phashes[0] for pair in pairs]
        distances = np.diag(perceptual_distances(degraded, clean))
        within = int((distances <= PERCEPTUAL_THRESHOLD).sum())
        print(
            f"| {folder} | {len(pairs)} | {distances.min()} | {int(np.median(distances))} | "
            f"{distances.max()} | {within} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=Path, help="images to copy with changes")
    parser.add_argument(
        "--different", type=Path, nargs="+", default=[], help="folders of different photos"
    )
    parser.add_argument(
        "--pairs", nargs="+", default=[], metavar="TYPE:DIR", help="paired test sets"
    )
    args = parser.parse_args(argv)
    print(f"threshold: {PERCEPTUAL_THRESHOLD} of {HASH_BITS} bits")
    if args.copies:
        measure_copies(args.copies)
    if args.different:
        measure_different(args.different)
    if args.pairs:
        measure_pairs(args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
