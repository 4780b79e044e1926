"""Tile planning and blending for restoring big images, with numpy only.

Both restoration paths use this module: ``utils.restore`` (PyTorch) and ``restore_onnx.py``
(ONNX Runtime, no torch). A tiled restoration covers the image with ``tile`` x ``tile`` boxes
that overlap by ``tile_overlap`` pixels (the last box of a row or column flush with the border),
runs the network on each box, and blends the results with a raised-cosine window, so memory is
bounded by the tile size and no seams show.

It also plans the tile size from the free memory: ``auto_tile_size`` takes the largest tile whose
forward pass fits, ``available_memory_bytes`` tells what the CPU side may use (MemAvailable, or a
cgroup's remaining limit when that is smaller).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from utils.cli import Range

# Peak inference memory per input pixel and per channel of n_feats: measured 64 bytes on CPU
# (torchvision's deform_conv2d im2col buffer dominates: 4.1 KB/pixel at n_feats=64); doubled
# for safety and for allocator overhead on CUDA.
BYTES_PER_PIXEL_PER_FEAT = 128
# Share of the free memory an automatic tile size may plan to use.
MEMORY_SHARE = 0.6
MIN_TILE = 64

# A box: (top, bottom, left, right), rows top:bottom and columns left:right.
Box = tuple[int, int, int, int]


# ---------------------------------------------------------------------------------------------
# Memory: how much there is, and the tile that fits
# ---------------------------------------------------------------------------------------------


WHOLE_OR_AUTO = "0 or unset: whole image, or automatic tiles when memory would not suffice"


def add_tile_arguments(parser: argparse.ArgumentParser, unset: str = WHOLE_OR_AUTO) -> None:
    """--tile and --tile_overlap, as demo.py, test.py and restore_onnx.py take them; ``unset``
    says what the program does without --tile (and with --tile 0). Check the parsed values
    with ``check_tile_arguments``."""
    parser.add_argument(
        "--tile",
        type=Range(int, 0, 2**16),
        default=None,
        help=f"restore in tiles of this size, larger than --tile_overlap; {unset}",
    )
    parser.add_argument(
        "--tile_overlap", type=Range(int, 0, 2**12), default=32, help="overlap of tiles (pixels)"
    )


def check_tile(tile: int | None, tile_overlap: int) -> int | None:
    """The tile size to use: None (the whole image) for ``tile`` None or 0, else ``tile``.

    Raises:
        ValueError naming the values: a negative ``tile`` or ``tile_overlap``, or a tile not
        larger than its overlap (its tiles would not advance: stride = tile - tile_overlap).
    """
    if tile_overlap < 0:
        raise ValueError(f"tile_overlap ({tile_overlap}) must be 0 or more")
    if not tile:
        return None
    if tile < 0:
        raise ValueError(f"tile ({tile}) must be positive, or 0 for the whole image")
    if tile <= tile_overlap:
        raise ValueError(
            f"tile ({tile}) must be larger than tile_overlap ({tile_overlap}), "
            "or 0 for the whole image"
        )
    return tile


def check_tile_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """After ``parse_args``: --tile 0 becomes None (exactly as without --tile); a bad --tile or
    --tile_overlap (see ``check_tile``) is a usage error, exit code 2, before any model loads."""
    try:
        args.tile = check_tile(args.tile, args.tile_overlap)
    except ValueError as error:
        parser.error(f"argument --tile/--tile_overlap: {error}")


def _read_int(path: Path) -> int | None:
    """The integer in a one-line file, or None ("max", missing, unreadable)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _meminfo_available(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_dirs(proc: Path, cgroup: Path) -> list[tuple[Path, str, str]]:
    """(folder, limit file, usage file) of this process's memory cgroup, v2 and v1.

    /proc/self/cgroup names the group relative to the hierarchy's root; inside a container the
    mount often is the group itself, so the root of each hierarchy is tried as well.
    """
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    dirs = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, group = parts
        group = group.lstrip("/")
        if controllers == "":  # cgroup v2 (or the unified part of a hybrid layout)
            for root in (cgroup, cgroup / "unified"):
                dirs += [(root / group, "memory.max", "memory.current")]
                dirs += [(root, "memory.max", "memory.current")]
        elif "memory" in controllers.split(","):
            root = cgroup / "memory"
            dirs += [(root / group, "memory.limit_in_bytes", "memory.usage_in_bytes")]
            dirs += [(root, "memory.limit_in_bytes", "memory.usage_in_bytes")]
    return dirs


def available_memory_bytes(
    proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Memory this process may still allocate on the CPU side, in bytes; None when unknown.

    The smaller of /proc/meminfo's MemAvailable and, when the process's memory cgroup has a
    limit, that limit minus the cgroup's current usage (v2 ``memory.max - memory.current``,
    v1 ``memory.limit_in_bytes - memory.usage_in_bytes``). Unlike sysconf's free pages,
    MemAvailable counts the page cache that the kernel gives back on demand.
    """
    available = _meminfo_available(proc)
    for folder, limit_name, usage_name in _cgroup_dirs(proc, cgroup):
        limit, usage = _read_int(folder / limit_name), _read_int(folder / usage_name)
        if usage is None:
            continue  # not this folder
        # No limit: v2 writes "max" (read as None), v1 a huge number (2^63 rounded to pages).
        if limit is not None and limit < 2**62:
            room = max(limit - usage, 0)
            available = room if available is None else min(available, room)
        break
    return available


def estimated_bytes(
    height: int, width: int, n_feats: int, bytes_per_pixel_per_feat: int = BYTES_PER_PIXEL_PER_FEAT
) -> int:
    """Rough peak memory of one eval forward pass on an (height, width) input."""
    return height * width * n_feats * bytes_per_pixel_per_feat


def auto_tile_size(
    height: int,
    width: int,
    n_feats: int,
    free_bytes: int | None,
    tile_overlap: int = 32,
    bytes_per_pixel_per_feat: int = BYTES_PER_PIXEL_PER_FEAT,
) -> int | None:
    """The largest tile (a multiple of 16) whose forward pass fits in ``free_bytes``.

    Returns None when the whole image fits (or the free memory is unknown).
    ``bytes_per_pixel_per_feat`` is the runtime's measured appetite (ONNX Runtime's is larger).
    """
    if free_bytes is None:
        return None
    budget = free_bytes * MEMORY_SHARE
    if estimated_bytes(height, width, n_feats, bytes_per_pixel_per_feat) <= budget:
        return None
    tile = int(math.sqrt(budget / (n_feats * bytes_per_pixel_per_feat))) // 16 * 16
    return max(tile, min_tile(tile_overlap))


def min_tile(tile_overlap: int) -> int:
    """The smallest tile worth trying: MIN_TILE, and at least 16 pixels beyond both overlaps."""
    return max(MIN_TILE, 2 * tile_overlap + 16)


# ---------------------------------------------------------------------------------------------
# Tiles: where they go and how they blend
# ---------------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets so that tiles of size ``tile`` cover [0, length), the last one flush."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def tile_boxes(height: int, width: int, tile: int, tile_overlap: int) -> list[Box]:
    """The boxes that cover a (height, width) image, row by row."""
    if check_tile(tile, tile_overlap) is None:
        raise ValueError(f"tile ({tile}): tile_boxes needs a positive tile size")
    stride = tile - tile_overlap
    return [
        (top, min(top + tile, height), left, min(left + tile, width))
        for top in tile_starts(height, tile, stride)
        for left in tile_starts(width, tile, stride)
    ]


def ramp(size: int, overlap: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    """1-D blending weights (float32): raised-cosine ramps of ``overlap`` pixels on faded sides.

    Sides on the image border are not faded; weights never reach 0, so every pixel is covered.
    """
    weights = np.ones(size, dtype=np.float32)
    width = min(overlap, size // 2)
    if width > 0:
        ramp_up = np.sin(0.5 * np.pi * (np.arange(width) + 0.5) / width) ** 2
        if fade_start:
            weights[:width] = ramp_up
        if fade_end:
            weights[size - width :] = ramp_up[::-1]
    return weights


def blend_window(box: Box, height: int, width: int, tile_overlap: int) -> np.ndarray:
    """(th, tw) float32 weights of one box: faded towards its neighbours, flat at the border."""
    top, bottom, left, right = box
    ramp_y = ramp(bottom - top, tile_overlap, top > 0, bottom < height)
    ramp_x = ramp(right - left, tile_overlap, left > 0, right < width)
    return ramp_y[:, None] * ramp_x[None, :]


def run_tiled(
    forward: Callable[[Box], np.ndarray],
    height: int,
    width: int,
    tile: int,
    tile_overlap: int,
    channels: int = 3,
) -> np.ndarray:
    """Blend ``forward(box)`` -> (1, C, th, tw) over all boxes into (1, C, height, width) float32.

    ``forward`` runs the network on the input's box (the caller slices its own array or tensor),
    so this works the same for PyTorch and ONNX Runtime.
    """
    output = np.zeros((1, channels, height, width), dtype=np.float32)
    weight_sum = np.zeros((height, width), dtype=np.float32)
    for box in tile_boxes(height, width, tile, tile_overlap):
        top, bottom, left, right = box
        window = blend_window(box, height, width, tile_overlap)  # (th, tw)
        output[:, :, top:bottom, left:right] += forward(box) * window
        weight_sum[top:bottom, left:right] += window
    return output / weight_sum
