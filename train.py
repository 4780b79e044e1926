"""Train AirNet (Li et al., "All-In-One Image Restoration for Unknown Corruption", CVPR 2022).

The official recipe, one command:
    python train.py --de_type denoise_15 denoise_25 denoise_50 derain dehaze \\
        --denoise_dir BSD400+WED/ --derain_dir Train100L/ --dehaze_dir RESIDE_OTS/
Several GPUs:   torchrun --nproc_per_node N train.py ...
Resume:         python train.py ... --resume ckpt/airnet_last_train.pth
Fine-tune:      python train.py ... --init_from ckpt/FILE.pth   (fresh optimiser and schedule)
Grow:           python train.py ... --init_from ckpt/FILE.pth --grow_groups 1   (one more DGG)
Check the data: python train.py ... --check_data   (a table of what training would read; exit 0/2)
Test content:   every run and --check_data name the training and validation images that are
                benchmark images (data/benchmarks/); --drop_test_content leaves them out

Phase 1 (epoch < --epochs_encoder) trains the degradation encoder alone with MoCo's
contrastive loss (or, with --encoder_loss supcon, supervised contrast over the degradation
types); phase 2 trains the whole model with L1(restored, clean) + 0.1 * contrastive.
Files written to --ckpt_path:
    airnet_last_train.pth  everything needed to resume (end of every epoch, at --max_steps, on
                           SIGTERM/Ctrl-C, and mid-epoch every --checkpoint_every_minutes/_steps)
    airnet_last.pth        the model only, official key names, same moments (a flat state dict
                           like the official files for the paper's size, else {"model", "args"})
    airnet_best.pth        the model only, best mean validation PSNR
    airnet_epoch_N.pth     the model only, every --save_every epochs
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from net import AirNet, load_airnet
from net.grow import grown_state_dict
from option import (
    SettingsError,
    apply_checkpoint_settings,
    data_folders,
    format_settings,
    parse_args,
)
from utils.checkpoint import CheckpointError, load_model_state, read_checkpoint
from utils.cli import N_GROUPS
from utils.distributed import (
    DistInfo,
    all_reduce_max,
    all_reduce_mean,
    barrier,
    broadcast_from_main,
    cleanup_distributed,
    init_distributed,
)
from utils.ema import WeightAverage
from utils.encoder_loss import contrastive_accuracy, contrastive_loss
from utils.fingerprints import HashCache, default_cache_path, load_benchmarks
from utils.outputs import FolderLock, OutputError, check_writable_folder
from utils.overlaps import LIST_NAME, Overlaps, find_overlaps, format_overlaps, write_overlap_list
from utils.paths import show_names_in_output, shown
from utils.precision import PRECISIONS, needs_grad_scaler, warn_if_slow_precision
from utils.progress import bars_wanted, format_values
from utils.run_log import RunLog, log_validation
from utils.run_state import (
    PAPER_SIZE,
    Position,
    export_model,
    model_kwargs,
    save_training_state,
    seed_everything,
    set_rng_states,
)
from utils.stop import EXIT_INTERRUPTED, GracefulStop
from utils.task_loss import (
    HEAD_LR_SCALE,
    RestorerWithUncertainty,
    UncertaintyHead,
    per_type_l1,
    psnr_loss,
    uncertainty_weighted_l1,
)
from utils.train_dataset import (
    BalancedBatchSampler,
    DataError,
    TrainDataset,
    TypeScan,
    ValidationImage,
    build_sources,
    build_validation_set,
    format_data_check,
    leave_out,
    scan_training_data,
    scan_validation_data,
    seed_worker,
)
from utils.validation import format_comparison, is_better_export, validate

logger = logging.getLogger("train")

TRAIN_CHECKPOINT = "airnet_last_train.pth"
CONTRAST_WEIGHT = 0.1  # phase 2: L1 + 0.1 * contrastive loss
OUTPUT_FLAGS = ("ckpt_path", "log_dir", "output_path")  # the folders a run writes


EXIT_FAILED, EXIT_SETUP = 1, 2  # docs/errors.md's table of exit codes


class SetupError(RuntimeError):
    """The run cannot start: a flag, a device, a data folder (one line, exit 2)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class Run:
    """The parts of a training run that every step of the loop uses."""

    model: AirNet  # unwrapped (no DDP)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: DataLoader
    sampler: BalancedBatchSampler
    args: argparse.Namespace
    info: DistInfo
    device: torch.device
    run_log: RunLog | None  # rank 0 only
    stop: GracefulStop
    last_save: float = field(default_factory=lambda: time.monotonic())  # last resumable save
    ema: WeightAverage | None = None  # --ema_decay: the weights that are validated and exported
    head: UncertaintyHead | None = None  # --loss_weighting tur: training only, never exported


@dataclass
class TrainResult:
    """What ``main`` returns: the trained model (unwrapped) and where the run stopped."""

    model: AirNet
    epoch: int
    step: int
    best_psnr: float
    validations: list[dict[str, float]] = field(default_factory=list)
    interrupted: str | None = None  # name of the signal that stopped the run early, if any
    averaged: AirNet | None = None  # the moving average of the weights (--ema_decay)


# ---------------------------------------------------------------------------------------------
# Learning rate
# ---------------------------------------------------------------------------------------------


def lr_at_epoch(epoch: int, base_lr: float, epochs_encoder: int) -> float:
    """The learning rate during ``epoch`` (0-based), as the official code sets it.

    The official loop sets the rate at the end of epoch e for epoch e + 1:
    lr * 0.1^(e // 60) while e <= epochs_encoder, then 1e-4 * 0.5^((e - epochs_encoder) // 125).
    The phase-2 rate is written here as 0.1 * base_lr, which is the official 1e-4 at the
    default --lr 1e-3 and follows --lr otherwise.
    """
    if epoch == 0:
        return base_lr
    previous = epoch - 1
    if previous <= epochs_encoder:
        return base_lr * 0.1 ** (previous // 60)
    return 0.1 * base_lr * 0.5 ** ((previous - epochs_encoder) // 125)


# ---------------------------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | Path) -> Path:
    """--resume accepts the training checkpoint or the folder that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / TRAIN_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"--resume {path}: no training checkpoint there")
    return path


def load_training_checkpoint(
    path: Path, args: argparse.Namespace, world_size: int
) -> dict[str, Any]:
    """Read a training checkpoint and take its settings into ``args`` by decision 6
    (option.py: the model and data stream always, the schedule and folders unless given
    again, never the device or output paths)."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or not {"model", "optimizer", "epoch", "args"} <= set(
        checkpoint
    ):
        raise CheckpointError(
            f"--resume {path}: not a training checkpoint (a model-only export or another "
            f"file; resume from {TRAIN_CHECKPOINT})"
        )
    try:
        taken, ignored = apply_checkpoint_settings(args, checkpoint["args"])
    except SettingsError as error:
        raise SetupError(f"--resume {path}: {error}") from error
    if taken:
        logger.info("settings from the checkpoint: %s", format_settings(taken))
    if ignored:
        logger.warning(
            "fixed by the checkpoint, ignored: %s (start a new run to change them)",
            format_settings(ignored),
        )
    if checkpoint["args"].get("world_size", 1) != world_size:
        logger.warning(
            "the checkpoint was written by %d process(es), this run has %d: the data order "
            "differs from an uninterrupted run",
            checkpoint["args"].get("world_size", 1),
            world_size,
        )
    return checkpoint


def read_init_weights(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The state dict of --init_from; its model size replaces the command line's (a flat
    official-format file is the paper's size)."""
    state_dict, stored = load_model_state(args.init_from)
    size = stored or PAPER_SIZE
    changed = {name: value for name, value in size.items() if getattr(args, name) != value}
    for name, value in size.items():
        setattr(args, name, value)
    if changed:
        settings = " ".join(f"--{name} {value}" for name, value in changed.items())
        logger.info("the size of %s replaces the command line's: %s", args.init_from, settings)
    if args.grow_groups:
        grown = args.n_groups + args.grow_groups
        if grown > N_GROUPS.maximum:
            raise SetupError(
                f"--grow_groups {args.grow_groups}: {args.init_from} has {args.n_groups} DGGs, "
                f"and {grown} is more than the {N_GROUPS.maximum} that --n_groups allows"
            )
        logger.info(
            "--grow_groups %d: DGRN grows from %d to %d DGGs, the added ones starting as the "
            "identity",
            args.grow_groups,
            args.n_groups,
            grown,
        )
        args.n_groups = grown
    return state_dict


def load_init_weights(
    model: AirNet, state_dict: dict[str, torch.Tensor], path: str, grow_groups: int = 0
) -> None:
    """Load --init_from weights; a MoCo queue of another length is left fresh (it refills
    within queue_size / batch_size steps). With ``grow_groups``, ``model`` is the file's size
    plus that many DGGs, added as the identity (net/grow.py)."""
    queue = state_dict.get("E.E.queue")
    if queue is not None and queue.shape != model.E.E.queue.shape:
        state_dict = {
            **state_dict,
            "E.E.queue": model.E.E.queue,
            "E.E.queue_ptr": model.E.E.queue_ptr,
        }
    if grow_groups:
        try:
            state_dict = grown_state_dict(state_dict, model.state_dict(), grow_groups)
        except ValueError as error:
            raise CheckpointError(f"--init_from {path} --grow_groups: {error}") from error
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(f"--init_from {path}: does not match AirNet: {detail}") from error
    logger.info("initialised from %s (fresh optimiser, epoch 0, step 0)", path)


def build_loader(
    args: argparse.Namespace, info: DistInfo, pin_memory: bool, excluded: dict[Path, str]
) -> tuple[DataLoader, BalancedBatchSampler]:
    """The training loader, without the files of ``excluded`` (file -> reason)."""
    try:
        sources = build_sources(
            args.de_type, data_folders(args), args.data_file_dir, args.synthetic, excluded
        )
    except DataError as error:  # a type without usable data
        raise SetupError(str(error)) from error
    dataset = TrainDataset(sources, args.patch_size)
    sampler = BalancedBatchSampler(
        [len(source.items) for source in sources],
        batch_size=args.batch_size,
        epoch_size=args.epoch_size,
        seed=args.seed,
        rank=info.rank,
        world_size=info.world_size,
        weights=args.sampling_weights,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=args.num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(args.seed + info.rank),
        pin_memory=pin_memory,
        persistent_workers=args.num_workers > 0,
    )
    return loader, sampler


def load_validation_set(
    args: argparse.Namespace, excluded: dict[Path, str]
) -> list[ValidationImage]:
    """The held-out images of every trained type, read once before training starts, without
    the files of ``excluded`` (file -> reason)."""
    try:
        return build_validation_set(
            args.de_type,
            data_folders(args, validation=True),
            args.val_images,
            args.val_crop,
            excluded,
        )
    except DataError as error:
        raise SetupError(
            f"validation set: {error} (or train without validation: --val_every 0)"
        ) from error


def scan_data(args: argparse.Namespace) -> list[tuple[str, list[TypeScan]]]:
    """("training", scans) and, when --val_every > 0, ("validation", scans): the data as
    training reads it (utils/train_dataset.py)."""
    folders = data_folders(args)
    parts = [
        ("training", scan_training_data(args.de_type, folders, args.data_file_dir, args.synthetic))
    ]
    if args.val_every:
        parts.append(("validation", scan_validation_data(args.de_type, data_folders(args, True))))
    return parts


def check_test_content(
    args: argparse.Namespace, parts: list[tuple[str, list[TypeScan]]], write: bool = True
) -> tuple[Overlaps, list[str]]:
    """Compare every training and validation image of ``parts`` (degraded and clean side)
    with the benchmark fingerprints of data/benchmarks/ (utils/overlaps.py); hashes are cached
    in ``default_cache_path()``. With ``write``, the overlaps are listed file by file in
    LOG_DIR/test_content.tsv.

    Returns (the overlaps; the lines to print: the overlaps per data folder and benchmark,
    whether --drop_test_content leaves them out, and the cost).

    Raises:
        SetupError: a fingerprint file cannot be read.
    """
    try:
        benchmarks = load_benchmarks()
    except (OSError, ValueError) as error:
        raise SetupError(str(error)) from error
    overlaps = find_overlaps(parts, benchmarks, HashCache(default_cache_path()))
    list_path = Path(args.log_dir) / LIST_NAME
    if write:
        write_overlap_list(overlaps, list_path)
    return overlaps, format_overlaps(overlaps, list_path, args.drop_test_content)


def check_data(args: argparse.Namespace) -> bool:
    """--check_data: scan the data as training would, with training's own functions
    (utils/train_dataset.py: pairing, the size rule, unreadable files), the validation folders
    too when --val_every > 0; name the images that are test content (``check_test_content``,
    left out with --drop_test_content); print the table; True when every type is usable. A
    resumed run (--resume) is checked with the checkpoint's settings (decision 6). No model is
    built."""
    if args.resume:
        load_training_checkpoint(resolve_checkpoint(args.resume), args, world_size=1)
    try:  # it writes LOG_DIR/test_content.tsv: checked before the scan, as a run's folders are
        check_writable_folder(args.log_dir, "--log_dir")
    except OutputError as error:
        raise SetupError(str(error)) from error
    parts = scan_data(args)
    overlaps, lines = check_test_content(args, parts)
    if args.drop_test_content:
        parts = [(part, leave_out(scans, overlaps.excluded())) for part, scans in parts]
    print(shown(format_data_check(parts)), flush=True)
    print(shown("\n".join(["", *lines])), flush=True)
    return all(scan.usable for _, scans in parts for scan in scans)


def wrap_for_phase(
    model: AirNet,
    encoder_only: bool,
    info: DistInfo,
    device: torch.device,
    head: UncertaintyHead | None = None,
) -> nn.Module:
    """The module a training step calls: the encoder in phase 1, the whole model in phase 2
    (with the uncertainty head of --loss_weighting tur, so that DDP keeps the head the same
    on every process), under DistributedDataParallel when there are several processes.

    Wrapping only what the phase trains keeps DDP from waiting for gradients of DGRN in
    phase 1 (no ``find_unused_parameters`` needed). BatchNorm statistics stay per process
    (each process sees one patch per type, as one official GPU does) unless --sync_bn; DDP
    broadcasts rank 0's running statistics and MoCo queue at every forward.
    """
    if encoder_only:
        module = model.E
    else:
        module = model if head is None else RestorerWithUncertainty(model, head)
    if not info.distributed:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


# ---------------------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------------------


def compute_losses(
    net: nn.Module,
    batch: dict[str, torch.Tensor],
    encoder_only: bool,
    device: torch.device,
    type_names: list[str] | None = None,
    tur_floor: float | None = None,
    loss_weighting: str = "none",
    encoder_loss: str = "moco",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward one batch; returns (loss, detached stats: loss, l1, ce, contrast_acc and, in
    phase 2 when ``type_names`` are given, each type's own ``l1/TYPE`` and, with the
    uncertainty head (``net`` returns u), its ``u/TYPE``).

    The restoration loss is L1 (the paper); when ``net`` returns per-pixel scales u
    (--loss_weighting tur), the task-balanced loss of utils/task_loss.py floored at
    ``tur_floor``; with ``loss_weighting`` "psnr", the per-patch PSNR loss of the same module.
    Phase 2 adds 0.1 * contrastive in every case. The contrastive loss is MoCo's InfoNCE (the
    paper), or with ``encoder_loss`` "supcon" supervised contrast over the batch's types
    (utils/encoder_loss.py).
    """
    degraded_1 = batch["degraded_1"].to(device, non_blocking=True)  # (B, 3, P, P) query
    degraded_2 = batch["degraded_2"].to(device, non_blocking=True)  # (B, 3, P, P) key
    inputs = [degraded_1, degraded_2]
    if encoder_loss == "supcon":
        inputs.append(batch["de_type"].to(device, non_blocking=True))  # (B,) type indices
    if encoder_only:
        # (B, 1+K), (B,); with the types (B, B+K), (B, B+K) bool
        _, logits, labels, _ = net(*inputs)
        ce = contrastive_loss(logits, labels)
        l1 = torch.zeros((), device=device)
        loss = ce
    else:
        # (B, 3, P, P), (B, 1+K), (B,) and, with the uncertainty head, u (B, 1, P, P)
        restored, logits, labels, *uncertainty = net(*inputs)
        clean_1 = batch["clean_1"].to(device, non_blocking=True)
        ce = contrastive_loss(logits, labels)
        l1 = F.l1_loss(restored.float(), clean_1)
        if uncertainty:
            restoration, per_type = uncertainty_weighted_l1(
                restored, clean_1, uncertainty[0], batch["de_type"], type_names, tur_floor
            )
        elif loss_weighting == "psnr":
            restoration, per_type = psnr_loss(restored, clean_1, batch["de_type"], type_names)
        else:
            restoration = l1
            per_type = {}
            if type_names is not None:
                per_type = per_type_l1(restored, clean_1, batch["de_type"], type_names)
        loss = restoration + CONTRAST_WEIGHT * ce
    accuracy = contrastive_accuracy(logits, labels)  # how often the top key is a positive
    stats = {"loss": loss, "l1": l1, "ce": ce, "contrast_acc": accuracy}
    if not encoder_only:
        stats.update(per_type)
    return loss, {name: value.detach().float() for name, value in stats.items()}


# ---------------------------------------------------------------------------------------------
# Checkpoints and logs
# ---------------------------------------------------------------------------------------------


def non_finite_message(values: dict[str, float], step: int, epoch: int, checkpoint: Path) -> str:
    losses = ", ".join(f"{name} {value}" for name, value in values.items())
    if checkpoint.is_file():
        keep = f"the last good checkpoint {checkpoint} is kept (resume it, maybe with lower --lr)"
    else:
        keep = "no checkpoint had been written yet"
    return f"non-finite loss at step {step} (epoch {epoch}): {losses}; stopping, {keep}"


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> TrainResult:
    """Train as ``args`` say; returns the model and where the run stopped."""
    try:
        info, device = init_distributed(args.device)
    except (ValueError, RuntimeError) as error:  # an unknown or absent device
        raise SetupError(str(error).splitlines()[0]) from error
    try:
        with FolderLock() as outputs:
            claim_outputs(args, info, outputs)
            return train(args, info, device)
    finally:
        cleanup_distributed()


def claim_outputs(args: argparse.Namespace, info: DistInfo, outputs: FolderLock) -> None:
    """Before any work, rank 0 checks by a real write that every output folder can be
    written and holds each one for this run (utils/outputs.py: a second run on a folder in
    use is refused); every process gets rank 0's verdict, so all of them stop together.

    Raises:
        SetupError: one line naming the flag and the folder (exit 2).
    """
    error = None
    if info.is_main:
        try:
            for name in OUTPUT_FLAGS:
                check_writable_folder(getattr(args, name), f"--{name}")
            for name in OUTPUT_FLAGS:
                outputs.acquire(getattr(args, name), f"--{name}")
        except OutputError as refused:
            error = str(refused)
    error = broadcast_from_main(error, info)
    if error:
        raise SetupError(error)


def check_reference_weights(args: argparse.Namespace) -> None:
    """--reference_weights is read at the first validation: say now when it cannot be read.

    Raises:
        SetupError: the file is missing, a folder, or unreadable (one line, exit 2).
    """
    if not (args.reference_weights and args.val_every):
        return
    path = Path(args.reference_weights)
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as error:
        reason = "no such file" if isinstance(error, FileNotFoundError) else error.strerror
        raise SetupError(f"--reference_weights {path}: cannot read it ({reason})") from error


def optimizer_step(
    net: nn.Module,
    batch: dict[str, torch.Tensor],
    encoder_only: bool,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    info: DistInfo,
    device: torch.device,
    precision: str,
    type_names: list[str] | None = None,
    tur_floor: float | None = None,
    loss_weighting: str = "none",
    encoder_loss: str = "moco",
) -> dict[str, float]:
    """One step; returns the losses and accuracy averaged over the processes (per-type
    numbers as ``compute_losses`` gives them)."""
    dtype = PRECISIONS[precision]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss, stats = compute_losses(
            net, batch, encoder_only, device, type_names, tur_floor, loss_weighting, encoder_loss
        )
    values = all_reduce_mean(torch.stack(list(stats.values())), info).tolist()
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return dict(zip(stats, values, strict=True))


def train_one_epoch(net: nn.Module, run: Run, position: Position) -> bool:
    """Train the rest of ``position.epoch``; True when --max_steps or a signal stopped it."""
    args, info = run.args, run.info
    encoder_only = position.epoch < args.epochs_encoder
    lr = run.optimizer.param_groups[0]["lr"]
    phase = "encoder" if encoder_only else "full"
    bars = bars_wanted()  # in a file (> run.log), one plain line every --log_every steps
    progress = tqdm(
        run.loader,
        desc=f"epoch {position.epoch} ({phase})",
        disable=not (info.is_main and bars),
        leave=False,
    )
    window: dict[str, list[float]] = {}
    window_start = time.perf_counter()
    for batch in progress:
        stats = optimizer_step(
            net,
            batch,
            encoder_only,
            run.optimizer,
            run.scaler,
            info,
            run.device,
            args.precision,
            list(args.de_type),
            args.tur_floor,
            args.loss_weighting,
            args.encoder_loss,
        )
        if run.ema is not None:
            run.ema.update(run.model)
        position.step += 1
        position.batch += 1
        if not all(math.isfinite(value) for value in stats.values()):
            checkpoint = Path(args.ckpt_path) / TRAIN_CHECKPOINT
            raise NonFiniteLossError(
                non_finite_message(stats, position.step, position.epoch, checkpoint)
            )
        progress.set_postfix({name: f"{value:.4f}" for name, value in stats.items()})
        for name, value in stats.items():
            window.setdefault(name, []).append(value)
        if run.run_log is not None and position.step % args.log_every == 0:
            means = {name: float(np.mean(values)) for name, values in window.items()}
            run.run_log.write("train", position.step, position.epoch, {**means, "lr": lr})
            if not bars:
                seconds = (time.perf_counter() - window_start) / len(window["loss"])
                logger.info(
                    "epoch %d (%s) step %d: %s lr=%.3g (%.3f s/step)",
                    position.epoch,
                    phase,
                    position.step,
                    format_values(means),
                    lr,
                    seconds,
                )
            window, window_start = {}, time.perf_counter()
        if (args.max_steps is not None and position.step >= args.max_steps) or stop_everywhere(
            run.stop, info, run.device
        ):
            progress.close()
            return True  # train_loop saves
        if position.batch < run.sampler.batches_per_epoch() and checkpoint_due(run, position):
            save_resumable(run, position)
    progress.close()
    return False


def checkpoint_due(run: Run, position: Position) -> bool:
    """True on every process when the mid-epoch checkpoint is due: every
    --checkpoint_every_steps steps, or --checkpoint_every_minutes after the last save by any
    process's clock (a max over the processes, so all of them save at the same step)."""
    args = run.args
    by_steps = args.checkpoint_every_steps and position.step % args.checkpoint_every_steps == 0
    minutes = (time.monotonic() - run.last_save) / 60
    by_time = args.checkpoint_every_minutes and minutes >= args.checkpoint_every_minutes
    return bool(by_steps) or all_reduce_max(int(bool(by_time)), run.info, run.device) > 0


def save_resumable(run: Run, position: Position) -> None:
    """Rank 0 writes airnet_last_train.pth (atomically); every process waits for it."""
    if run.info.is_main:
        path = Path(run.args.ckpt_path) / TRAIN_CHECKPOINT
        save_training_state(
            path, run.model, run.optimizer, run.scaler, run.args, position, run.ema, run.head
        )
    barrier(run.info)
    run.last_save = time.monotonic()


def stop_everywhere(stop: GracefulStop, info: DistInfo, device: torch.device) -> bool:
    """True on every process once any of them got a signal, so all stop at the same step
    (and all report the signal)."""
    signum = all_reduce_max(stop.signum, info, device)
    if signum and stop.requested is None:
        stop.requested = signal.Signals(signum).name
    return signum > 0


def validate_and_log(
    model: AirNet,
    validation_set: list[ValidationImage],
    epoch: int,
    position: Position,
    args: argparse.Namespace,
    device: torch.device,
    run_log: RunLog,
    reference: dict[str, float | bool | None] | None = None,
) -> dict[str, float]:
    """Validate, log the numbers and sample images, and export airnet_best.pth when the
    model is the best yet: the best ``psnr/mean`` among exports that pass the shipping rule
    (utils/validation.py; against ``reference``, the shipped file's metrics), or, before any
    passes, the best mean (its file says ``"qualifies": false``)."""
    metrics, restored = validate(model, validation_set, device, reference)
    run_log.write("val", position.step, epoch, metrics)
    log_validation(run_log.writer, Path(args.output_path), validation_set, restored, position.step)
    summary = " ".join(
        f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}"
        for name, value in metrics.items()
    )
    logger.info("epoch %d step %d: %s", epoch, position.step, summary)
    logger.info("PSNR per type: %s", format_comparison(metrics, reference))
    if is_better_export(metrics, position.best_psnr, position.best_qualifies):
        position.best_psnr = float(metrics["psnr/mean"])
        position.best_qualifies = bool(metrics["qualifies"])
        best = Path(args.ckpt_path) / "airnet_best.pth"
        export_model(
            model,
            args,
            best,
            epoch=epoch,
            step=position.step,
            qualifies=position.best_qualifies,
        )
    return {"epoch": epoch, "step": position.step, **metrics}


def score_reference(
    path: str, validation_set: list[ValidationImage], device: torch.device
) -> dict[str, float | bool | None]:
    """--reference_weights: the shipped file's metrics on this run's validation set, scored
    once per run (decision 14); every validation of the run compares with them."""
    try:
        reference = load_airnet(path, device)
    except (FileNotFoundError, CheckpointError) as error:
        raise SetupError(f"--reference_weights {path}: {error}") from error
    metrics, _ = validate(reference, validation_set, device)
    logger.info(
        "the shipped file %s on the validation set: %s", path, format_comparison(metrics, None)
    )
    return metrics


def start_weight_average(
    model: AirNet, decay: float, state: dict[str, torch.Tensor] | None
) -> WeightAverage | None:
    """The moving average of --ema_decay: resumed from the checkpoint's, or started from the
    current weights (a new run, --init_from, or a checkpoint written without it)."""
    if not decay:
        if state is not None:
            logger.warning("--ema_decay 0: the checkpoint's averaged weights are not continued")
        return None
    ema = WeightAverage(model, decay)
    if state is not None:
        ema.load_state_dict(state)
        logger.info("EMA of the weights (decay %g) resumed from the checkpoint", decay)
    else:
        logger.info("EMA of the weights (decay %g) starts from the current weights", decay)
    return ema


def train(args: argparse.Namespace, info: DistInfo, device: torch.device) -> TrainResult:
    if not info.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    checkpoint = None
    if args.resume:
        resume_path = resolve_checkpoint(args.resume)
        checkpoint = load_training_checkpoint(resume_path, args, info.world_size)
        logger.info("resuming from %s", resume_path)
    check_reference_weights(args)  # after the checkpoint, which may name it (decision 6)
    init_state = read_init_weights(args) if args.init_from else None
    warn_if_slow_precision(args.precision, device)
    if args.queue_size is None:
        args.queue_size = 256 * args.batch_size * info.world_size
    args.device = str(device)
    args.world_size = info.world_size
    seed_everything(args.seed)

    excluded: dict[Path, str] = {}
    if info.is_main or args.drop_test_content:  # the other processes only need what to drop
        overlaps, lines = check_test_content(args, scan_data(args), write=info.is_main)
        if info.is_main:
            report = logger.warning if overlaps.matches else logger.info
            for line in lines:
                report("%s", line)
        if args.drop_test_content:
            excluded = overlaps.excluded()
    loader, sampler = build_loader(args, info, device.type == "cuda", excluded)
    validation_set = []
    if args.val_every and info.is_main:
        validation_set = load_validation_set(args, excluded)

    model = AirNet(**model_kwargs(args), queue_size=args.queue_size, dcn_impl=args.dcn_impl)
    if args.sync_bn and info.distributed and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif args.sync_bn:
        logger.warning("--sync_bn needs several CUDA processes; BatchNorm stays per process")
    if init_state is not None:
        load_init_weights(model, init_state, args.init_from, args.grow_groups)
        del init_state
    model.to(device).train()
    head = None
    if args.loss_weighting == "tur":
        head = UncertaintyHead(args.n_feats).to(device).train()
    groups = [{"params": list(model.parameters())}]
    if head is not None:
        groups.append({"params": list(head.parameters()), "lr_scale": HEAD_LR_SCALE})
    optimizer = torch.optim.Adam(groups, lr=args.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(args.precision))

    position = Position()
    ema_state = None
    if checkpoint is not None:
        ema_state = checkpoint.get("ema")
        model.load_state_dict(checkpoint["model"])
        if "queue_types" in checkpoint:  # kept out of the state dict; older files: unknown
            model.E.E.queue_types.copy_(checkpoint["queue_types"])
        if head is not None:
            head.load_state_dict(checkpoint["loss_head"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        set_rng_states(checkpoint["rng"])
        position = Position(
            checkpoint["epoch"],
            checkpoint["batch"],
            checkpoint["step"],
            checkpoint["best_psnr"],
            checkpoint.get("best_qualifies", False),  # older checkpoints: the rule is unknown
        )
        del checkpoint
    ema = start_weight_average(model, args.ema_decay, ema_state)

    ckpt_path = Path(args.ckpt_path)
    run_log = RunLog(Path(args.log_dir), args) if info.is_main else None
    reference = None
    if validation_set and args.reference_weights:
        reference = score_reference(args.reference_weights, validation_set, device)
        run_log.write("reference", position.step, position.epoch, reference)
    logger.info(
        "AirNet %s, %d parameters, %d process(es) on %s, %d steps per epoch",
        model_kwargs(args),
        sum(p.numel() for p in model.parameters()),
        info.world_size,
        device,
        sampler.batches_per_epoch(),
    )

    with GracefulStop() as stop:
        run = Run(
            model,
            optimizer,
            scaler,
            loader,
            sampler,
            args,
            info,
            device,
            run_log,
            stop,
            ema=ema,
            head=head,
        )
        validations = train_loop(run, validation_set, position, reference)
    if run_log is not None:
        run_log.close()
    logger.info(
        "stopped at epoch %d, step %d; checkpoints in %s", position.epoch, position.step, ckpt_path
    )
    if stop.requested:
        logger.warning(
            "stopped by %s; continue with --resume %s", stop.requested, ckpt_path / TRAIN_CHECKPOINT
        )
    return TrainResult(
        model,
        position.epoch,
        position.step,
        position.best_psnr,
        validations,
        stop.requested,
        ema.model if ema is not None else None,
    )


def train_loop(
    run: Run,
    validation_set: list[ValidationImage],
    position: Position,
    reference: dict[str, float | bool | None] | None = None,
) -> list[dict[str, float]]:
    """Epochs from ``position`` to the end (or --max_steps, or a signal); returns validations
    (the shipping rule against ``reference``, the shipped file's metrics, when given)."""
    model, args, info = run.model, run.args, run.info
    exported = run.ema.model if run.ema is not None else model  # validated and exported
    ckpt_path = Path(args.ckpt_path)
    validations = []
    net, net_phase = None, None
    stopped = args.max_steps is not None and position.step >= args.max_steps
    while position.epoch < args.epochs and not stopped:
        epoch = position.epoch
        encoder_only = epoch < args.epochs_encoder
        for group in run.optimizer.param_groups:  # the uncertainty head's has an lr_scale
            group["lr"] = lr_at_epoch(epoch, args.lr, args.epochs_encoder)
            group["lr"] *= group.get("lr_scale", 1.0)
        if net_phase != encoder_only:
            net = None
            gc.collect()  # the old DDP wrapper's gradient hooks go with it
            net = wrap_for_phase(model, encoder_only, info, run.device, run.head)
            net_phase = encoder_only
        run.sampler.set_epoch(epoch, position.batch)
        stopped = train_one_epoch(net, run, position)
        epoch_done = position.batch >= run.sampler.batches_per_epoch()
        if epoch_done:
            position.epoch, position.batch = epoch + 1, 0

        if info.is_main:
            due = args.val_every and (
                (epoch_done and (epoch + 1) % args.val_every == 0)
                or (stopped and not run.stop.requested)  # a signal wants a quick exit
                or position.epoch == args.epochs
            )
            if due:
                validations.append(
                    validate_and_log(
                        exported,
                        validation_set,
                        epoch,
                        position,
                        args,
                        run.device,
                        run.run_log,
                        reference,
                    )
                )
            save_training_state(
                ckpt_path / TRAIN_CHECKPOINT,
                model,
                run.optimizer,
                run.scaler,
                args,
                position,
                run.ema,
                run.head,
            )
            run.last_save = time.monotonic()
            export_model(
                exported, args, ckpt_path / "airnet_last.pth", epoch=epoch, step=position.step
            )
            if epoch_done and (epoch + 1) % args.save_every == 0:
                export = ckpt_path / f"airnet_epoch_{epoch + 1}.pth"
                export_model(exported, args, export, step=position.step)
        barrier(info)
    return validations


def cli() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    show_names_in_output()
    args = parse_args()
    try:
        if args.check_data:
            raise SystemExit(0 if check_data(args) else EXIT_SETUP)
        with logging_redirect_tqdm():  # log lines do not break the progress bar
            result = main(args)
    except NonFiniteLossError as error:
        logger.error("%s", error)
        raise SystemExit(EXIT_FAILED) from None
    except (FileNotFoundError, CheckpointError, SetupError) as error:  # cannot start
        logger.error("%s", error)
        raise SystemExit(EXIT_SETUP) from None
    except OutputError as error:  # a write failed mid-run (disk full, folder gone)
        logger.error("%s; stopping (the checkpoints written before stay as they were)", error)
        raise SystemExit(EXIT_FAILED) from None
    except KeyboardInterrupt:  # before the training loop's own stop (setup, --check_data)
        logger.error("interrupted (Ctrl-C)")
        raise SystemExit(EXIT_INTERRUPTED) from None
    if result.interrupted:  # saved and resumable, but not finished: say so to the caller
        raise SystemExit(128 + signal.Signals[result.interrupted].value)


if __name__ == "__main__":
    cli()
