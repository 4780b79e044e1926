"""Task-balanced restoration losses: per-type uncertainty weighting (``--loss_weighting tur``)
and the per-patch PSNR loss (``--loss_weighting psnr``).

Wu et al., "Debiased All-in-one Image Restoration with Task Uncertainty Regularization"
(AAAI 2025) balance the degradation types of an all-in-one batch by each type's uncertainty, a
per-sample form of Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
Losses" (CVPR 2018). A small head on the restorer's last features predicts a positive
per-pixel scale u; for every type t in the batch, with ū_t the mean of u over that type's
pixels (floored at ``floor``),

    L_t = mean |x̂/ū_t - x/ū_t| + 2 log ū_t = L1_t / ū_t + 2 log ū_t,
    L   = mean over the types present of L_t.

For a fixed L1_t the minimum is at ū_t = L1_t / 2, where L_t = 2 + 2 log(L1_t / 2): the types are
balanced by the logarithm of their error, so a type whose L1 is small (rain, σ 15) is no longer
swamped by one whose L1 is large (σ 50). Without a floor, a type the restorer can reproduce
exactly (``clean``: L1 -> 0) would drive ū_t -> 0 and its weight 1/ū_t without bound.

The head reads the restorer's features detached, so it never changes what the restorer
computes; it exists only in training (the training checkpoint holds it; exports and
``load_airnet``'s model do not).

The PSNR loss (HINet, Chen et al., CVPRW 2021; NAFNet, Chen et al., ECCV 2022) is minus each
patch's PSNR, averaged over the batch:

    L = mean over patches i of 10 log10(MSE_i + 1e-8)    (images in [0, 1]; 1e-8 as NAFNet).

Its gradient for patch i is that of MSE_i scaled by 10 / (ln 10 · MSE_i), so every patch is
weighed by the inverse of its own error, at once and with nothing to learn: a rain or blur patch
a few grey levels from its target pulls as hard as a low-light patch a hundred grey levels away,
and a change that costs rain 1 dB costs the loss as much as 1 dB of low light gains it. It is
also the validation metric itself. (TUR balances by the log of each type's L1 too, but through
a head that starts alike for every type and needs steps to learn the scales.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSS_WEIGHTINGS = ("none", "tur", "psnr")
PSNR_LOSS_EPS = 1e-8  # NAFNet's PSNRLoss: keeps log finite for a patch restored exactly
U_FLOOR = 0.01  # L1 of 2.55 grey levels: caps a type's weight 1/ū at 100 (a σ 50 type's ~40)
U_START = 0.05  # the head starts near a typical early-training L1 (about 13 grey levels)
# The head starts from nothing, often beside a restorer that is only fine-tuned at a low rate
# (--init_from): at the restorer's rate its per-type scales barely separate in a thousand
# steps, so it learns at ten times the rate of the schedule.
HEAD_LR_SCALE = 10.0


class UncertaintyHead(nn.Module):
    """Restorer features (N, C, H, W) -> positive per-pixel scale u (N, 1, H, W).

    Two 3x3 convolutions with a ReLU between, then softplus; the last bias starts u at
    ``U_START`` everywhere so that the first steps weigh every type alike.

    Args:
        channels: C, the restorer's width (``n_feats``).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 2, 1)
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )
        nn.init.zeros_(self.body[2].weight)
        nn.init.constant_(self.body[2].bias, math.log(math.expm1(U_START)))  # softplus^-1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.body(features.float()))  # (N, 1, H, W), > 0


def uncertainty_weighted_l1(
    restored: torch.Tensor,
    clean: torch.Tensor,
    u: torch.Tensor,
    type_index: torch.Tensor,
    type_names: Sequence[str],
    floor: float = U_FLOOR,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The task-balanced loss of the module docstring, and each type's own numbers.

    Args:
        restored, clean: (N, 3, H, W) in [0, 1] (restored unclamped).
        u: (N, 1, H, W) positive scales from ``UncertaintyHead``.
        type_index: (N,) integer index into ``type_names`` of each sample's degradation
            (best on the CPU, as the data loader gives it).
        type_names: names of the types, for the returned statistics.
        floor: lower bound of ū_t (> 0).

    Returns:
        (loss, stats): the scalar loss (mean over the types present), and per type present
        ``l1/NAME`` (its plain L1) and ``u/NAME`` (its floored ū), detached.

    Raises:
        ValueError: when ``floor`` is not positive.
    """
    if floor <= 0:
        raise ValueError(f"the floor of ū must be positive, got {floor}")
    error = (restored.float() - clean.float()).abs().mean(dim=(1, 2, 3))  # (N,)
    u_per_sample = u.float().mean(dim=(1, 2, 3))  # (N,)
    terms, stats = [], {}
    for index, chosen in _type_masks(type_index, restored.device):
        l1 = error[chosen].mean()
        u_bar = u_per_sample[chosen].mean().clamp_min(floor)
        terms.append(l1 / u_bar + 2 * torch.log(u_bar))
        stats[f"l1/{type_names[index]}"] = l1.detach()
        stats[f"u/{type_names[index]}"] = u_bar.detach()
    return torch.stack(terms).mean(), stats


def psnr_loss(
    restored: torch.Tensor,
    clean: torch.Tensor,
    type_index: torch.Tensor,
    type_names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The per-patch PSNR loss of the module docstring, and each type's own L1 for the logs.

    Args:
        restored, clean: (N, 3, H, W) in [0, 1] (restored unclamped).
        type_index: (N,) index into ``type_names`` of each sample's degradation.
        type_names: names of the types, for the returned statistics (None: no statistics).

    Returns:
        (loss, stats): the scalar loss in dB (minus the mean PSNR of the patches: about -20
        to -40 in training), and ``l1/NAME`` per type present, detached.
    """
    squared = (restored.float() - clean.float()).pow(2).mean(dim=(1, 2, 3))  # (N,)
    loss = (10.0 / math.log(10.0)) * torch.log(squared + PSNR_LOSS_EPS).mean()
    if type_names is None:
        return loss, {}
    return loss, per_type_l1(restored, clean, type_index, type_names)


def per_type_l1(
    restored: torch.Tensor,
    clean: torch.Tensor,
    type_index: torch.Tensor,
    type_names: Sequence[str],
) -> dict[str, torch.Tensor]:
    """Each type's own L1 (detached), ``l1/NAME``, for the logs of a plain-L1 run.

    Args:
        restored, clean: (N, 3, H, W); type_index: (N,) index into ``type_names``.
    """
    error = (restored.detach().float() - clean.float()).abs().mean(dim=(1, 2, 3))  # (N,)
    return {
        f"l1/{type_names[index]}": error[chosen].mean()
        for index, chosen in _type_masks(type_index, restored.device)
    }


def _type_masks(type_index: torch.Tensor, device: torch.device) -> list[tuple[int, torch.Tensor]]:
    """(type, (N,) boolean mask on ``device``) for each type present. The indices are read on
    the CPU, where the data loader made them, so a CUDA step waits for nothing."""
    type_index = type_index.cpu()
    return [
        (index, (type_index == index).to(device, non_blocking=True))
        for index in sorted(set(type_index.tolist()))
    ]


class RestorerWithUncertainty(nn.Module):
    """AirNet in training mode and the ``UncertaintyHead`` as one module, so that one
    DistributedDataParallel wrapper keeps both the same on every process.

    ``forward(query, key[, types])`` returns AirNet's (restored, logits, labels) and u
    (N, 1, H, W), read from the input of the restorer's last convolution (``R.tail``), detached.
    """

    def __init__(self, model: nn.Module, head: UncertaintyHead) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(
        self, x_query: torch.Tensor, x_key: torch.Tensor, types: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        hook = self.model.R.tail.register_forward_pre_hook(
            lambda _module, inputs: captured.append(inputs[0])  # (N, n_feats, H, W)
        )
        try:
            restored, logits, labels = self.model(x_query, x_key, types)
        finally:
            hook.remove()
        return restored, logits, labels, self.head(captured[0].detach())
