"""Fingerprints of test images, and test content in training data.

Decision 13: a file shipped in ``ckpt/`` never trains or validates on an image whose content is
in a test set we report. The case that made the rule: 67 of the 432 CBSD432 photos (the clean
photos of our noise training) are, pixel for pixel, the backgrounds of 75 of the 100 Rain100L
test pairs (e.g. Rain100L test ``1.png``'s target is CBSD432 ``100075.jpg``).

The comparison is of decoded pixels: an image is identified by the SHA-256 of its shape and its
uint8 RGB values, so the same image in another container (a JPEG's pixels saved as PNG) still
matches, while a crop, a resize or a re-encoding with loss does not.

``scripts/make_split.py --exclude_test`` leaves such images out of the split it writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from utils.image_files import ImageReadError, images_under, read_image


def pixel_digest(image: np.ndarray) -> str:
    """SHA-256 (hex) of a uint8 (H, W, 3) image's shape and pixel values.

    Raises:
        ValueError: ``image`` is not uint8 (H, W, 3).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    digest = hashlib.sha256(np.asarray(image.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def digests_of_test_sets(test_folders: Iterable[Path]) -> dict[str, Path]:
    """Pixel digest -> the first test image with those pixels, over every image under
    ``test_folders`` (both sides of pairs: inputs and targets).

    Raises:
        FileNotFoundError: a folder is missing.
        ImageReadError: a test image cannot be read (a test set must be whole to be checked).
    """
    digests: dict[str, Path] = {}
    for folder in test_folders:
        for path in images_under(Path(folder)):
            digests.setdefault(pixel_digest(read_image(path)), path)
    return digests


def find_test_content(images: Iterable[Path], digests: dict[str, Path]) -> dict[Path, Path]:
    """Training image -> the test image it equals, for each of ``images`` whose decoded pixels
    are those of a test image. An unreadable training image is not test content (training
    names it when it skips it)."""
    matches = {}
    for path in images:
        try:
            digest = pixel_digest(read_image(path))
        except ImageReadError:
            continue
        if digest in digests:
            matches[Path(path)] = digests[digest]
    return matches
