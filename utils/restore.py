"""Restore one image with AirNet, whole or tile by tile.

``restore(image, model)`` takes and returns uint8 RGB (H, W, 3) of any size (no cropping).
With ``tile=N`` the image is processed in N x N tiles that overlap by ``tile_overlap`` pixels and
are blended with a smooth window, so memory is bounded by the tile size and no seams show.
Without ``tile``, the whole image runs at once unless the free memory of the device would not
hold it (or the device runs out of memory): then a tile size is chosen automatically.

AirNet's restorer sees far (50 deformable and many plain 3x3 convs), so a tiled result differs
slightly from the whole-image result near tile edges; the blending hides this.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import torch
import torch.nn as nn

from utils.image_io import image_to_tensor, tensor_to_image

logger = logging.getLogger(__name__)

# Peak inference memory per input pixel and per channel of n_feats: measured 64 bytes on CPU
# (torchvision's deform_conv2d im2col buffer dominates: 4.1 KB/pixel at n_feats=64); doubled
# for safety and for allocator overhead on CUDA.
BYTES_PER_PIXEL_PER_FEAT = 128
# Share of the free memory an automatic tile size may plan to use.
MEMORY_SHARE = 0.6
MIN_TILE = 64
# --precision: float32 (the paper's), or autocast to 16 bits (the DCN itself stays float32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu', 'cuda' or 'cuda:N' as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name}: expected auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    return device


def warn_if_slow_precision(precision: str, device: torch.device) -> None:
    """float16 autocast on CPU runs many ops in slow paths (measured 30x slower than fp32)."""
    if precision == "fp16" and device.type == "cpu":
        logger.warning("--precision fp16 is very slow on CPU; use fp32 (or bf16) there")


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes, or None when it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu" and hasattr(os, "sysconf"):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    return None


def estimated_bytes(height: int, width: int, n_feats: int) -> int:
    """Rough peak memory of one eval forward pass on an (height, width) input."""
    return height * width * n_feats * BYTES_PER_PIXEL_PER_FEAT


def auto_tile_size(
    height: int,
    width: int,
    n_feats: int,
    free_bytes: int | None,
    tile_overlap: int = 32,
) -> int | None:
    """The largest tile (a multiple of 16) whose forward pass fits in ``free_bytes``.

    Returns None when the whole image fits (or the free memory is unknown).
    """
    if free_bytes is None:
        return None
    budget = free_bytes * MEMORY_SHARE
    if estimated_bytes(height, width, n_feats) <= budget:
        return None
    tile = int(math.sqrt(budget / (n_feats * BYTES_PER_PIXEL_PER_FEAT))) // 16 * 16
    return max(tile, MIN_TILE, 2 * tile_overlap + 16)


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets so that tiles of size ``tile`` cover [0, length), the last one flush."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def _ramp(size: int, overlap: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """1-D blending weights: raised-cosine ramps of ``overlap`` pixels on faded sides, else 1.

    Sides on the image border are not faded; weights never reach 0, so every pixel is covered.
    """
    weights = torch.ones(size)
    width = min(overlap, size // 2)
    if width > 0:
        ramp = torch.sin(0.5 * math.pi * (torch.arange(width) + 0.5) / width) ** 2
        if fade_start:
            weights[:width] = ramp
        if fade_end:
            weights[size - width :] = ramp.flip(0)
    return weights


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return "out of memory" in message or "can't allocate memory" in message


def _forward(x: torch.Tensor, model: nn.Module, precision: str) -> torch.Tensor:
    """model(x) under autocast to ``precision``, returned as float32 on the CPU."""
    dtype = PRECISIONS[precision]
    with torch.inference_mode(), torch.autocast(x.device.type, dtype, enabled=dtype is not None):
        return model(x).float().cpu()


def _forward_tiled(
    x: torch.Tensor, model: nn.Module, tile: int, tile_overlap: int, precision: str = "fp32"
) -> torch.Tensor:
    """x: (1, 3, H, W) on the model's device -> (1, 3, H, W) float32 on the CPU, unclamped."""
    _, channels, height, width = x.shape
    stride = tile - tile_overlap
    output = torch.zeros(1, channels, height, width)
    weight_sum = torch.zeros(1, 1, height, width)
    for top in _tile_starts(height, tile, stride):
        for left in _tile_starts(width, tile, stride):
            bottom, right = min(top + tile, height), min(left + tile, width)
            patch = _forward(x[:, :, top:bottom, left:right], model, precision)  # (1, 3, th, tw)
            ramp_y = _ramp(bottom - top, tile_overlap, top > 0, bottom < height)
            ramp_x = _ramp(right - left, tile_overlap, left > 0, right < width)
            window = ramp_y[:, None] * ramp_x[None, :]  # (th, tw)
            output[:, :, top:bottom, left:right] += patch * window
            weight_sum[:, :, top:bottom, left:right] += window
    return output / weight_sum


def restore_tensor(
    x: torch.Tensor,
    model: nn.Module,
    tile: int | None = None,
    tile_overlap: int = 32,
    precision: str = "fp32",
) -> torch.Tensor:
    """Run ``model`` (in eval mode) on x: (1, 3, H, W) in [0, 1] -> (1, 3, H, W) float on CPU.

    The output is not clamped, so metrics can follow the official protocol (clip, then score).

    Args:
        x: the degraded image; moved to the model's device.
        model: AirNet (or any image-to-image module), already in eval mode.
        tile: tile size in pixels; None runs the whole image unless memory would not suffice.
        tile_overlap: pixels shared by neighbouring tiles, blended with a raised-cosine window.
        precision: "fp32", or "bf16"/"fp16" autocast (mostly for CUDA; see ``PRECISIONS``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if tile is not None and tile <= tile_overlap:
        raise ValueError(f"tile ({tile}) must be larger than tile_overlap ({tile_overlap})")
    device = model_device(model)
    x = x.to(device)
    height, width = x.shape[-2:]
    if tile is None:
        n_feats = getattr(model, "config", {}).get("n_feats", 64)
        tile = auto_tile_size(height, width, n_feats, free_memory_bytes(device), tile_overlap)
        if tile is not None:
            logger.info("%dx%d image would not fit in memory: tiles of %d", width, height, tile)
    if tile is not None and tile < max(height, width):
        return _forward_tiled(x, model, tile, tile_overlap, precision)
    try:
        return _forward(x, model, precision)
    except (RuntimeError, torch.OutOfMemoryError) as error:
        if not _is_out_of_memory(error) or max(height, width) <= MIN_TILE:
            raise
    # Out of memory on the whole image: halve the tile until it fits.
    if device.type == "cuda":
        torch.cuda.empty_cache()
    tile = max(MIN_TILE, 2 * tile_overlap + 16, 2 ** int(math.log2(max(height, width) - 1)))
    while True:
        logger.info("out of memory on a %dx%d image: trying tiles of %d", width, height, tile)
        try:
            return _forward_tiled(x, model, tile, tile_overlap, precision)
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if not _is_out_of_memory(error) or tile <= max(MIN_TILE, 2 * tile_overlap + 16):
                raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        tile //= 2


def restore(
    image: np.ndarray,
    model: nn.Module,
    tile: int | None = None,
    tile_overlap: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Restore a uint8 RGB image (H, W, 3) and return uint8 (H, W, 3) of the same size.

    Args:
        image: uint8 array (H, W, 3), RGB.
        model: AirNet in eval mode (see ``net.load_airnet``).
        tile: tile size in pixels for large images; None = whole image, or automatic tiles when
            the device's free memory would not suffice.
        tile_overlap: overlap of neighbouring tiles in pixels.
        device: run on this device (the model is moved there); None = where the model is.
        precision: "fp32" (default, as the paper), or "bf16"/"fp16" autocast.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {image.dtype} {image.shape}")
    if device is not None:
        model.to(device)
    restored = restore_tensor(image_to_tensor(image), model, tile, tile_overlap, precision)
    return tensor_to_image(restored)
