"""Synthetic degradations and the geometric augmentations of the official pipeline."""

from __future__ import annotations

import zlib

import numpy as np

from utils.paths import name_bytes


def noise_rng(name: str, sigma: int, seed: int = 0) -> np.random.Generator:
    """The generator of one image's test noise: a function of (seed, file name, sigma) only,
    so an image gets the same noise whatever other images are tested, in any order. The name
    is hashed as its bytes on disk (``utils.paths.name_bytes``), so a name that is not UTF-8
    has its noise too."""
    return np.random.default_rng([seed, zlib.crc32(name_bytes(name)), sigma])


def add_gaussian_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """clip(clean + N(0, 1) * sigma, 0, 255), truncated to uint8, as the official code does."""
    noise = rng.standard_normal(clean.shape)
    return np.clip(clean + noise * sigma, 0, 255).astype(np.uint8)


def crop_to_multiple(image: np.ndarray, base: int = 16) -> np.ndarray:
    """Centre-crop (H, W, ...) so that H and W are multiples of ``base`` (official crop_img)."""
    h, w = image.shape[:2]
    crop_h, crop_w = h % base, w % base
    top, left = crop_h // 2, crop_w // 2
    return image[top : h - crop_h + top, left : w - crop_w + left]


def dihedral(image: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 flips/rotations of the square: mode 0 is the identity.

    Modes 1-7: flipud, rot90, rot90+flipud, rot180, rot180+flipud, rot270, rot270+flipud.
    """
    if not 0 <= mode <= 7:
        raise ValueError(f"dihedral mode must be in 0..7, got {mode}")
    out = np.rot90(image, k=mode // 2)
    if mode % 2 == 1:
        out = np.flipud(out)
    return np.ascontiguousarray(out)


def random_dihedral(rng: np.random.Generator, *images: np.ndarray) -> tuple[np.ndarray, ...]:
    """Apply the same random non-identity transform (modes 1-7, as official) to all images."""
    mode = int(rng.integers(1, 8))
    return tuple(dihedral(image, mode) for image in images)
