"""Non-finite offsets made safe for every deformable-convolution kernel.

One function that the kernels (``net/dcn_triton.py``) and the dispatcher
(``net/deform_conv.py``) both use, so that the dispatcher depends on the kernels and never the
reverse.
"""

from __future__ import annotations

import math

import torch


def guard_offsets(offset: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero for every NaN or infinite offset, and a NaN mask at its kernel point.

    torchvision's CPU kernel turns a NaN sampling position into an index and reads out of bounds
    (the process crashes), and an infinite one reads zero like any far sample, a finite output
    that hides the divergence. The NaN mask makes the output NaN at that pixel instead, so a
    diverged run stops on its non-finite loss (``train.py``). Element-wise ops only: no
    host-device sync on CUDA. Finite offsets come back with the same values, and so does the
    mask at their kernel points.

    Args:
        offset: (N, 2*K, H_out, W_out), interleaved (dy, dx) per kernel point.
        mask: (N, K, H_out, W_out).

    Returns:
        (offset, mask) of the same shapes and dtypes.
    """
    finite = torch.isfinite(offset)  # (N, 2*K, H_out, W_out)
    both = finite[:, 0::2] & finite[:, 1::2]  # (N, K, H_out, W_out): dy and dx finite
    # torch.where keeps only the boolean condition for backward, not another copy of offset.
    return torch.where(finite, offset, 0.0), torch.where(both, mask, math.nan)
