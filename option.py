"""Command-line options of ``train.py``.

The official flags keep their names and defaults (``--epochs``, ``--epochs_encoder``, ``--lr``,
``--de_type``, ``--patch_size``, ``--num_workers``, the data folders, ``--output_path``,
``--ckpt_path``); the rest is what a real run needs (batch size, device, seed, resume, logging,
validation, model size for small runs). Nothing is parsed at import: call ``parse_args``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.cli import (
    N_BLOCKS,
    N_FEATS,
    N_GROUPS,
    PATCH_SIZE,
    SEED,
    ArgumentParser,
    Range,
)
from utils.config import ConfigError, config_to_argv, read_config
from utils.encoder_loss import ENCODER_LOSSES
from utils.pairing import describe_layouts
from utils.task_loss import LOSS_WEIGHTINGS
from utils.train_dataset import SYNTHESIS, TYPE_FOLDERS, folder_flag

DE_TYPES = ("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze")
# Choices beyond the paper's five (the default stays DE_TYPES, decision 1): "clean", photos of
# --denoise_dir given as their own target; "deblur" and "lowlight", the five-task setting's.
# Each type's data folders come from utils/train_dataset.py's one mapping, TYPE_FOLDERS.
TYPE_CHOICES = tuple(TYPE_FOLDERS)
PATCHES_PER_TYPE_PER_EPOCH = 400  # the official epoch: 400 * len(de_type) samples
# Sample data in a clone; deblur and lowlight have none, so no default.
DEFAULT_DIRS = {"derain": "data/train/derain/", "dehaze": "data/train/dehaze/"}

# The stated range of every numeric flag (utils/cli.py's Range, checked as the command line and
# the --config file are parsed). Counts of epochs and steps have no natural limit: 10^9 only
# keeps them finite.
MAX_COUNT = 10**9
LR = Range(float, above=0, maximum=1)  # Adam at a rate above 1 diverges at once
VAL_IMAGES = Range(int, 0, 10**6)  # 0: all
VAL_CROP = Range(int, 16, 2**16, zero=True)  # 0: whole images; under 16 px is too small
# One batch (per process) holds at most the pixels of the paper's five patches at the largest
# --patch_size: batch_size x patch_size^2 <= 5 x 256^2 (about 44 GB at the paper's size).
MAX_BATCH_PIXELS = 5 * PATCH_SIZE.maximum**2


def get_parser() -> argparse.ArgumentParser:
    """The parser of ``train.py``; every flag documents itself in ``--help``."""
    parser = ArgumentParser(
        description="Train AirNet (CVPR 2022) on several degradations at once.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a YAML recipe of flag: value lines (configs/); the command line overrides it",
    )
    recipe = parser.add_argument_group("recipe (official flags and defaults)")
    recipe.add_argument(
        "--epochs", type=Range(int, 1, MAX_COUNT), default=1000, help="total number of epochs"
    )
    recipe.add_argument(
        "--epochs_encoder",
        type=Range(int, 0, MAX_COUNT),
        default=100,
        help="epochs of phase 1 (encoder only, contrastive loss) before the whole model trains",
    )
    recipe.add_argument("--lr", type=LR, default=1e-3, help="initial learning rate of Adam")
    recipe.add_argument(
        "--de_type",
        nargs="+",
        choices=TYPE_CHOICES,
        default=list(DE_TYPES),
        metavar="TYPE",
        help=f"degradations to train on, one or more of {{{', '.join(TYPE_CHOICES)}}}; clean: "
        "photos of --denoise_dir as their own target, validated on --val_denoise_dir (PSNR of "
        "output vs input and brightness change), not part of psnr/mean; the five-task setting: "
        "denoise_25 derain dehaze deblur lowlight (deblur and lowlight need --deblur_dir and "
        "--lowlight_dir, or --synthetic)",
    )
    recipe.add_argument(
        "--patch_size", type=PATCH_SIZE, default=128, help="side of the training crops"
    )
    recipe.add_argument(
        "--num_workers", type=Range(int, 0, 256), default=16, help="data-loader worker processes"
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--data_file_dir",
        default="data_dir/",
        help="folder of the official list files rainy/rainTrain.txt and hazy/hazy_outside.txt; "
        "where absent, the list is looked for in the dataset folder, else the folder is scanned",
    )
    data.add_argument(
        "--denoise_dir",
        default="data/train/denoise/",
        help="clean images for the denoising types (searched recursively)",
    )
    data.add_argument(
        "--derain_dir",
        default=None,
        help=f"rain pairs: {describe_layouts('derain')}; rain-N pairs with norain-N (default "
        f"{DEFAULT_DIRS['derain']}, or synthetic rain with --synthetic derain)",
    )
    data.add_argument(
        "--dehaze_dir",
        default=None,
        help=f"haze pairs: {describe_layouts('dehaze')}; the same name first, else RESIDE's "
        f"XXXX_A_B, XXXX_k_B and XXXX_k pair with XXXX (default {DEFAULT_DIRS['dehaze']}, or "
        "synthetic haze with --synthetic dehaze)",
    )
    data.add_argument(
        "--deblur_dir",
        default=None,
        help=f"blur pairs with equal names: {describe_layouts('deblur')} (GoPro_Large/train; "
        "blur_gamma/ is ignored), or synthetic blur with --synthetic deblur",
    )
    data.add_argument(
        "--lowlight_dir",
        default=None,
        help=f"low-light pairs with equal names: {describe_layouts('lowlight')} (LOL), or "
        "synthetic low light with --synthetic lowlight",
    )
    data.add_argument(
        "--synthetic",
        nargs="+",
        choices=tuple(SYNTHESIS),
        default=[],
        metavar="TYPE",
        help=f"make {', '.join(SYNTHESIS)} pairs from the clean photos of --denoise_dir on the "
        "fly, seeded per sample (utils/synthetic.py), instead of reading real pairs; the type's "
        "own folder (--derain_dir ...), when given, still wins",
    )
    data.add_argument(
        "--check_data",
        action="store_true",
        help="scan the data as training would (the training folders, and the validation "
        "folders when --val_every > 0), print per type the images, pairs and skipped files "
        "with why, and exit without training: 0 when every type is usable, 2 when not",
    )
    data.add_argument(
        "--drop_test_content",
        action="store_true",
        help="leave out of training and validation every image that is a benchmark image "
        "(data/benchmarks/: equal pixels, or the same photo resized, re-encoded, flipped or "
        "turned); off by default, as the paper trains; the overlaps are named either way "
        "(LOG_DIR/test_content.tsv)",
    )
    data.add_argument(
        "--output_path",
        default="output/",
        help="the restored validation images of the latest validation are written here",
    )
    data.add_argument(
        "--ckpt_path",
        default="ckpt/",
        help="folder of the checkpoints: airnet_last_train.pth (resumable), airnet_last.pth and "
        "airnet_best.pth (model only), airnet_epoch_N.pth every --save_every epochs",
    )

    run = parser.add_argument_group("run")
    run.add_argument(
        "--batch_size",
        type=Range(int, 1, MAX_BATCH_PIXELS // PATCH_SIZE.minimum**2),
        default=None,
        help="patches per step and process, a multiple of the number of types so that every "
        "type is equally represented (default: one patch per type, as official)",
    )
    run.add_argument(
        "--epoch_size",
        type=Range(int, 1, 10**6),
        default=PATCHES_PER_TYPE_PER_EPOCH,
        help="patches of each type per epoch (official 400), so an epoch has "
        "epoch_size * len(de_type) / (batch_size * world_size) steps",
    )
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--seed", type=SEED, default=0, help="seed of the model and the data stream")
    run.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="continue from a training checkpoint (airnet_last_train.pth or its folder)",
    )
    run.add_argument(
        "--init_from",
        default=None,
        metavar="FILE",
        help="start from these weights (any checkpoint load_airnet reads; its size wins) with a "
        "fresh optimiser and schedule, unlike --resume",
    )
    run.add_argument(
        "--checkpoint_every_minutes",
        type=Range(float, 0, 7 * 24 * 60),
        default=30.0,
        help="also write the resumable checkpoint mid-epoch when this long has passed since the "
        "last one (0: only at the end of epochs), so a killed run loses at most this much",
    )
    run.add_argument(
        "--checkpoint_every_steps",
        type=Range(int, 0, MAX_COUNT),
        default=0,
        help="also write the resumable checkpoint every N optimiser steps (0: off)",
    )
    run.add_argument(
        "--save_every",
        type=Range(int, 1, MAX_COUNT),
        default=50,
        help="keep a model-only export every N epochs",
    )
    run.add_argument(
        "--val_every",
        type=Range(int, 0, MAX_COUNT),
        default=10,
        help="validate every N epochs (0: never)",
    )
    run.add_argument(
        "--log_dir", default="logs/", help="TensorBoard events, log.jsonl and args.json"
    )
    run.add_argument(
        "--log_every",
        type=Range(int, 1, MAX_COUNT),
        default=10,
        help="write training scalars every N steps",
    )
    run.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="fp32 as the paper; bf16 or fp16 autocast (fp16 with loss scaling), on CPU and "
        "CUDA; the same flag as test.py and demo.py",
    )
    run.add_argument(
        "--amp",
        action="store_true",
        help="the former name of --precision fp16 (kept for old command lines)",
    )
    run.add_argument(
        "--max_steps",
        type=Range(int, 1, MAX_COUNT),
        default=None,
        help="stop after this many optimiser steps in all (smoke runs); the checkpoint "
        "written then resumes mid-epoch",
    )
    run.add_argument(
        "--ema_decay",
        type=Range(float, 0, below=1),
        default=0.0,
        help="validate and export an exponential moving average of the weights with this "
        "decay (e.g. 0.999: about the last 1,000 steps); 0: off, as the paper",
    )
    run.add_argument(
        "--loss_weighting",
        choices=LOSS_WEIGHTINGS,
        default="none",
        help="restoration loss: none = L1 as the paper; tur = each type's L1 weighted by a "
        "learned uncertainty (Wu et al., AAAI 2025); psnr = minus each patch's PSNR (HINet, "
        "NAFNet), which weighs every patch by the inverse of its own error "
        "(utils/task_loss.py); training only",
    )
    run.add_argument(
        "--sampling_weights",
        type=Range(int, 1, 64),
        nargs="+",
        default=None,
        metavar="W",
        help="one positive integer per --de_type: each batch holds the types in these "
        "proportions (e.g. --de_type dehaze clean --sampling_weights 1 2: two clean patches per "
        "hazy one), as AdaIR and PromptIR repeat a data set; --batch_size must be a multiple "
        "of their sum; default: all 1, every type equally, as the paper",
    )
    run.add_argument(
        "--encoder_loss",
        choices=ENCODER_LOSSES,
        default="moco",
        help="the encoder's contrastive objective: moco = MoCo's InfoNCE, the positive is the "
        "other crop of the same image (the paper); supcon = supervised contrast over MoCo's "
        "queue (Khosla et al., NeurIPS 2020): every key of the same degradation type is a "
        "positive (utils/encoder_loss.py); training only, inference and exports unchanged",
    )
    run.add_argument(
        "--tur_floor",
        type=Range(float, above=0, maximum=1),
        default=0.01,
        help="with --loss_weighting tur: lower bound of a type's mean uncertainty, so a type "
        "with L1 near 0 (clean) gets a weight of at most 1/floor",
    )
    run.add_argument(
        "--sync_bn",
        action="store_true",
        help="under torchrun on CUDA, synchronise BatchNorm statistics across processes "
        "(default: per-process statistics over one patch per type, as a single official GPU)",
    )

    val = parser.add_argument_group("validation (a small held-out set, metrics as test.py)")
    val.add_argument(
        "--val_denoise_dir",
        default="data/test/denoise/CBSD68/",
        help="clean images; noise of each denoise type is added with a fixed seed",
    )
    val.add_argument(
        "--val_derain_dir",
        default="data/test/derain/Rain100L/",
        help="input/NAME + target/NAME",
    )
    val.add_argument(
        "--val_dehaze_dir",
        default="data/test/dehaze/SOTS_outdoor/",
        help="input/XXXX_A_B.* + target/XXXX.*",
    )
    val.add_argument(
        "--val_deblur_dir",
        default=None,
        help=f"held-out blur pairs ({describe_layouts('deblur', 'val')}; e.g. scripts/"
        "make_split.py --val_deblur); needed when deblur is trained and validated",
    )
    val.add_argument(
        "--val_lowlight_dir",
        default=None,
        help=f"held-out low-light pairs ({describe_layouts('lowlight', 'val')}; e.g. scripts/"
        "make_split.py --val_lowlight, never LOL's eval15); needed when lowlight is validated",
    )
    val.add_argument("--val_images", type=VAL_IMAGES, default=4, help="images per type (0: all)")
    val.add_argument(
        "--val_crop",
        type=VAL_CROP,
        default=256,
        help="centre-crop validation images to at most this side (0: whole image)",
    )
    val.add_argument(
        "--reference_weights",
        default=None,
        metavar="FILE",
        help="the shipped file for this run's role (e.g. ckpt/airnet-small-repo-trained."
        "safetensors): scored once on the validation set; an export qualifies only when no "
        "type is more than 0.05 dB below it (decision 14; default: none, inputs only)",
    )

    model = parser.add_argument_group("model size (defaults = paper; smaller for smoke runs)")
    model.add_argument("--n_feats", type=N_FEATS, default=64, help="width of DGRN and the encoder")
    model.add_argument("--n_groups", type=N_GROUPS, default=5, help="DGGs in DGRN")
    model.add_argument("--n_blocks", type=N_BLOCKS, default=5, help="DGBs per DGG")
    model.add_argument(
        "--grow_groups",
        type=Range(int, 0, N_GROUPS.maximum),
        default=0,
        help="with --init_from: add this many DGGs after the file's, each starting as the "
        "identity (its last conv at zero), so step 0 restores exactly as the file (net/grow.py; "
        "0: the file's size, as the paper)",
    )
    model.add_argument(
        "--queue_size",
        type=Range(int, 1, 2**20),
        default=None,
        help="MoCo queue length (default: 256 * batch_size * world_size, as official)",
    )
    model.add_argument(
        "--dcn_impl", default="auto", help="deformable-convolution implementation for AirNet"
    )
    return parser


# Decision 6 (shared/decisions.md): where the settings of a resumed run come from.
# checkpoint (on --resume) < --config file < command line; a parser default never counts.
FROM_CHECKPOINT = (  # they fix the model and the data stream: always the checkpoint's
    "n_feats", "n_groups", "n_blocks", "de_type", "batch_size", "epoch_size", "patch_size",
    "seed", "queue_size", "synthetic", "loss_weighting", "tur_floor", "encoder_loss",
    "sampling_weights",
)  # fmt: skip
# What a checkpoint written before a flag of FROM_CHECKPOINT existed trained with, where the
# parsed value must not replace it: such a checkpoint resumes as it was trained.
BEFORE_THE_FLAG = {"encoder_loss": "moco", "sampling_weights": None}
FROM_CHECKPOINT_UNLESS_GIVEN = (  # the schedule, cadences and data: given again, they win
    "epochs", "epochs_encoder", "lr", "ema_decay", "precision", "val_every", "val_images",
    "val_crop", "checkpoint_every_minutes", "checkpoint_every_steps", "save_every",
    "log_every", "max_steps", "sync_bn", "data_file_dir", "denoise_dir", "derain_dir",
    "dehaze_dir", "deblur_dir", "lowlight_dir", "val_denoise_dir", "val_derain_dir",
    "val_dehaze_dir", "val_deblur_dir", "val_lowlight_dir", "reference_weights",
    "drop_test_content",
)  # fmt: skip
# Never restored: device, num_workers, dcn_impl, resume, init_from, grow_groups (the grown size
# is the checkpoint's n_groups), config, check_data and the output paths.


class SettingsError(ValueError):
    """Settings that contradict each other once the checkpoint's are known (exit 2)."""


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations that ``argv`` sets itself (a parser default is never "given")."""
    probe = copy.deepcopy(parser)
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default: the command line) and a ``--config`` file, and check what
    argparse cannot.

    ``args.given`` lists the settings that the command line or the config file set (sorted),
    for decision 6 on --resume. A run that does not resume is complete on return; a resumed
    one is completed by ``apply_checkpoint_settings`` once the checkpoint is read.
    Usage errors exit 2 through ``parser.error``.
    """
    parser = get_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    given = given_flags(parser, argv)
    if args.config:
        try:
            values = read_config(args.config)
            config_argv = config_to_argv(values, parser, args.config)
        except ConfigError as error:  # about the file's content: its one line, no usage
            parser.exit(2, f"{parser.prog}: error: {error}\n")
        args = parser.parse_args([*config_argv, *argv])  # the command line comes last: wins
        given |= given_flags(parser, config_argv)
        args.config = str(Path(args.config).resolve())
        args.config_values = values
    given.discard("config")
    if "amp" in given:
        given.add("precision")
    args.given = sorted(given)
    if args.amp:
        if args.precision not in ("fp32", "fp16"):
            parser.error(
                f"--amp means --precision fp16; it contradicts --precision {args.precision}"
            )
        args.precision = "fp16"
    if args.resume and args.init_from:
        parser.error("--resume continues a run, --init_from starts a new one: give one of them")
    if args.grow_groups and not args.init_from:
        parser.error(
            f"--grow_groups {args.grow_groups} grows the file of --init_from: give --init_from "
            "(a resumed run already has its grown size)"
        )
    if not args.resume:  # a resumed run's batch and patch are the checkpoint's (decision 6)
        try:
            complete_settings(args)
        except SettingsError as error:
            parser.error(str(error))
        pixels = args.batch_size * args.patch_size**2
        if pixels > MAX_BATCH_PIXELS:
            parser.error(
                f"--batch_size {args.batch_size} x --patch_size {args.patch_size}^2 = {pixels} "
                f"pixels per step: at most {MAX_BATCH_PIXELS} fit in memory (5 patches of "
                f"{PATCH_SIZE.maximum})"
            )
    return args


def apply_checkpoint_settings(
    args: argparse.Namespace, stored: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decision 6 on a resumed run: take the checkpoint's settings into ``args``, then
    complete them (``complete_settings``).

    Returns (taken, ignored): the settings taken from the checkpoint that differ from the
    parser's, and those given again with another value but fixed by the checkpoint (the
    caller logs each group in one line). A key the checkpoint lacks (written before a flag
    existed) keeps the parsed value, so old checkpoints still resume; the keys of
    BEFORE_THE_FLAG take the value such a checkpoint trained with instead.

    Raises:
        SettingsError: the completed settings contradict each other.
    """
    given = set(getattr(args, "given", ()))
    stored = {**BEFORE_THE_FLAG, **stored}
    taken, ignored = {}, {}
    for name in FROM_CHECKPOINT + FROM_CHECKPOINT_UNLESS_GIVEN:
        if name not in stored:
            continue
        value, current = stored[name], getattr(args, name, None)
        if name in FROM_CHECKPOINT_UNLESS_GIVEN and name in given:
            continue
        if name in given and value != current:
            ignored[name] = current
        if value != current:
            taken[name] = value
        setattr(args, name, value)
    complete_settings(args)
    return taken, ignored


def complete_settings(args: argparse.Namespace) -> None:
    """Fill what depends on other settings (batch size, default data folders) and check it.

    Raises:
        SettingsError: a type listed twice, --sampling_weights not one per type, or a batch
            that cannot hold the types equally (or in the weights' proportions).
    """
    n_types = len(args.de_type)
    if len(set(args.de_type)) != n_types:
        raise SettingsError(f"--de_type lists a type twice: {' '.join(args.de_type)}")
    weights = getattr(args, "sampling_weights", None)
    if weights is not None and len(weights) != n_types:
        raise SettingsError(
            f"--sampling_weights gives {len(weights)} weights for {n_types} types "
            f"({' '.join(args.de_type)}): give one per type, in --de_type's order"
        )
    share = n_types if weights is None else sum(weights)
    if args.batch_size is None:
        args.batch_size = share
    if args.batch_size <= 0 or args.batch_size % share:
        raise SettingsError(
            f"--batch_size {args.batch_size} must be a positive multiple of the "
            f"{n_types} degradation types, so each batch holds them in equal number"
            if weights is None
            else f"--batch_size {args.batch_size} must be a positive multiple of "
            f"{share}, the sum of --sampling_weights, so each batch holds the types in "
            "those proportions"
        )
    for de_type, default in DEFAULT_DIRS.items():
        name = f"{de_type}_dir"
        if getattr(args, name) is None and de_type not in args.synthetic:
            setattr(args, name, default)


def data_folders(args: argparse.Namespace, validation: bool = False) -> dict[str, str | None]:
    """The folder of each data key of TYPE_FOLDERS ("denoise", "derain", ...) from its flag
    (``--KEY_dir``, or ``--val_KEY_dir`` with ``validation``), None where not given; what
    utils/train_dataset.py's scans and builders take."""
    return {
        key: getattr(args, folder_flag(key, validation).removeprefix("--"))
        for key in dict.fromkeys(TYPE_FOLDERS.values())
    }


def format_settings(settings: dict[str, Any]) -> str:
    """``--name value ...`` for a log line."""
    return " ".join(
        f"--{name} {' '.join(map(str, value)) if isinstance(value, list) else value}"
        for name, value in settings.items()
    )
