"""Evaluate AirNet on the paper's test sets: PSNR / SSIM comparable with the published table.

Modes 0-3 as in the official test.py: 0 denoise (sigma 15, 25, 50), 1 derain, 2 dehaze,
3 three tasks, five degradation types (the paper's all-in-one: noise at three levels, rain,
haze). Mode 4 is the five-task protocol of later all-in-one papers (IDR, Zhang et al., CVPR
2023; InstructIR, AdaIR, TUR): SOTS outdoor, Rain100L, BSD68 at sigma 25 (``--sigmas`` may say
otherwise), GoPro and LOL, each folder given on the command line (no defaults: the benchmarks
are not in a clone), plus the average of the five tasks' PSNR and SSIM. A deblur set that
holds ``proxy.json`` (``scripts/make_deblur_testset.py``) is labelled "synthetic blur (not
GoPro)". ``--clean_path`` (any mode) adds a ``clean`` row: photos given as their own input,
scored as output vs input with the mean absolute brightness change in grey levels (0-255).

The protocol is the paper's by default:
- each image is centre-cropped to a multiple of 16 (``--full_size`` keeps it whole). LOL's
  600x400 becomes 592x400, as AdaIR's released five-task test code crops it (IDR's paper does
  not say); GoPro's 1280x720 and SOTS's 640x480 are multiples of 16 already;
- noisy input = clip(cropped clean + N(0, 1) * sigma, 0, 255) truncated to uint8, from a seed
  made of ``--seed``, the image's file name and sigma, so the noise of an image does not depend
  on which other images are tested or in what order;
- PSNR / SSIM per image on RGB in [0, 1] (the restored image clipped, not rounded, as the
  official code scores it) with scikit-image, then averaged (``--y_channel`` scores luma).

Beside every restored score, the degraded input's own PSNR/SSIM and the gain over it are
reported, so a table shows at once whether the model helps.

Each set is identified by its content, not its name: compared with the benchmark fingerprints
of data/benchmarks/ (utils/fingerprints.py), it is "identical to the fingerprint of X", or
differs from the nearest one (N of M present; the missing, extra and changed images named), or
is "no known benchmark" (the bundled samples: crops). A copy that differs is still scored; what
was found is printed after the table and recorded in summary.json (``copies``).

Writes ``results.csv`` (one row per image and task), ``summary.json`` and, with
``--save_images``, the restored images under ``--output_path``; prints a summary table.
results.csv and summary.json appear only complete (written aside, then renamed), so a killed
run never leaves a file that looks done; Ctrl-C ends it with one line and exit code 130. A
file name that is not UTF-8 is shown in both files, the table and the log with ``\\xNN`` for
each byte that is not (``caf\\xe9.png``); saved images keep the original bytes. Unreadable or
unpaired files are reported with their path and skipped; the exit code is then 1.

Without ``--ckpt`` the official file of the mode is used when present in ckpt/, else the
weights shipped in ckpt/ (trained by this repository; see ckpt/MODEL_CARD.md).

    python test.py --mode 3 --ckpt ckpt/All.pth --denoise_path data/test/denoise \
        --derain_path data/test/derain --dehaze_path data/test/dehaze
    python test.py --mode 4 --ckpt five_task.pth --dehaze_path test/SOTS_outdoor \
        --derain_path test/Rain100L --denoise_path test/CBSD68 --deblur_path GOPRO_Large/test \
        --lowlight_path LOL/eval15
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from net import load_airnet
from utils.checkpoint import default_checkpoint, describe_trained_types, trained_types
from utils.cli import SEED, SIGMA, ArgumentParser
from utils.degradations import add_gaussian_noise, crop_to_multiple, noise_rng
from utils.eval_dataset import (
    ImagePair,
    ImageSet,
    LayoutError,
    find_deblur_sets,
    find_dehaze_sets,
    find_denoise_sets,
    find_derain_sets,
    find_lowlight_sets,
)
from utils.fingerprints import (
    CopyReport,
    HashCache,
    default_cache_path,
    identify_copy,
    load_benchmarks,
)
from utils.image_files import distinct_names
from utils.image_io import ImageReadError, image_to_tensor, read_image, save_image, tensor_to_image
from utils.metrics import psnr, ssim
from utils.outputs import FolderLock, OutputError, check_writable_folder, writing
from utils.paths import show_names_in_output, shown, shown_all, write_text_atomic
from utils.precision import PRECISIONS, warn_if_slow_precision
from utils.progress import bars_wanted
from utils.restore import resolve_device, restore_tensor
from utils.stop import run_interruptible
from utils.tiling import add_tile_arguments, check_tile, check_tile_arguments
from utils.validation import mean_brightness_change

logger = logging.getLogger("test")

FIVE_TASKS = 4  # the mode of the five-task protocol
MODE_TASKS = {
    0: ("denoise",),
    1: ("derain",),
    2: ("dehaze",),
    3: ("denoise", "derain", "dehaze"),
    FIVE_TASKS: ("dehaze", "derain", "denoise", "deblur", "lowlight"),  # the papers' column order
}
MODE_HELP = (
    "0 denoise (sigma 15/25/50), 1 derain, 2 dehaze, 3 three tasks, five degradation types "
    "(the paper's all-in-one), 4 five tasks (IDR's protocol: SOTS outdoor, Rain100L, BSD68 "
    "sigma 25, GoPro, LOL; every path required)"
)
DEFAULT_CKPT = {
    0: "ckpt/Denoise.pth",
    1: "ckpt/Derain.pth",
    2: "ckpt/Dehaze.pth",
    3: "ckpt/All.pth",
    FIVE_TASKS: "ckpt/All.pth",  # no official five-task file exists; the log names its types
}
# The task whose file of ours stands in for the official one (utils/checkpoint.TASK_FILES)
MODE_TASK_FILE = {0: "denoise", 1: "derain", 2: "dehaze", 3: "all", FIVE_TASKS: "all"}
SAMPLE_DATA = {  # the tiny samples in data/test/, defaults of modes 0-3
    "denoise": "data/test/denoise",
    "derain": "data/test/derain",
    "dehaze": "data/test/dehaze",
}
DEFAULT_SIGMAS = {mode: [15, 25, 50] for mode in MODE_TASKS} | {FIVE_TASKS: [25]}
CLEAN = "clean"  # --clean_path: photos given as their own input
PROXY_FILE = "proxy.json"  # written by scripts/make_deblur_testset.py beside input/ + target/
PROXY_LABEL = "synthetic blur (not GoPro)"
CSV_FIELDS = (
    "set", "task", "image", "psnr", "ssim", "input_psnr", "input_ssim", "gain_psnr", "gain_ssim",
    "brightness_change", "tile", "tile_reason", "seconds", "height", "width",
)  # fmt: skip
EXIT_OK, EXIT_SKIPPED, EXIT_SETUP = 0, 1, 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown, except None: those flags say in their help what happens without them
    (several depend on --mode)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="PSNR/SSIM of AirNet on the paper's test sets.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--mode", type=int, choices=sorted(MODE_TASKS), default=3, help=MODE_HELP)
    parser.add_argument(
        "--ckpt",
        type=Path,
        default=None,
        help="checkpoint (official or ours); default by mode: "
        + ", ".join(f"{m}: {p}" for m, p in DEFAULT_CKPT.items())
        + ", where present, else ours in ckpt/: in modes 0-2 the one-by-one file of the "
        "task where it ships (each trained on that task alone: the better choice when you "
        "know the degradation), else the all-in-one file",
    )
    sample = "; default in modes 0-3: {}, required in mode 4"
    parser.add_argument(
        "--denoise_path",
        type=Path,
        nargs="+",
        help="folders of clean images (each one a set), or a folder of such folders"
        + sample.format(SAMPLE_DATA["denoise"]),
    )
    parser.add_argument(
        "--derain_path",
        type=Path,
        nargs="+",
        help="folders with input/ + target/ (equal names), or a folder of such folders"
        + sample.format(SAMPLE_DATA["derain"]),
    )
    parser.add_argument(
        "--dehaze_path",
        type=Path,
        nargs="+",
        help="folders with input/XXXX_A_B.ext (SOTS outdoor) or XXXX_k.ext (indoor) + "
        "target/XXXX.png (or hazy/ + gt/)" + sample.format(SAMPLE_DATA["dehaze"]),
    )
    parser.add_argument(
        "--deblur_path",
        type=Path,
        nargs="+",
        help="mode 4 (required): GoPro's test folder (<sequence>/blur + <sequence>/sharp: one "
        f"set, names keep their sequence), or input/ + target/; a set holding {PROXY_FILE} "
        f"(scripts/make_deblur_testset.py) is labelled '{PROXY_LABEL}'",
    )
    parser.add_argument(
        "--lowlight_path",
        type=Path,
        nargs="+",
        help="mode 4 (required): LOL's eval15 (low/ + high/; a LOL root means its eval15/), "
        "or input/ + target/. 600x400 is cropped to 592x400 as for every set (see --full_size)",
    )
    parser.add_argument(
        "--sigmas",
        type=SIGMA,
        nargs="+",
        help="noise levels to test; default 15 25 50, in mode 4 only 25 (the five-task protocol)",
    )
    parser.add_argument(
        "--clean_path",
        type=Path,
        nargs="+",
        help="folders of clean photos (or a folder of such folders) given as their own input: "
        "a 'clean' row with PSNR/SSIM of the output against the input and the mean over images "
        "of |mean(output) - mean(input)| in grey levels (0-255); any mode",
    )
    parser.add_argument(
        "--output_path",
        type=Path,
        default="output/test",
        help="where results.csv, summary.json and images/ go",
    )
    parser.add_argument("--save_images", action="store_true", help="save the restored images")
    parser.add_argument(
        "--full_size",
        action="store_true",
        help="no crop to a multiple of 16 (not the paper's; AdaIR's five-task code crops LOL's "
        "600x400 to 592x400 too)",
    )
    parser.add_argument(
        "--y_channel", action="store_true", help="PSNR/SSIM on the Y channel (BT.601)"
    )
    parser.add_argument("--seed", type=SEED, default=0, help="base seed of the test noise")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_tile_arguments(
        parser,
        "bounded memory, numbers then differ slightly; 0 or unset: whole images (tiles only after "
        "an out-of-memory error, recorded per image)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=list(PRECISIONS),
        help="fp32 as the paper; bf16/fp16 autocast (DCN sampling positions stay fp32) changes "
        "the numbers",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: a bad --tile/--tile_overlap, or a test folder missing in
    mode 4, is a usage error (exit code 2) before any model loads; --tile 0 becomes None, the
    same as no --tile; the defaults that depend on --mode are filled in."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tile_arguments(parser, args)
    missing = apply_mode_defaults(args)
    if missing:
        parser.error(missing_paths_message(missing))
    return args


def apply_mode_defaults(args: argparse.Namespace) -> list[str]:
    """Fill the defaults that depend on --mode (the sigmas; the sample folders of modes 0-3)
    and return the path flags mode 4 lacks (it has no defaults: its benchmarks are not in a
    clone). Filled values count as given, so calling it twice changes nothing."""
    if args.sigmas is None:
        args.sigmas = list(DEFAULT_SIGMAS[args.mode])
    missing = []
    for task in MODE_TASKS[args.mode]:
        flag = f"{task}_path"
        if getattr(args, flag) is None:
            if args.mode == FIVE_TASKS:
                missing.append(f"--{flag}")
            else:
                setattr(args, flag, [Path(SAMPLE_DATA[task])])
    return missing


def missing_paths_message(missing: list[str]) -> str:
    return f"--mode {FIVE_TASKS} (the five-task protocol) needs {' '.join(missing)}"


class UnusableImageError(ValueError):
    """A readable test image that cannot be scored (wrong size); the message names the file."""


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


@dataclass
class SetResult:
    """The scores of one set and task (a denoise set: one per sigma).

    ``degradation`` is the set's task without the sigma (``denoise`` for ``denoise_25``);
    ``label`` what the table prints as the set (its name, or its name and its proxy). For
    ``clean`` the scores are output vs input, the input's own scores are not applicable (the
    input is the target) and ``brightness`` holds |mean(output) - mean(input)| per image in
    grey levels.
    """

    set_name: str
    task: str
    degradation: str
    label: str
    psnrs: list[float] = field(default_factory=list)
    ssims: list[float] = field(default_factory=list)
    input_psnrs: list[float] = field(default_factory=list)  # the degraded input's own scores
    input_ssims: list[float] = field(default_factory=list)
    brightness: list[float] = field(default_factory=list)  # clean only
    tiled: int = 0  # images restored in tiles after running out of memory
    seconds: float = 0.0

    def summary(self) -> dict:
        psnr_, ssim_ = _mean(self.psnrs), _mean(self.ssims)
        input_psnr, input_ssim = _mean(self.input_psnrs), _mean(self.input_ssims)
        summary = {
            "set": self.set_name,
            "label": self.label,
            "task": self.task,
            "degradation": self.degradation,
            "psnr": psnr_,
            "ssim": ssim_,
            "input_psnr": input_psnr,
            "input_ssim": input_ssim,
            "gain_psnr": psnr_ - input_psnr,
            "gain_ssim": ssim_ - input_ssim,
            "images": len(self.psnrs),
            "tiled_after_out_of_memory": self.tiled,
            "seconds": self.seconds,
        }
        if self.degradation == CLEAN:
            summary["brightness_change"] = _mean(self.brightness)
        return summary


def load_pair(
    pair: ImagePair, sigma: int | None, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray]:
    """Return (degraded, target) uint8 (H, W, 3) as the protocol feeds and scores them.

    A pair without a degraded file is a clean image: noisy at ``sigma``, or, with ``sigma``
    None (``--clean_path``), its own input.
    """
    target = read_image(pair.target)
    if pair.degraded is None:
        # As the official test: crop the clean image first, then add the noise to the crop.
        if not args.full_size:
            target = crop_to_multiple(target, 16)
        if sigma is None:
            return target, target
        return add_gaussian_noise(target, sigma, noise_rng(pair.name, sigma, args.seed)), target
    degraded = read_image(pair.degraded)
    if degraded.shape != target.shape:
        raise UnusableImageError(
            f"{pair.degraded}: size {degraded.shape[1]}x{degraded.shape[0]} differs from its "
            f"target {pair.target} ({target.shape[1]}x{target.shape[0]})"
        )
    if not args.full_size:
        degraded, target = crop_to_multiple(degraded, 16), crop_to_multiple(target, 16)
    return degraded, target


def check_size(pair: ImagePair, image: np.ndarray, full_size: bool) -> None:
    """SSIM's 7x7 window needs 7 pixels a side; cropping to 16 empties images under 16."""
    if min(image.shape[:2]) < 7:
        hint = "" if full_size else " after the crop to a multiple of 16 (see --full_size)"
        raise UnusableImageError(f"{pair.degraded or pair.target}: too small to score{hint}")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate_set(
    model: torch.nn.Module,
    test_set: ImageSet,
    sigma: int | None,
    args: argparse.Namespace,
    rows: csv.DictWriter,
    skipped: dict[Path, str],
) -> SetResult:
    """Restore and score every pair of ``test_set``; unreadable files go to ``skipped``."""
    task = test_set.task if sigma is None else f"{test_set.task}_{sigma}"
    result = SetResult(test_set.name, task, test_set.task, set_label(test_set))
    clean = test_set.task == CLEAN
    device = next(model.parameters()).device
    start = time.perf_counter()
    # --save_images: a file name per pair ("a.jpg" and "a.png" -> a_jpg.png, a_png.png)
    saved_names = distinct_names([Path(pair.name) for pair in test_set.pairs])
    pairs = tqdm(
        test_set.pairs, desc=shown(f"{test_set.name} {task}"), unit="img", disable=not bars_wanted()
    )
    for pair, saved_name in zip(pairs, saved_names, strict=True):
        try:
            degraded, target = load_pair(pair, sigma, args)
            check_size(pair, target, args.full_size)
        except (ImageReadError, UnusableImageError) as error:
            key = pair.degraded or pair.target
            if key not in skipped:
                logger.error("skipped: %s", error)
            skipped[key] = str(error)
            continue
        image_start = time.perf_counter()
        tiling: dict = {}
        restored = restore_tensor(
            image_to_tensor(degraded),
            model,
            args.tile,
            args.tile_overlap,
            args.precision,
            auto_tile=False,  # a benchmark number is a whole-image number unless --tile
            report=tiling,
        )
        if tiling["tile_reason"] == "out_of_memory":
            logger.warning(
                "%s: out of memory on the whole image; restored in tiles of %d (its scores "
                "differ slightly from whole-image ones; recorded in results.csv)",
                pair.degraded or pair.target,
                tiling["tile"],
            )
            result.tiled += 1
        _synchronize(device)
        seconds = time.perf_counter() - image_start
        restored_hwc = restored[0].permute(1, 2, 0).numpy()  # (H, W, 3), clipped by the metrics
        score_psnr = psnr(restored_hwc, target, y_channel=args.y_channel)
        score_ssim = ssim(restored_hwc, target, y_channel=args.y_channel)
        result.psnrs.append(score_psnr)
        result.ssims.append(score_ssim)
        row = {"set": test_set.name, "task": task, "image": pair.name}
        row |= {"psnr": f"{score_psnr:.4f}", "ssim": f"{score_ssim:.6f}"}
        if clean:  # the target is the input: its own scores are not applicable
            change = mean_brightness_change(restored_hwc, degraded)
            result.brightness.append(change)
            row["brightness_change"] = f"{change:.4f}"
        else:
            input_psnr = psnr(degraded, target, y_channel=args.y_channel)
            input_ssim = ssim(degraded, target, y_channel=args.y_channel)
            result.input_psnrs.append(input_psnr)
            result.input_ssims.append(input_ssim)
            row |= {
                "input_psnr": f"{input_psnr:.4f}",
                "input_ssim": f"{input_ssim:.6f}",
                "gain_psnr": f"{score_psnr - input_psnr:.4f}",
                "gain_ssim": f"{score_ssim - input_ssim:.6f}",
            }
        rows.writerow(
            shown_all(row)
            | {
                "tile": tiling["tile"] or "",
                "tile_reason": tiling["tile_reason"] or "",
                "seconds": f"{seconds:.4f}",
                "height": target.shape[0],
                "width": target.shape[1],
            }
        )
        if args.save_images:
            out = args.output_path / "images" / test_set.name / task / saved_name
            save_image(out, tensor_to_image(restored))
    result.seconds = time.perf_counter() - start
    if not bars_wanted():  # in a file (> test.log): one plain line per set instead of a bar
        logger.info("%s", format_set_line(result.summary()))
    return result


def format_set_line(summary: dict) -> str:
    """One line for a scored set: ``CBSD68 denoise_25: 68 images, PSNR 29.55 dB (input
    20.18), SSIM 0.8301 (input 0.4153), 41.2 s``; for ``clean`` the brightness change."""
    head = f"{summary['label']} {summary['task']}: {summary['images']} images"
    if summary["images"] == 0:
        return f"{head}, nothing scored"
    scores = f"PSNR {summary['psnr']:.2f} dB"
    if summary["degradation"] == CLEAN:
        scores += f" (output vs input), brightness change {summary['brightness_change']:.2f}"
    else:
        scores += (
            f" (input {summary['input_psnr']:.2f}), SSIM {summary['ssim']:.4f} "
            f"(input {summary['input_ssim']:.4f})"
        )
    return f"{head}, {scores}, {summary['seconds']:.1f} s"


def find_sets(args: argparse.Namespace) -> list[ImageSet]:
    """The sets of the mode's tasks, in the mode's order, then the ``--clean_path`` sets."""
    finders = {
        "denoise": (find_denoise_sets, args.denoise_path),
        "derain": (find_derain_sets, args.derain_path),
        "dehaze": (find_dehaze_sets, args.dehaze_path),
        "deblur": (find_deblur_sets, args.deblur_path),
        "lowlight": (find_lowlight_sets, args.lowlight_path),
    }
    sets = []
    for task in MODE_TASKS[args.mode]:
        finder, paths = finders[task]
        sets.extend(finder(paths))
    if args.clean_path:
        # Folders of photos like the denoise sets', each photo its own input (load_pair).
        for found in find_denoise_sets(args.clean_path):
            sets.append(ImageSet(found.name, CLEAN, found.pairs, found.problems))
    name_sets_apart(sets)
    return sets


def set_label(test_set: ImageSet) -> str:
    """The set as the table prints it: its name, and for a deblur set made by
    ``scripts/make_deblur_testset.py`` (``proxy.json`` beside its folders) the proxy, so its
    number is never read as GoPro's."""
    if test_set.task == "deblur" and (set_folder(test_set) / PROXY_FILE).is_file():
        return f"{test_set.name}: {PROXY_LABEL}"
    return test_set.name


def name_sets_apart(sets: list[ImageSet]) -> None:
    """Sets of one task that share a name (``a/CBSD68``, ``b/CBSD68``) are renamed by the
    folders that tell them apart (``a_CBSD68``, ``b_CBSD68``: ``distinct_names``), so their
    rows in results.csv and their saved images never collide."""
    for task in dict.fromkeys(s.task for s in sets):
        same_task = [s for s in sets if s.task == task]
        labels = [set_folder(s).parent / s.name for s in same_task]
        for test_set, name in zip(same_task, distinct_names(labels, None), strict=True):
            test_set.name = name


def set_folder(test_set: ImageSet) -> Path:
    """The folder holding a set's files (their common parent), absolute; empty set: its name."""
    files = [p for pair in test_set.pairs for p in (pair.target, pair.degraded) if p is not None]
    files += [path for path, _ in test_set.problems]
    if not files:
        return Path(os.path.abspath(test_set.name))
    return Path(os.path.commonpath([os.path.abspath(p.parent) for p in files]))


def set_files(test_set: ImageSet) -> dict[str, Path]:
    """Every file of a set (both sides of its pairs, unpaired files too), each once, by its
    path relative to ``set_folder`` (``/``-separated, as fingerprints name images)."""
    folder = set_folder(test_set)
    paths = [p for pair in test_set.pairs for p in (pair.degraded, pair.target) if p is not None]
    paths += [path for path, _ in test_set.problems]
    return {Path(os.path.relpath(path, folder)).as_posix(): path for path in paths}


def identify_sets(sets: list[ImageSet]) -> list[tuple[ImageSet, CopyReport]]:
    """Which copy of which benchmark each set is, by content (utils/fingerprints.py), hashes
    cached in ``default_cache_path()``; logged, a copy that differs as a warning."""
    benchmarks = load_benchmarks()
    cache = HashCache(default_cache_path())
    copies = []
    for test_set in sets:
        report = identify_copy(set_files(test_set), benchmarks, cache)
        log = logger.warning if report.benchmark and not report.identical else logger.info
        log("%s (%s): %s", test_set.name, set_folder(test_set), report.describe())
        copies.append((test_set, report))
    cache.save()
    return copies


AVERAGED = ("psnr", "ssim", "input_psnr", "input_ssim", "gain_psnr", "gain_ssim")


def task_average(summaries: list[dict], tasks: tuple[str, ...]) -> dict[str, float]:
    """The mean over ``tasks`` of each task's scores (the mean of its rows: one set, and one
    sigma for denoising, in the five-task protocol, where this is the papers' average).

    Returns {"tasks": [...], "psnr", "ssim", "input_psnr", "input_ssim", "gain_psnr",
    "gain_ssim"}; nan where a task has no scored image.
    """
    per_task = []
    for task in tasks:
        rows = [s for s in summaries if s["degradation"] == task]
        per_task.append({key: _mean([row[key] for row in rows]) for key in AVERAGED})
    return {"tasks": list(tasks)} | {
        key: float(np.mean([scores[key] for scores in per_task])) for key in AVERAGED
    }


def _cell(value: float, spec: str, width: int) -> str:
    """A number in a table cell; "-" where it does not apply (nan)."""
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:{spec}}"


def _scores(record: dict) -> str:
    """PSNR, SSIM, the input's PSNR/SSIM and the gains of a record, as table cells."""
    return (
        f"{_cell(record['psnr'], '>8.2f', 8)} {_cell(record['ssim'], '>7.4f', 7)} "
        f"{_cell(record['input_psnr'], '>8.2f', 8)} {_cell(record['input_ssim'], '>7.4f', 7)} "
        f"{_cell(record['gain_psnr'], '>+8.2f', 8)} {_cell(record['gain_ssim'], '>+9.4f', 9)}"
    )


def format_table(summaries: list[dict], average: dict[str, float] | None = None) -> str:
    """Plain-text table: one row per (set, task); restored, degraded input and the gain;
    ``average`` (mode 4) after the tasks' rows; then the ``clean`` rows, with the brightness
    change (grey levels), set apart since no average includes them.
    """
    title = "five-task average"
    width = max([16, *(len(s["label"]) for s in summaries), len(title) if average else 0])
    tasks = [s for s in summaries if s["degradation"] != CLEAN]
    clean = [s for s in summaries if s["degradation"] == CLEAN]
    header = (
        f"{'set':<{width}} {'task':<12} {'PSNR':>8} {'SSIM':>7} {'in PSNR':>8} {'in SSIM':>7} "
        f"{'gain dB':>8} {'gain SSIM':>9} {'images':>7} {'seconds':>8}"
    ) + (f" {'|d mean|':>8}" if clean else "")
    rule = "-" * len(header)
    lines = [header, rule]
    for s in tasks:
        lines.append(
            f"{s['label']:<{width}} {s['task']:<12} {_scores(s)} "
            f"{s['images']:>7d} {s['seconds']:>8.1f}"
        )
    if average is not None:
        lines += [rule, f"{title:<{width}} {'':<12} {_scores(average)}"]
    if clean:
        lines.append(rule)
        for s in clean:
            lines.append(
                f"{s['label']:<{width}} {s['task']:<12} {_scores(s)} {s['images']:>7d} "
                f"{s['seconds']:>8.1f} {_cell(s['brightness_change'], '>8.2f', 8)}"
            )
        lines.append("clean: output vs input; |d mean| = |mean(output) - mean(input)| (0-255)")
    return "\n".join(lines)


def _json_number(value: float) -> float | str | None:
    """JSON has no inf/nan: inf (identical images) becomes "inf", nan (no image) null."""
    if math.isnan(value):
        return None
    return value if math.isfinite(value) else str(value)


def _json_record(record: dict) -> dict:
    return {k: _json_number(v) if isinstance(v, float) else v for k, v in record.items()}


def write_summary(
    path: Path,
    args: argparse.Namespace,
    ckpt: Path,
    device: torch.device,
    summaries: list[dict],
    skipped: dict[Path, str],
    types: list[str] | None,
    average: dict | None,
    copies: list[tuple[ImageSet, CopyReport]],
) -> None:
    """summary.json: the checkpoint and its trained types, the protocol, one record per
    (set, task), the five-task average (mode 4, else null), the skipped files, and which copy
    of which benchmark each set is (``copies``: ``CopyReport.as_json`` with the set's name,
    task and folder)."""
    summary = {
        "mode": args.mode,
        "ckpt": str(ckpt),
        "trained_types": types,
        "device": str(device),
        "protocol": {
            "crop_to_multiple_of_16": not args.full_size,
            "y_channel": args.y_channel,
            "seed": args.seed,
            "sigmas": args.sigmas,
            "tile": args.tile,
            "precision": args.precision,
        },
        "results": [_json_record(s) for s in summaries],
        "five_task_average": _json_record(average) if average else None,
        "skipped": [{"path": str(p), "reason": reason} for p, reason in skipped.items()],
        "copies": [
            {"set": s.name, "task": s.task, "folder": str(set_folder(s)), **report.as_json()}
            for s, report in copies
        ],
    }
    with writing(path):  # whole or not at all; a failure is one line naming the file
        write_text_atomic(path, json.dumps(shown_all(summary), indent=2) + "\n")


def evaluate_all(
    model: torch.nn.Module, sets: list[ImageSet], args: argparse.Namespace, skipped: dict
) -> list[dict]:
    """Every set (and sigma); rows go to results.csv.partial, renamed to results.csv at the
    end, so an interrupted run leaves no results.csv that looks complete."""
    args.output_path.mkdir(parents=True, exist_ok=True)
    final = args.output_path / "results.csv"
    partial = final.with_name(final.name + ".partial")
    summaries = []
    with writing(partial), open(partial, "w", newline="", encoding="utf-8") as csv_file:
        rows = csv.DictWriter(csv_file, fieldnames=CSV_FIELDS)
        rows.writeheader()
        with logging_redirect_tqdm():  # log lines do not break the progress bars
            for test_set in sets:
                for sigma in args.sigmas if test_set.task == "denoise" else [None]:
                    result = evaluate_set(model, test_set, sigma, args, rows, skipped)
                    summaries.append(result.summary())
                    csv_file.flush()
    with writing(final):
        os.replace(partial, final)
    return summaries


def warn_if_untrained_tasks(ckpt: Path, types: list[str] | None, tasks: tuple[str, ...]) -> None:
    """Say when a checkpoint that records its types was not trained on some tested task
    (``denoise`` counts as trained with any noise level): its numbers there measure
    generalisation, not a trained task."""
    if types is None:
        return
    untrained = [t for t in tasks if not any(k == t or k.startswith(f"{t}_") for k in types)]
    if untrained:
        logger.warning("%s was not trained on %s", ckpt, " ".join(untrained))


def main(args: argparse.Namespace) -> int:
    """Run the evaluation; returns the exit code (0 ok, 1 files skipped, 2 cannot start)."""
    missing = apply_mode_defaults(args)  # main() called without parse_args()
    if missing:
        logger.error("%s", missing_paths_message(missing))
        return EXIT_SETUP
    if args.ckpt is None:
        ckpt, which = default_checkpoint(DEFAULT_CKPT[args.mode], MODE_TASK_FILE[args.mode])
    else:
        ckpt, which = args.ckpt, "--ckpt"
    try:
        args.tile = check_tile(args.tile, args.tile_overlap)
    except ValueError as error:  # main() called without parse_args()
        logger.error("argument --tile/--tile_overlap: %s", error)
        return EXIT_SETUP
    # Before any work: the folder can be written and no other run writes into it, so its
    # results.csv and summary.json always come from one run.
    with FolderLock() as outputs:
        try:
            check_writable_folder(args.output_path, "--output_path")
            outputs.acquire(args.output_path, "--output_path")
        except OutputError as error:
            logger.error("%s", error)
            return EXIT_SETUP
        return evaluate(args, ckpt, which)


def evaluate(args: argparse.Namespace, ckpt: Path, which: str) -> int:
    """Load the model and the sets, score them and write the results into --output_path
    (held by ``main``); returns the exit code."""
    try:
        device = resolve_device(args.device)
        sets = find_sets(args)
        copies = identify_sets(sets)
        model = load_airnet(ckpt, device)
        types = trained_types(ckpt)
    except (LayoutError, FileNotFoundError, RuntimeError, ValueError) as error:
        logger.error("%s", error)
        if isinstance(error, FileNotFoundError) and not ckpt.is_file():
            logger.error(
                "no %s and no shipped weights: put the official weights in ckpt/ "
                "(see ckpt/README.md) or pass --ckpt",
                DEFAULT_CKPT[args.mode],
            )
        return EXIT_SETUP
    logger.info("checkpoint %s (%s) on %s", ckpt, which, device)
    logger.info("%s", describe_trained_types(types))
    warn_if_untrained_tasks(ckpt, types, MODE_TASKS[args.mode])
    warn_if_slow_precision(args.precision, device)
    skipped: dict[Path, str] = {}
    for test_set in sets:
        for path, reason in test_set.problems:
            logger.error("skipped: %s: %s", path, reason)
            skipped[path] = reason
    try:
        summaries = evaluate_all(model, sets, args, skipped)
        five_tasks = args.mode == FIVE_TASKS
        average = task_average(summaries, MODE_TASKS[args.mode]) if five_tasks else None
        summary_path = args.output_path / "summary.json"
        write_summary(summary_path, args, ckpt, device, summaries, skipped, types, average, copies)
    except OutputError as error:  # disk full, a folder removed: one line naming the file
        logger.error("cannot write the results: %s", error)
        return EXIT_SETUP
    print(shown(format_table(summaries, average)))
    for test_set, report in copies:
        print(shown(f"copy scored as {test_set.name}: {report.describe()}"))
    print(f"skipped files: {len(skipped)}" + (" (listed in summary.json)" if skipped else ""))
    print(shown(f"per-image results: {args.output_path / 'results.csv'}"))
    return EXIT_SKIPPED if skipped else EXIT_OK


def left_after_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted run leaves: the rows scored so far, never a results.csv."""
    partial = args.output_path / "results.csv.partial"
    if partial.is_file():
        return f"no results.csv nor summary.json written; the rows scored so far are in {partial}"
    return "nothing scored"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    show_names_in_output()
    arguments = parse_args()
    sys.exit(run_interruptible(lambda: main(arguments), lambda: left_after_interrupt(arguments)))
