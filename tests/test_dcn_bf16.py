"""The bfloat16 path of the ``gather`` DCN (CPU autocast) against the float64 reference.

bf16 keeps 8 significant bits: one rounding to bf16 has a relative error of at most
u = 2**-8. The path rounds the columns, the weight and the corner weights to bf16, multiplies in
bf16 with float32 sums, and keeps positions in float32 (see ``net/dcn_gather.py``).
"""

from __future__ import annotations

import pytest
import torch

import net.deform_conv
from net import AirNet
from net.dcn_gather import deform_conv2d_gather
from net.deform_conv import modulated_deform_conv2d
from tests.test_deform_conv import make_inputs, reference_dcn

U = 2.0**-8  # unit roundoff of bfloat16
NAMES = ["out", "x", "offset", "mask", "weight"]


def bf16_gather_and_grads(inputs: list[torch.Tensor], grad_out: torch.Tensor):  # noqa: ANN201
    """The model's way: bf16 x, offset, mask under autocast, float32 weight; backward outside."""
    x, offset, mask, weight = inputs
    leaves = [
        x.bfloat16().requires_grad_(),
        offset.bfloat16().requires_grad_(),
        mask.bfloat16().requires_grad_(),
        weight.float().requires_grad_(),
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = modulated_deform_conv2d(*leaves, impl="gather")
    grads = torch.autograd.grad(out, leaves, grad_out.bfloat16())
    return [out, *grads]


def reference_and_grads(inputs: list[torch.Tensor], grad_out: torch.Tensor):  # noqa: ANN201
    leaves = [t.double().requires_grad_() for t in inputs]
    out = reference_dcn(*leaves, 1)
    return [out.detach(), *torch.autograd.grad(out, leaves, grad_out.double())]


def bf16_values(n: int, c: int, c_out: int, h: int, w: int, seed: int):  # noqa: ANN201
    """``make_inputs`` rounded to bf16 (float32 weight), and a bf16 output gradient."""
    x, offset, mask, weight = make_inputs(n, c, c_out, h, w, torch.float32, seed=seed)
    inputs = [x.bfloat16().float(), offset.bfloat16().float(), mask.bfloat16().float(), weight]
    gen = torch.Generator().manual_seed(seed + 1)
    grad_out = torch.randn(n, c_out, h, w, generator=gen).bfloat16().float()
    return inputs, grad_out


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_gather_matches_float64_reference(channels_last: bool) -> None:
    inputs, grad_out = bf16_values(2, 6, 5, 7, 9, seed=21)
    if channels_last:
        inputs[0] = inputs[0].contiguous(memory_format=torch.channels_last)
    got = bf16_gather_and_grads(inputs, grad_out)
    assert [t.dtype for t in got] == [torch.bfloat16] * 4 + [torch.float32]
    want = reference_and_grads(inputs, grad_out)
    # An elementwise bound from the same sums over absolute values (|x|, |weight|, |grad_out|):
    # each term of a reduction (C_in*9 = 54 long for the output; the gradients' reductions run
    # over output channels and pixels) carries at most four roundings to bf16 (column, corner
    # weight, weight, result; the gradients fewer), so |error| <= 4u * sum |term|; the float32
    # sums add at most 54 * 2**-24 relative, and the bound's second-order terms ~ 6u**2:
    # both below 0.01u, so 4.1u holds. It is a worst case: the typical error is ~u/2 of that.
    bound = reference_and_grads([inputs[0].abs(), *inputs[1:3], inputs[3].abs()], grad_out.abs())
    for name, a, b, s in zip(NAMES, got, want, bound, strict=True):
        if name == "offset":
            continue
        err = (a.double() - b).abs()
        assert (err <= 4.1 * U * s.abs() + 1e-12).all(), f"{name}: {(err / s.abs()).max():.2e}"
    # The offset gradient multiplies grad_cols (two roundings: weight and result, 2u of
    # sum |grad_out| |weight|) by signed corner differences, which the absolute-value reference
    # does not bound; its corner-weight gradients are float32 dot products of the bf16 values.
    # With random images the differences do not cancel, so its error stays at the 2u-3u scale
    # of its own largest value (the bf16 result rounding included): 4u is asserted.
    err = (got[2].double() - want[2]).abs().max()
    assert err <= 4 * U * want[2].abs().max(), f"offset: {err / want[2].abs().max():.2e}"


def test_bf16_positions_are_float32() -> None:
    """Samples at x in [256, 300): a bf16 position there is a multiple of 2, up to 1 px off.

    The bf16 path must match the float32 path far better than the same path with its
    positions rounded to bf16 does.
    """
    gen = torch.Generator().manual_seed(5)
    c, h, w = 4, 3, 300
    x = torch.randn(1, c, h, w, generator=gen).bfloat16().float()  # pixel-to-pixel noise
    offset = torch.zeros(1, 18, h, w)
    offset[:, 1::2] = torch.rand(1, 9, h, w, generator=gen) * 0.98  # dx in [0, 1): fractions
    offset = offset.bfloat16().float()  # exact in bf16 (small values), as the model's offsets
    mask = torch.rand(1, 9, h, w, generator=gen).bfloat16().float()
    weight = torch.randn(c, c, 3, 3, generator=gen).bfloat16().float()
    right = slice(256, None)  # outputs whose samples lie at x >= 255

    exact = modulated_deform_conv2d(x, offset, mask, weight, impl="gather")[..., right]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = modulated_deform_conv2d(x.bfloat16(), offset.bfloat16(), mask.bfloat16(), weight)
    err = (out.float()[..., right] - exact).abs().max()

    # The same sums with each position x + dx rounded to bf16, computed exactly in float32.
    tap_x = torch.tensor([-1.0, 0.0, 1.0]).repeat(3).view(9, 1, 1)  # kernel point k = i*3 + j
    base_x = torch.arange(w, dtype=torch.float32) + tap_x  # (9, 1, W): x before the offset
    shifted = offset.clone()
    shifted[:, 1::2] = (base_x + offset[:, 1::2]).bfloat16().float() - base_x
    assert (shifted - offset)[..., right].abs().max() > 0.5  # the bf16 positions do move
    moved = modulated_deform_conv2d(x, shifted, mask, weight, impl="gather")[..., right]
    shift_err = (moved - exact).abs().max()
    assert err < 0.05 * shift_err, f"bf16 path {err:.3g} vs bf16 positions {shift_err:.3g}"


def test_float_paths_unchanged_under_autocast() -> None:
    """A float32 input keeps the exact float32 DCN under a bf16 autocast; bf16 is CPU-only."""
    inputs, _ = bf16_values(1, 3, 3, 5, 6, seed=3)
    want = modulated_deform_conv2d(*inputs, impl="gather")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = modulated_deform_conv2d(*inputs, impl="gather")
    assert got.dtype == torch.float32
    assert torch.equal(got, want)


def tiny_airnet() -> AirNet:
    """n_feats 8, one group of one block, with offsets of a few pixels (the zero init would
    sample on the pixel grid only)."""
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, dcn_impl="gather").eval()
    for name, param in model.named_parameters():
        if "conv_offset_mask.weight" in name:
            torch.nn.init.normal_(param, std=0.3)
    return model


def test_tiny_airnet_bf16_close_to_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_airnet()
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    dcn_dtypes = []

    def spy(*args):  # noqa: ANN002, ANN202
        out = deform_conv2d_gather(*args)
        dcn_dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(net.deform_conv, "deform_conv2d_gather", spy)
    with torch.inference_mode():
        want = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x).float()
    assert dcn_dtypes == [torch.float32] * 2 + [torch.bfloat16] * 2  # the bf16 path ran
    # PSNR against the float32 output, peak = its range (1.16 here, std 0.15). A rounding to bf16
    # has a relative error of at most u = 2**-8, about u/sqrt(3) rms over a value's mantissa;
    # the image passes ~15 rounded layers (encoder, head, two DGMs, convs, tail), so the output's
    # rms error is ~sqrt(15) * u/sqrt(3) * std = 1e-3 and the PSNR ~ 20 log10(1.16 / 1e-3) = 61 dB
    # (measured: 62 dB). 50 dB leaves 11 dB for error growth through the layers.
    peak = want.max() - want.min()
    mse = (got - want).pow(2).mean()
    psnr = 10 * torch.log10(peak**2 / mse).item()
    assert psnr >= 50, f"{psnr:.1f} dB"
