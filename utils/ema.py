"""Exponential moving average (EMA) of a model's weights: an option of train.py.

The paper trains without it. With one patch per degradation type in a batch, the weights after
any single step are noisy; their average over the last ~1 / (1 - decay) steps (Polyak
averaging, BasicSR's ``ema_decay``) restores better and makes validation, and with it the choice
of a checkpoint, steadier. Parameters are averaged; buffers (BatchNorm statistics, MoCo's queue
and its pointer) are copied from the trained model, since an average of queued keys or of an
integer pointer means nothing.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """``model`` is an average of the weights of the model given to ``update``."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """average <- decay * average + (1 - decay) * current, for every parameter."""
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), 1.0 - self.decay)
        for average, current in zip(self.model.buffers(), model.buffers(), strict=True):
            average.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state_dict, strict=True)
