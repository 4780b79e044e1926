"""Restore your own photos with AirNet: a folder or a single image in, PNGs of the same size out.

    python demo.py --test_path photos/ --output_path restored/ --ckpt ckpt/All.pth

Each output keeps the input's size (no crop) and name, as ``NAME.png``; inputs that would share
an output name keep what tells them apart (``photo_jpg.png``, ``photo_png.png``: the rule is
``utils.image_files.distinct_names``). ``--tile N`` restores
large images tile by tile with bounded memory (tiles are blended, so no seams show); without it
a tile size is picked automatically when the image would not fit in memory. ``--compare`` also
writes ``compare/NAME.png`` with the input and the result side by side.

Odd inputs are handled so (reading is utils.image_io's; writing here):
- EXIF orientation is applied, so the result is upright (and carries no orientation tag);
- grayscale (also 16-bit and 1-bit) is restored as RGB and written back as grayscale;
- 16-bit images are reduced to 8 bits by the depth in their header (v >> 8), 32-bit float
  ones read as [0, 1], 32-bit integer ones refused (``read_image_alpha``); results are 8-bit
  PNGs;
- palette images are expanded to RGB (the result is RGB; restored colours leave the palette);
- an embedded colour profile (Adobe RGB, Display P3) is converted to sRGB on reading, so the
  result, written in sRGB without a profile, shows the colours the input showed;
- transparency (RGBA, LA, palette with transparency): the model sees the image composited on
  white and the alpha channel is copied unchanged into the result.
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
from PIL import Image

from net import load_airnet
from utils.checkpoint import (
    TASKS,
    describe_trained_types,
    is_hub_reference,
    task_checkpoint,
    trained_types,
)
from utils.cli import ArgumentParser
from utils.image_files import distinct_names, find_inputs, image_mode, save_image_atomic
from utils.image_io import IMAGE_EXTENSIONS, ImageReadError, read_image_alpha
from utils.outputs import OutputError, check_writable_folder
from utils.paths import show_names_in_output
from utils.precision import PRECISIONS, warn_if_slow_precision
from utils.restore import resolve_device, restore
from utils.stop import run_interruptible
from utils.tiling import add_tile_arguments, check_tile, check_tile_arguments

logger = logging.getLogger("demo")

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
COMPARE_GAP = 8
EXIT_OK, EXIT_FAILED, EXIT_SETUP = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Restore images with AirNet (noise, rain, haze; the degradation is inferred).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--test_path", type=Path, default="data/demo", help="an image or a folder of images"
    )
    parser.add_argument(
        "--output_path", type=Path, default="output/demo", help="where the restored PNGs go"
    )
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--ckpt",
        type=Path,
        default=None,
        help="checkpoint (official or ours); default: the file of --task",
    )
    weights.add_argument(
        "--task",
        choices=TASKS,
        default="all",
        help="which file restores: 'all' (the all-in-one: mixed folders, or when you do not "
        "know what is wrong with the photo) or, when you know, the one-by-one file trained on "
        "that task alone (denoise, derain, dehaze), which restores it better. Official "
        "ckpt/All.pth, Denoise.pth, ... where present, else ours in ckpt/ (trained by this "
        "repository, not the paper's; a task whose file does not ship uses the all-in-one)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_tile_arguments(parser)
    parser.add_argument(
        "--compare", action="store_true", help="also write compare/NAME.png: input | restored"
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=list(PRECISIONS),
        help="fp32 as the paper; bf16/fp16 autocast, faster on recent GPUs and on CPUs with "
        "AMX/AVX512-BF16 (DCN sampling positions stay fp32)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: a bad --tile/--tile_overlap is a usage error (exit code 2)
    before any model loads; --tile 0 becomes None, the same as no --tile."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tile_arguments(parser, args)
    return args


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(H, W, 3) + (H, W, 3) -> (H, 2W + gap, 3) with a white gap."""
    gap = np.full((left.shape[0], COMPARE_GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def save_result(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, grayscale: bool) -> None:
    """Write the restored image as PNG: grayscale inputs stay grayscale, alpha is put back."""
    image = Image.fromarray(rgb)
    if grayscale:
        image = image.convert("L")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))
    save_image_atomic(image, path)


def restore_file(path: Path, out_path: Path, model, args: argparse.Namespace) -> None:
    """Read, restore and write one image; raises ImageReadError for unreadable files."""
    rgb, alpha = read_image_alpha(path)
    mode = image_mode(path)
    if mode == "P" and alpha is not None and alpha.min() == 255:
        alpha = None  # a palette without transparent entries: no alpha channel to keep
    restored = restore(rgb, model, args.tile, args.tile_overlap, precision=args.precision)
    save_result(out_path, restored, alpha, grayscale=mode in GRAYSCALE_MODES)
    if args.compare:
        compare_path = args.output_path / "compare" / out_path.name
        save_image_atomic(Image.fromarray(side_by_side(rgb, restored)), compare_path)


def main(args: argparse.Namespace) -> int:
    """Restore every input; returns the exit code (0 ok, 1 some files failed, 2 cannot start)."""
    try:
        args.tile = check_tile(args.tile, args.tile_overlap)
    except ValueError as error:  # main() called without parse_args()
        logger.error("argument --tile/--tile_overlap: %s", error)
        return EXIT_SETUP
    try:
        device = resolve_device(args.device)
        inputs = find_inputs(args.test_path)
        check_writable_folder(args.output_path, "--output_path")  # before the model loads
    except (ValueError, FileNotFoundError, OutputError) as error:
        logger.error("%s", error)
        return EXIT_SETUP
    if not inputs:
        logger.error(
            "%s: no images (extensions: %s)", args.test_path, " ".join(sorted(IMAGE_EXTENSIONS))
        )
        return EXIT_SETUP
    if args.ckpt is None:
        ckpt, which = task_checkpoint(args.task)
    else:
        ckpt, which = args.ckpt, "--ckpt"
    if not (ckpt.exists() or is_hub_reference(ckpt)):  # a file, a Hub folder or hf://
        logger.error(
            "%s: checkpoint not found. Download the official weights (All.pth) into ckpt/ "
            "(see ckpt/README.md) or pass --ckpt with a checkpoint trained by train.py",
            ckpt,
        )
        return EXIT_SETUP
    try:
        model = load_airnet(ckpt, device)
        types = trained_types(ckpt)
    except (RuntimeError, FileNotFoundError) as error:
        logger.error("%s", error)
        return EXIT_SETUP
    logger.info("device: %s, checkpoint: %s (%s), %d image(s)", device, ckpt, which, len(inputs))
    logger.info("%s", describe_trained_types(types))
    warn_if_slow_precision(args.precision, device)

    names = dict(zip(inputs, distinct_names(inputs), strict=True))
    failed = []
    for path in inputs:
        out_path = args.output_path / names[path]
        if os.path.realpath(out_path) == os.path.realpath(path):  # never raises on a link loop
            logger.error("skipped %s: the result would overwrite it; choose --output_path", path)
            failed.append(path)
            continue
        start = time.perf_counter()
        try:
            restore_file(path, out_path, model, args)
        except ImageReadError as error:
            logger.error("skipped %s", error)
            failed.append(path)
            continue
        except OutputError as error:  # disk full, a folder removed mid-run
            logger.error("skipped %s: %s", path, error)
            failed.append(path)
            continue
        logger.info("%s -> %s (%.2f s)", path, out_path, time.perf_counter() - start)
    done = len(inputs) - len(failed)
    logger.info("restored %d of %d image(s) into %s", done, len(inputs), args.output_path)
    if failed:
        logger.error("%d file(s) failed: %s", len(failed), ", ".join(map(str, failed)))
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    show_names_in_output()
    sys.exit(run_interruptible(lambda: main(parse_args())))
