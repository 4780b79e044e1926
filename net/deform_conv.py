"""Modulated deformable convolution (DCNv2) for AirNet's DGM blocks.

Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019.
The official AirNet code calls mmcv-full's ``modulated_deform_conv2d``; torchvision's
``ops.deform_conv2d(..., mask=...)`` computes the same operator with the same offset layout
(interleaved (dy, dx) pairs per kernel point, kernel point k = i * kw + j).

Implementations (all exact, all tested against one reference):

- ``"torchvision"``: ``torchvision.ops.deform_conv2d``; the best choice on CUDA.
- ``"gather"``: pure PyTorch, fast on CPU; see ``net/dcn_gather.py``.
- ``"grid_sample"``: pure PyTorch with ``F.grid_sample``; simple, kept as a baseline.
- ``"triton"``: Triton kernels for CUDA, sampling fused into the GEMM; see ``net/dcn_triton.py``.
- ``"auto"``: ``"triton"`` on CUDA where Triton imports, a C compiler is found and the card is
  Ampere or newer, else ``"torchvision"``; ``"gather"`` elsewhere (benchmarks/bench_cuda.py,
  benchmarks/bench_dcn.py).

Under mixed precision (``torch.autocast``) every implementation but ``"triton"`` computes in
float32, as torchvision's own autocast rule for ``deform_conv2d`` does: sampling positions in
float16 would be off by up to 0.25 px at x = 256, so the DCN stays exact while the plain convs
run in 16 bits. ``"triton"`` keeps positions and sums in float32 but multiplies 16-bit columns;
so does ``"gather"`` on CPU for a bfloat16 input under autocast (the network's features under
``--precision bf16``), see ``net/dcn_gather.py``.

A NaN or infinite offset (a diverged training run) makes the output NaN at its pixel in every
implementation, without a host-device sync, so training stops on its non-finite loss instead of
an index error or a crashed kernel: ``"gather"`` computes it so, ``"grid_sample"`` does by itself,
``"torchvision"`` and ``"triton"`` go through ``guard_offsets``. Finite offsets are unaffected.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import shutil
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.ops

from net.dcn_gather import deform_conv2d_gather
from net.dcn_grid_sample import deform_conv2d_grid_sample
from net.dcn_guard import guard_offsets

DCN_IMPLS = ("auto", "torchvision", "gather", "grid_sample", "triton")


def resolve_impl(impl: str, device: torch.device) -> str:
    """Name of the implementation that ``impl`` stands for on ``device``."""
    if impl not in DCN_IMPLS:
        raise ValueError(f"unknown DCN implementation {impl!r}; choose from {DCN_IMPLS}")
    if impl != "auto":
        return impl
    if device.type != "cuda":
        # torchvision's CPU kernel is an im2col loop, ~20x slower than conv2d of the same shape.
        return "gather"
    # On an H100 the Triton DCN made the training step 1.15x (fp32) to 1.9x (bf16) faster and
    # the 1024^2 eval forward 1.3x to 2.2x (docs/performance.md, "Triton DCN"); torchvision
    # where it can't run.
    return "triton" if _triton_usable(device) else "torchvision"


@functools.cache
def _triton_usable(device: torch.device) -> bool:
    """Triton imports, it can build its launcher, CUDA is there, and the card has bf16 tensor
    cores (compute capability 8.0 or newer: the kernels were measured on Hopper only)."""
    if importlib.util.find_spec("triton") is None or not c_compiler_found():
        return False
    return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)


def c_compiler_found() -> bool:
    """Triton compiles a small C launcher on first use, with $CC, gcc or clang; without one
    its first kernel call fails, so "auto" keeps torchvision."""
    return bool(os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang"))


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no argument and has one switch per device type
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def _deform(
    name: str,
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    padding: int,
) -> torch.Tensor:
    """The implementation ``name`` (resolved, not "auto"), without bias."""
    if name == "torchvision":
        if not torch.onnx.is_in_onnx_export():  # ONNX's DeformConv runs without torchvision
            offset, mask = guard_offsets(offset, mask)
        return torchvision.ops.deform_conv2d(
            x, offset, weight, padding=(padding, padding), mask=mask
        )
    if name == "gather":
        return deform_conv2d_gather(x, offset, mask, weight, padding)
    return deform_conv2d_grid_sample(x, offset, mask, weight, padding)


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
        offset: (N, 2 * kh * kw, H_out, W_out), interleaved (dy, dx) per kernel point.
        mask: (N, kh * kw, H_out, W_out), modulation in [0, 1].
        weight: (C_out, C_in, kh, kw).
        bias: (C_out,) or None.
        padding: zero padding; samples outside the image read zero.
        impl: one of ``DCN_IMPLS``.

    Returns:
        (N, C_out, H_out, W_out), H_out = H + 2 * padding - kh + 1.
    """
    name = resolve_impl(impl, x.device)
    if name == "triton":
        # Imported on first use: Triton is optional, and it decides when a kernel is defined
        # whether to interpret it (TRITON_INTERPRET=1, see tests/test_dcn_triton.py).
        from net.dcn_triton import deform_conv2d_triton

        out = deform_conv2d_triton(x, offset, mask, weight, padding)  # follows autocast itself
    elif name == "gather" and x.dtype == torch.bfloat16 and x.device.type == "cpu":
        # A bf16 input, as the model's features are under a bf16 autocast: bf16 columns and
        # GEMMs, float32 positions; the output stays bf16 for the bf16 convs that follow.
        with torch.autocast("cpu", enabled=False):
            out = deform_conv2d_gather(x, offset, mask, weight, padding, torch.bfloat16)
    elif _autocast_enabled(x.device.type):
        # torchvision's CPU kernel has no 16-bit version and no CPU autocast rule, so the rule
        # is applied here for every implementation and device.
        with torch.autocast(x.device.type, enabled=False):
            out = _deform(name, x.float(), offset.float(), mask.float(), weight.float(), padding)
        out = out.to(x.dtype)  # torchvision's rule: the output takes the input's dtype
    else:
        out = _deform(name, x, offset, mask, weight, padding)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


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
        resolve_impl(impl, torch.device("cpu"))  # fail early on a misspelt name
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

    def offset_mask(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split 3*k*k predicted channels into offset (N, 2*k*k, H, W) and mask (N, k*k, H, W)."""
        o1, o2, m = torch.chunk(out, 3, dim=1)
        return torch.cat([o1, o2], dim=1), torch.sigmoid(m)

    def deform(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The deformable convolution itself, with this layer's weight and implementation."""
        return modulated_deform_conv2d(x, offset, mask, self.weight, None, self.padding, self.impl)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, H, W); inter: (N, C_in, H, W) degradation features -> (N, C_out, H, W)."""
        out = self.conv_offset_mask(torch.cat([x, inter], dim=1))  # (N, 3*k*k, H, W)
        offset, mask = self.offset_mask(out)
        return self.deform(x, offset, mask)

    def forward_with_inter_term(self, x: torch.Tensor, inter_term: torch.Tensor) -> torch.Tensor:
        """Same as ``forward`` given ``inter_term`` = the inter half of conv_offset_mask (+ bias).

        conv([x, inter], W) + b = conv(x, W_x) + (conv(inter, W_inter) + b): the second term
        depends on inter only, so ``inter_terms`` computes it for many layers in one conv.
        """
        w_x = self.conv_offset_mask.weight[:, : x.shape[1]]  # (3*k*k, C_in, k, k)
        out = F.conv2d(x, w_x, None, padding=self.padding) + inter_term  # (N, 3*k*k, H, W)
        offset, mask = self.offset_mask(out)
        return self.deform(x, offset, mask)


def inter_terms(layers: Sequence[DCN_layer], inter: torch.Tensor) -> list[torch.Tensor]:
    """conv(inter, W_inter) + b of each layer's conv_offset_mask, all in one convolution.

    Args:
        layers: DCN layers with the same kernel and padding.
        inter: (N, C_in, H, W).

    Returns:
        one (N, 3*k*k, H, W) tensor per layer, for ``DCN_layer.forward_with_inter_term``.
    """
    c = inter.shape[1]
    weight = torch.cat([layer.conv_offset_mask.weight[:, c:] for layer in layers])
    bias = torch.cat([layer.conv_offset_mask.bias for layer in layers])
    out = F.conv2d(inter, weight, bias, padding=layers[0].padding)  # (N, L*3*k*k, H, W)
    return list(out.split(layers[0].conv_offset_mask.out_channels, dim=1))
