"""Modulated deformable convolution (DCNv2) for AirNet's DGM blocks.

Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019.
The official AirNet code calls mmcv-full's ``modulated_deform_conv2d``; torchvision's
``ops.deform_conv2d(..., mask=...)`` computes the same operator with the same offset layout
(interleaved (dy, dx) pairs per kernel point, kernel point k = i * kw + j).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torchvision.ops

DCN_IMPLS = ("auto", "torchvision")


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """DCNv2 with stride 1, dilation 1, one group and one deformable group.

    Args:
        x: input (N, C_in, H, W).
        offset: (N, 2 * kh * kw, H, W), interleaved (dy, dx) per kernel point.
        mask: (N, kh * kw, H, W), modulation in [0, 1].
        weight: (C_out, C_in, kh, kw).
        bias: (C_out,) or None.
        padding: zero padding; samples outside the image read zero.
        impl: one of ``DCN_IMPLS``.

    Returns:
        (N, C_out, H, W) for padding = (k - 1) / 2.
    """
    if impl not in DCN_IMPLS:
        raise ValueError(f"unknown DCN implementation {impl!r}; choose from {DCN_IMPLS}")
    return torchvision.ops.deform_conv2d(
        x, offset, weight, bias, padding=(padding, padding), mask=mask
    )


class DCN_layer(nn.Module):  # noqa: N801 - name of the official module
    """Deformable conv whose offsets and masks are predicted from [x, inter].

    Keys as in the official checkpoints: ``weight`` (C_out, C_in, k, k) and
    ``conv_offset_mask`` (Conv2d 2*C_in -> 3*k*k, zero-initialised).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        self.padding = padding
        self.impl = impl
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.conv_offset_mask = nn.Conv2d(
            2 * in_channels, 3 * kernel_size * kernel_size, kernel_size, padding=padding
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.weight[0].numel())
        nn.init.uniform_(self.weight, -stdv, stdv)
        # Zero offsets and mask 0.5 at start: the layer begins as a plain (halved) conv.
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, H, W); inter: (N, C_in, H, W) degradation features -> (N, C_out, H, W)."""
        out = self.conv_offset_mask(torch.cat([x, inter], dim=1))  # (N, 3*k*k, H, W)
        o1, o2, m = torch.chunk(out, 3, dim=1)
        offset = torch.cat([o1, o2], dim=1)  # (N, 2*k*k, H, W)
        mask = torch.sigmoid(m)  # (N, k*k, H, W)
        return modulated_deform_conv2d(x, offset, mask, self.weight, None, self.padding, self.impl)
