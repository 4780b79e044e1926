"""Modulated deformable convolution with ``F.grid_sample``: the simple pure-PyTorch baseline.

Each kernel point k reads the input at (h - p + i_k + dy, w - p + j_k + dx) by bilinear sampling
with zero padding (what DCNv2 does), then one matrix product applies the weight. Autograd does the
backward, so the (N, C*k*k, H*W) columns stay in memory until backward; ``net/dcn_gather.py`` is
faster and keeps nothing extra.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def deform_conv2d_grid_sample(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    padding: int = 1,
) -> torch.Tensor:
    """DCNv2 (stride 1, dilation 1, one group), no bias; same arguments as torchvision's.

    Args:
        x: (N, C_in, H, W).
        offset: (N, 2*kh*kw, H_out, W_out), interleaved (dy, dx) per kernel point.
        mask: (N, kh*kw, H_out, W_out).
        weight: (C_out, C_in, kh, kw).

    Returns:
        (N, C_out, H_out, W_out).
    """
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = offset.shape[-2:]
    k = kh * kw
    dev, dt = x.device, x.dtype
    off = offset.view(n, k, 2, h_out, w_out)
    tap_y = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw) - padding  # (K,)
    tap_x = torch.arange(kw, device=dev, dtype=dt).repeat(kh) - padding
    rows = torch.arange(h_out, device=dev, dtype=dt).view(h_out, 1)
    cols = torch.arange(w_out, device=dev, dtype=dt)
    py = off[:, :, 0] + (rows + tap_y.view(k, 1, 1))  # (N, K, Ho, Wo)
    px = off[:, :, 1] + (cols + tap_x.view(k, 1, 1))
    # align_corners=False normalisation works for any size, including a width or height of 1.
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)  # (N, K, Ho, Wo, 2)
    cols = F.grid_sample(
        x, grid.view(n, k * h_out, w_out, 2), "bilinear", "zeros", align_corners=False
    )  # (N, C, K*Ho, Wo)
    cols = cols.view(n, c, k, h_out * w_out) * mask.view(n, 1, k, h_out * w_out)
    out = torch.matmul(weight.reshape(c_out, c * k), cols.view(n, c * k, -1))  # (N, C_out, Ho*Wo)
    return out.view(n, c_out, h_out, w_out)
