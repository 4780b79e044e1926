"""The resumable state of a training run and its model-only exports.

A training checkpoint (``save_training_state``) holds everything ``train.py --resume`` needs:
model, optimiser, AMP scaler, the ``Position`` in the data stream, the RNG states and the
resolved arguments; an export (``export_model``) holds the model alone, with the official key
names. Both are written atomically and read back with ``weights_only=True``.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from net import AirNet
from utils.checkpoint import MODEL_KWARGS, save_checkpoint_atomic
from utils.ema import WeightAverage
from utils.task_loss import UncertaintyHead

logger = logging.getLogger("train")

PAPER_SIZE = {"n_feats": 64, "n_groups": 5, "n_blocks": 5}


@dataclass
class Position:
    """Where a run is: the epoch to train, batches of it already done, optimiser steps."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_psnr: float = -math.inf
    best_qualifies: bool = False  # whether airnet_best.pth passed the shipping rule


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in MODEL_KWARGS}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict[str, Any]:
    """Python, numpy and torch generator states, in types that ``weights_only`` loads."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, mt_state, gauss = states["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def export_model(model: AirNet, args: argparse.Namespace, path: Path, **info: Any) -> None:
    """Model-only file with the official key names, for test.py, demo.py and ``load_airnet``.

    A model of the paper's size is saved as a flat state dict, the format of the official
    files (so the official code loads it too); the official format cannot say what size a
    smaller model has, so other sizes are saved as ``{"model": state_dict, "args": size}``.
    ``info`` (epoch, step, qualifies) and the trained ``de_type`` list go into "args" of the
    latter only. Weights that are not all finite are not written (the file on disk stays the
    last good one), with a warning.
    """
    if not weights_finite(model):
        logger.warning("%s not written: the weights are not finite", path)
        return
    state_dict = model.state_dict()
    if model_kwargs(args) == PAPER_SIZE:
        save_checkpoint_atomic(state_dict, path)
    else:
        stored = {**model_kwargs(args), **info}
        if getattr(args, "de_type", None) is not None:  # decision 5: the trained types
            stored["de_type"] = list(args.de_type)
        save_checkpoint_atomic({"model": state_dict, "args": stored}, path)


def weights_finite(*modules: nn.Module | None) -> bool:
    """True when every floating-point parameter and buffer of ``modules`` is finite."""
    return all(
        bool(torch.isfinite(tensor).all())
        for module in modules
        if module is not None
        for tensor in module.state_dict().values()
        if tensor.is_floating_point()
    )


def save_training_state(
    path: Path,
    model: AirNet,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    args: argparse.Namespace,
    position: Position,
    ema: WeightAverage | None = None,
    head: UncertaintyHead | None = None,
) -> None:
    """Everything needed to resume: the model (its MoCo queue and pointer are buffers in it),
    the types of the queued keys (``queue_types``: a buffer kept out of the state dict, whose
    keys stay the official ones), optimiser, AMP scaler, position (epoch to train, batches
    done in it, step), RNG states, the resolved arguments and, with --ema_decay, the averaged
    weights, with --loss_weighting tur the uncertainty head. Not written when a weight is not
    finite, so the file on disk is always the last good one."""
    if not weights_finite(model, head, ema.model if ema is not None else None):
        logger.warning("%s not written: the weights are not finite", path)
        return
    extra = {"ema": ema.state_dict()} if ema is not None else {}
    if head is not None:
        extra["loss_head"] = head.state_dict()
    save_checkpoint_atomic(
        {
            **extra,
            "model": model.state_dict(),
            "queue_types": model.E.E.queue_types,
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": position.epoch,
            "batch": position.batch,
            "step": position.step,
            "best_psnr": position.best_psnr,
            "best_qualifies": position.best_qualifies,
            "rng": rng_states(),
            "args": vars(args),
        },
        path,
    )
