"""PSNR and SSIM as the AirNet paper reports them.

RGB in [0, 1] after clipping, scikit-image's ``peak_signal_noise_ratio(data_range=1)`` and
``structural_similarity(data_range=1, channel_axis=-1)`` (7x7 uniform window), per image.
``y_channel=True`` measures the BT.601 luma instead, as many deraining papers do.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _as_float(image: np.ndarray) -> np.ndarray:
    """uint8 or float (H, W, 3) -> float64 in [0, 1], clipped."""
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] -> (H, W) Y of YCbCr (BT.601, studio range), in [0, 1]."""
    return (16.0 + image @ np.array([65.481, 128.553, 24.966])) / 255.0


def _prepare(restored: np.ndarray, target: np.ndarray, y_channel: bool):
    if restored.shape != target.shape:
        raise ValueError(f"shape mismatch: restored {restored.shape} vs target {target.shape}")
    restored, target = _as_float(restored), _as_float(target)
    if y_channel:
        return rgb_to_y(restored), rgb_to_y(target)
    return restored, target


def psnr(restored: np.ndarray, target: np.ndarray, y_channel: bool = False) -> float:
    """PSNR in dB (inf for identical images). Inputs: (H, W, 3), uint8 or float in [0, 1]."""
    restored, target = _prepare(restored, target, y_channel)
    if np.array_equal(restored, target):
        return float("inf")
    return float(peak_signal_noise_ratio(target, restored, data_range=1.0))


def ssim(restored: np.ndarray, target: np.ndarray, y_channel: bool = False) -> float:
    """Mean SSIM with a 7x7 uniform window. Inputs: (H, W, 3), uint8 or float in [0, 1]."""
    restored, target = _prepare(restored, target, y_channel)
    channel_axis = None if y_channel else -1
    return float(structural_similarity(target, restored, data_range=1.0, channel_axis=channel_axis))
