"""Restore one image with AirNet, whole or tile by tile.

``restore(image, model)`` takes and returns uint8 RGB (H, W, 3) of any size (no cropping).
With ``tile=N`` the image is processed in N x N tiles that overlap by ``tile_overlap`` pixels and
are blended with a smooth window, so memory is bounded by the tile size and no seams show.
Without ``tile``, the whole image runs at once unless the free memory of the device would not
hold it (or the device runs out of memory): then a tile size is chosen automatically.

Tile planning, blending and the memory estimate are ``utils.tiling``'s (numpy only), shared with
the ONNX Runtime path ``restore_onnx.py``.

AirNet's restorer sees far (50 deformable and many plain 3x3 convs), so a tiled result differs
slightly from the whole-image result near tile edges; the blending hides this.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn as nn

from utils.image_io import image_to_tensor, tensor_to_image
from utils.tiling import (
    BYTES_PER_PIXEL_PER_FEAT,
    MEMORY_SHARE,
    MIN_TILE,
    Box,
    auto_tile_size,
    available_memory_bytes,
    check_tile,
    estimated_bytes,
    min_tile,
    run_tiled,
)

__all__ = [
    "BYTES_PER_PIXEL_PER_FEAT",
    "MEMORY_SHARE",
    "MIN_TILE",
    "PRECISIONS",
    "auto_tile_size",
    "estimated_bytes",
    "free_memory_bytes",
    "resolve_device",
    "restore",
    "restore_tensor",
    "warn_if_slow_precision",
]

logger = logging.getLogger(__name__)

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
    """Free memory on ``device`` in bytes, or None when it cannot be told.

    CUDA: the driver's free memory. CPU: MemAvailable, or the memory cgroup's remaining limit
    when smaller (``utils.tiling.available_memory_bytes``).
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        return available_memory_bytes()
    return None


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
    height, width = x.shape[-2:]

    def forward(box: Box) -> np.ndarray:
        top, bottom, left, right = box
        return _forward(x[:, :, top:bottom, left:right], model, precision).numpy()

    return torch.from_numpy(run_tiled(forward, height, width, tile, tile_overlap, x.shape[1]))


def _forward_falling_back(
    x: torch.Tensor, model: nn.Module, tile_overlap: int, precision: str
) -> tuple[torch.Tensor, int | None]:
    """The whole image; on out-of-memory, tiles halved until they fit. Returns (out, tile)."""
    height, width = x.shape[-2:]
    try:
        return _forward(x, model, precision), None
    except (RuntimeError, torch.OutOfMemoryError) as error:
        if not _is_out_of_memory(error) or max(height, width) <= MIN_TILE:
            raise
    device = x.device
    if device.type == "cuda":
        torch.cuda.empty_cache()
    smallest = min_tile(tile_overlap)
    tile = max(smallest, 2 ** int(math.log2(max(height, width) - 1)))
    while True:
        logger.info("out of memory on a %dx%d image: trying tiles of %d", width, height, tile)
        try:
            return _forward_tiled(x, model, tile, tile_overlap, precision), tile
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if not _is_out_of_memory(error) or tile <= smallest:
                raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        tile //= 2


def restore_tensor(
    x: torch.Tensor,
    model: nn.Module,
    tile: int | None = None,
    tile_overlap: int = 32,
    precision: str = "fp32",
    auto_tile: bool = True,
    report: dict | None = None,
) -> torch.Tensor:
    """Run ``model`` (in eval mode) on x: (1, 3, H, W) in [0, 1] -> (1, 3, H, W) float on CPU.

    The output is not clamped, so metrics can follow the official protocol (clip, then score).

    Args:
        x: the degraded image; moved to the model's device.
        model: AirNet (or any image-to-image module), already in eval mode.
        tile: tile size in pixels, larger than ``tile_overlap``; None or 0 runs the whole image
            unless memory would not suffice.
        tile_overlap: pixels shared by neighbouring tiles (0 or more), blended with a
            raised-cosine window.
        precision: "fp32", or "bf16"/"fp16" autocast (mostly for CUDA; see ``PRECISIONS``).
        auto_tile: with ``tile`` None, plan tiles when the free memory would not hold the whole
            image; False: try the whole image (tiles only if it runs out of memory).
        report: when given, filled with ``{"tile": int | None, "tile_reason": None | "asked" |
            "memory" | "out_of_memory"}``: the tile size used (None: whole image) and why.

    Raises:
        ValueError naming the values: unknown ``precision``; a negative ``tile`` or
        ``tile_overlap``, or a tile not larger than its overlap (``utils.tiling.check_tile``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    tile = check_tile(tile, tile_overlap)
    device = model_device(model)
    x = x.to(device)
    height, width = x.shape[-2:]
    reason = "asked" if tile is not None else None
    if tile is None and auto_tile:
        n_feats = getattr(model, "config", {}).get("n_feats", 64)
        tile = auto_tile_size(height, width, n_feats, free_memory_bytes(device), tile_overlap)
        if tile is not None:
            reason = "memory"
            logger.info("%dx%d image would not fit in memory: tiles of %d", width, height, tile)
    if tile is not None and tile < max(height, width):
        output = _forward_tiled(x, model, tile, tile_overlap, precision)
    else:
        output, tile = _forward_falling_back(x, model, tile_overlap, precision)
        reason = "out_of_memory" if tile is not None else None
    if report is not None:
        report.update(tile=tile, tile_reason=reason)
    return output


def restore(
    image: np.ndarray,
    model: nn.Module,
    tile: int | None = None,
    tile_overlap: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    auto_tile: bool = True,
    report: dict | None = None,
) -> np.ndarray:
    """Restore a uint8 RGB image (H, W, 3) and return uint8 (H, W, 3) of the same size.

    Args:
        image: uint8 array (H, W, 3), RGB.
        model: AirNet in eval mode (see ``net.load_airnet``).
        tile: tile size in pixels for large images, larger than ``tile_overlap``; None or 0 =
            whole image, or automatic tiles when the device's free memory would not suffice.
        tile_overlap: overlap of neighbouring tiles in pixels (0 or more).
        device: run on this device (the model is moved there); None = where the model is.
        precision: "fp32" (default, as the paper), or "bf16"/"fp16" autocast.
        auto_tile: False: no tiles planned from the free memory (only after out-of-memory).
        report: filled with the tile used and why, as in ``restore_tensor``.

    Raises:
        ValueError: not a uint8 (H, W, 3) array, or a bad tile size (as ``restore_tensor``),
            both before the model is moved or run.
    """
    tile = check_tile(tile, tile_overlap)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {image.dtype} {image.shape}")
    if device is not None:
        model.to(device)
    restored = restore_tensor(
        image_to_tensor(image), model, tile, tile_overlap, precision, auto_tile, report
    )
    return tensor_to_image(restored)
