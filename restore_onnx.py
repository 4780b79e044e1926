"""Restore photos with an exported AirNet (``export.py``) in ONNX Runtime, without PyTorch.

    python restore_onnx.py --model airnet.onnx --input photos/ --output restored/
    python restore_onnx.py --model airnet.onnx --input huge.png --output restored/ --tile 512

Needs only numpy, pillow and onnxruntime. Reading, writing and tiling are the same code as the
PyTorch path's (``utils.image_files``, ``utils.tiling``): EXIF orientation applied, grayscale,
palette and 16-bit images read as 8-bit RGB, transparency composited on white and put back into
the result; big images are restored in blended tiles (``--tile``, or automatically when the
free memory would not hold the whole image). Each result is ``NAME.png`` in ``--output``;
inputs that would share a name keep what tells them apart (``utils.image_files.distinct_names``,
as demo.py).
Unreadable files are reported with their path and skipped; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from utils.cli import ArgumentParser, Range
from utils.image_files import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    array_to_image,
    distinct_names,
    find_inputs,
    image_to_array,
    read_image_alpha,
    save_image,
)
from utils.optional import exit_missing_package
from utils.outputs import OutputError, check_writable_folder
from utils.paths import show_names_in_output
from utils.stop import run_interruptible
from utils.tiling import (
    Box,
    add_tile_arguments,
    auto_tile_size,
    available_memory_bytes,
    check_tile,
    check_tile_arguments,
    run_tiled,
)

try:
    import onnxruntime as ort
except ImportError as error:
    exit_missing_package(error, "requirements-onnx.txt")

logger = logging.getLogger("restore_onnx")

EXIT_OK, EXIT_FAILED, EXIT_SETUP = 0, 1, 2
# Local providers only, best first (onnxruntime wheels also list "AzureExecutionProvider").
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
DEFAULT_N_FEATS = 64  # for the memory estimate when the file does not say (export.py writes it)
# Peak memory per input pixel and channel of n_feats in ONNX Runtime (CPU): 215 bytes measured
# at 512 x 512, n_feats 64 (benchmarks/bench_onnx.py), about 1.6x the PyTorch path's; rounded up.
ORT_BYTES_PER_PIXEL_PER_FEAT = 256


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Restore images with an AirNet ONNX file in ONNX Runtime (no PyTorch).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", type=Path, default=Path("airnet.onnx"), help="ONNX file")
    parser.add_argument("--input", type=Path, required=True, help="an image or a folder")
    parser.add_argument("--output", type=Path, default=Path("output/onnx"), help="result folder")
    add_tile_arguments(parser)
    parser.add_argument(
        "--threads",
        type=Range(int, 0, 1024),
        default=0,
        help="ONNX Runtime intra-op threads (0: its default)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: a bad --tile/--tile_overlap is a usage error (exit code 2)
    before any model loads; --tile 0 becomes None, the same as no --tile."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tile_arguments(parser, args)
    return args


def load_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """An ONNX Runtime session on CUDA when onnxruntime-gpu provides it, else on the CPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    available = ort.get_available_providers()
    providers = [p for p in PROVIDERS if p in available]
    return ort.InferenceSession(str(path), options, providers=providers)


def model_n_feats(session: ort.InferenceSession) -> int:
    """The network's width as export.py stored it in the file's metadata."""
    stored = session.get_modelmeta().custom_metadata_map.get("n_feats")
    return int(stored) if stored and stored.isdigit() else DEFAULT_N_FEATS


def restore_array(
    session: ort.InferenceSession,
    rgb: np.ndarray,
    tile: int | None = None,
    tile_overlap: int = 32,
    report: dict | None = None,
) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> restored uint8 (H, W, 3), whole or in blended tiles.

    ``tile`` None or 0: the whole image, or automatic tiles when memory would not suffice; a
    bad tile size is a ValueError naming the values (``utils.tiling.check_tile``).
    ``report``, when given, gets {"tile": int | None, "tile_reason": None | "asked" | "memory"}.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {rgb.dtype} {rgb.shape}")
    tile = check_tile(tile, tile_overlap)
    x = image_to_array(rgb)  # (1, 3, H, W) float32 in [0, 1]
    height, width = rgb.shape[:2]
    name = session.get_inputs()[0].name
    reason = "asked" if tile is not None else None
    if tile is None:
        free = available_memory_bytes()
        n_feats = model_n_feats(session)
        tile = auto_tile_size(
            height, width, n_feats, free, tile_overlap, ORT_BYTES_PER_PIXEL_PER_FEAT
        )
        reason = "memory" if tile is not None else None

    def forward(box: Box) -> np.ndarray:
        top, bottom, left, right = box
        patch = np.ascontiguousarray(x[:, :, top:bottom, left:right])
        return session.run(None, {name: patch})[0]  # (1, 3, th, tw)

    if tile is not None and tile < max(height, width):
        output = run_tiled(forward, height, width, tile, tile_overlap)
    else:
        output, tile, reason = forward((0, height, 0, width)), None, None
    if report is not None:
        report.update(tile=tile, tile_reason=reason)
    return array_to_image(output)


def main(args: argparse.Namespace) -> int:
    """Restore every input; returns the exit code (0 ok, 1 some files failed, 2 cannot start)."""
    try:
        args.tile = check_tile(args.tile, args.tile_overlap)
    except ValueError as error:  # main() called without parse_args()
        logger.error("argument --tile/--tile_overlap: %s", error)
        return EXIT_SETUP
    try:
        inputs = find_inputs(args.input)
        check_writable_folder(args.output, "--output")  # before the model loads
    except (FileNotFoundError, OutputError) as error:
        logger.error("%s", error)
        return EXIT_SETUP
    if not inputs:
        logger.error(
            "%s: no images (extensions: %s)", args.input, " ".join(sorted(IMAGE_EXTENSIONS))
        )
        return EXIT_SETUP
    if not args.model.is_file():
        logger.error("%s: ONNX file not found; write one with export.py", args.model)
        return EXIT_SETUP
    try:
        session = load_session(args.model, args.threads)
    except Exception as error:  # ONNX Runtime raises its own pybind exception types
        logger.error("%s: cannot load ONNX model (%s)", args.model, error)
        return EXIT_SETUP
    logger.info("%s on %s, %d image(s)", args.model, session.get_providers()[0], len(inputs))

    failed, written = [], 0
    for path, name in zip(inputs, distinct_names(inputs), strict=True):
        out_path = args.output / name
        if os.path.realpath(out_path) == os.path.realpath(path):  # never raises on a link loop
            logger.error("skipped %s: the result would overwrite it; choose --output", path)
            failed.append(path)
            continue
        start = time.perf_counter()
        try:
            rgb, alpha = read_image_alpha(path)
        except ImageReadError as error:
            logger.error("skipped %s", error)
            failed.append(path)
            continue
        try:
            save_image(out_path, restore_array(session, rgb, args.tile, args.tile_overlap), alpha)
        except OutputError as error:  # disk full, a folder removed mid-run
            logger.error("skipped %s: %s", path, error)
            failed.append(path)
            continue
        written += 1
        logger.info("%s -> %s (%.2f s)", path, out_path, time.perf_counter() - start)
    logger.info("restored %d of %d image(s) into %s", written, len(inputs), args.output)
    if failed:
        logger.error("%d file(s) failed: %s", len(failed), ", ".join(map(str, failed)))
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    show_names_in_output()
    sys.exit(run_interruptible(lambda: main(parse_args())))
