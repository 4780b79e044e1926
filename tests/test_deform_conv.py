"""Every DCN implementation against a reference written here, and against torchvision.

The reference samples bilinearly by hand (four corners, zero outside the image) in float64, so
its autograd gives the exact gradients of DCNv2 almost everywhere.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import net.dcn_gather
from net.deform_conv import (
    DCN_IMPLS,
    DCN_layer,
    inter_terms,
    modulated_deform_conv2d,
    resolve_impl,
)
from net.dgrn import SFT_layer

IMPLS = [name for name in DCN_IMPLS if name not in ("auto", "triton")]  # triton: CUDA only


def reference_dcn(x, offset, mask, weight, padding):  # noqa: ANN001, ANN201
    """DCNv2, stride 1: out[o, p] = sum_{k,c} W[o,c,k] m_k(p) bilinear(x_c, p + p_k + off_k(p))."""
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = offset.shape[-2:]
    pixels = x.permute(0, 2, 3, 1)  # (N, H, W, C)
    batch = torch.arange(n).view(n, 1, 1)
    out = x.new_zeros(n, c_out, h_out, w_out)
    for i in range(kh):
        for j in range(kw):
            k = i * kw + j
            py = torch.arange(h_out).view(1, h_out, 1) - padding + i + offset[:, 2 * k]
            px = torch.arange(w_out).view(1, 1, w_out) - padding + j + offset[:, 2 * k + 1]
            y0, x0 = py.detach().floor(), px.detach().floor()
            sample = 0
            for yy, wy in ((y0, y0 + 1 - py), (y0 + 1, py - y0)):
                for xx, wx in ((x0, x0 + 1 - px), (x0 + 1, px - x0)):
                    inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
                    yi = yy.clamp(0, h - 1).long()
                    xi = xx.clamp(0, w - 1).long()
                    corner = pixels[batch, yi, xi]  # (N, Ho, Wo, C)
                    sample = sample + (wy * wx * inside).unsqueeze(-1) * corner
            sample = sample * mask[:, k].unsqueeze(-1)
            out = out + torch.einsum("nhwc,oc->nohw", sample, weight[:, :, i, j])
    return out


def make_inputs(n, c, c_out, h, w, dtype, seed=0, padding=1):  # noqa: ANN001, ANN201
    """Non-square input; offsets of a few pixels, some far outside the image."""
    gen = torch.Generator().manual_seed(seed)
    h_out, w_out = h + 2 * padding - 2, w + 2 * padding - 2
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    offset = 2.5 * torch.randn(n, 18, h_out, w_out, generator=gen, dtype=dtype)
    offset[:, :, 0, 0] = 40.0  # every kernel point of one pixel far below-right
    offset[:, 0, -1, :] = -30.0  # one kernel point of the last row far above
    mask = torch.rand(n, 9, h_out, w_out, generator=gen, dtype=dtype)
    weight = torch.randn(c_out, c, 3, 3, generator=gen, dtype=dtype)
    return [x, offset, mask, weight]


def forward_and_grads(fn, inputs):  # noqa: ANN001, ANN201
    """Output and gradients of all four inputs for a fixed random output gradient."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    grad_out = grad_out.to(out.device)  # drawn on the CPU: the same values on every device
    return [out.detach(), *torch.autograd.grad(out, leaves, grad_out)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("padding", [1, 0, 2])
def test_matches_reference_float64(impl: str, padding: int) -> None:
    inputs = make_inputs(2, 3, 4, 7, 5, torch.float64, padding=padding)
    got = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, None, padding, impl), inputs)
    want = forward_and_grads(lambda *t: reference_dcn(*t, padding), inputs)
    for name, a, b in zip(["out", "x", "offset", "mask", "weight"], got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=f"{impl} {name}")


def test_reference_is_sane() -> None:
    """Zero offsets and unit mask: DCN is a plain convolution."""
    x, offset, mask, weight = make_inputs(1, 3, 2, 6, 5, torch.float64)
    out = reference_dcn(x, torch.zeros_like(offset), torch.ones_like(mask), weight, 1)
    torch.testing.assert_close(out, torch.nn.functional.conv2d(x, weight, padding=1))


@pytest.mark.parametrize("impl", ["gather", "grid_sample"])
def test_gradcheck(impl: str) -> None:
    inputs = make_inputs(1, 2, 2, 4, 3, torch.float64, seed=3)
    leaves = tuple(t.requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(
        lambda *t: modulated_deform_conv2d(*t, impl=impl), leaves, eps=1e-6, atol=1e-5
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_float32_matches_torchvision(impl: str) -> None:
    inputs = make_inputs(2, 8, 6, 9, 11, torch.float32, seed=5)
    got = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, impl=impl), inputs)
    want = forward_and_grads(
        lambda x, o, m, w: torchvision.ops.deform_conv2d(x, o, w, padding=(1, 1), mask=m), inputs
    )
    for name, a, b in zip(["out", "x", "offset", "mask", "weight"], got, want, strict=True):
        assert (a - b).abs().max().item() <= 1e-4, f"{impl} {name}"


def test_gather_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks: several per image, over several images, give the same result."""
    monkeypatch.setattr(net.dcn_gather, "_CHUNK_BYTES", 1)
    inputs = make_inputs(3, 2, 3, 6, 4, torch.float64, seed=7)
    got = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, impl="gather"), inputs)
    want = forward_and_grads(lambda *t: reference_dcn(*t, 1), inputs)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_gather_partial_grads_and_inference() -> None:
    x, offset, mask, weight = make_inputs(1, 2, 3, 5, 6, torch.float64, seed=9)
    x.requires_grad_()
    out = modulated_deform_conv2d(x, offset, mask, weight, impl="gather")
    (grad_x,) = torch.autograd.grad(out.sum(), x)
    want = forward_and_grads(lambda *t: reference_dcn(*t, 1), [x, offset, mask, weight])
    torch.testing.assert_close(
        grad_x, torch.autograd.grad(reference_dcn(x, offset, mask, weight, 1).sum(), x)[0]
    )
    with torch.inference_mode():
        torch.testing.assert_close(
            modulated_deform_conv2d(x, offset, mask, weight, impl="gather"), want[0]
        )


def test_gather_keeps_only_inputs_for_backward() -> None:
    inputs = [t.requires_grad_() for t in make_inputs(1, 4, 4, 8, 8, torch.float32)]
    input_ptrs = {t.data_ptr() for t in inputs}
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        modulated_deform_conv2d(*inputs, impl="gather")
    assert saved and all(t.data_ptr() in input_ptrs for t in saved)


def test_layer_impls_agree_and_keys() -> None:
    torch.manual_seed(0)
    layer = DCN_layer(4, 5)
    assert list(layer.state_dict()) == [
        "weight",
        "conv_offset_mask.weight",
        "conv_offset_mask.bias",
    ]
    assert layer.conv_offset_mask.out_channels == 27
    torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.5)
    x, inter = torch.randn(2, 4, 6, 7), torch.randn(2, 4, 6, 7)
    outs = []
    for impl in ["auto", *IMPLS]:
        layer.impl = impl
        outs.append(layer(x, inter))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-5, rtol=1e-5)


def test_auto_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA: the Triton DCN where it can run (measured faster), torchvision elsewhere."""
    import net.deform_conv as deform_conv

    for usable, expected in [(True, "triton"), (False, "torchvision")]:
        monkeypatch.setattr(deform_conv, "_triton_usable", lambda device, u=usable: u)
        assert resolve_impl("auto", torch.device("cuda")) == expected
        assert resolve_impl("auto", torch.device("cpu")) == "gather"


def test_c_compiler_for_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    """No C compiler: Triton cannot build its launcher, so "auto" must not pick it."""
    import net.deform_conv as deform_conv

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(deform_conv.shutil, "which", lambda name: None)
    assert not deform_conv.c_compiler_found()
    monkeypatch.setattr(deform_conv.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert deform_conv.c_compiler_found()
    monkeypatch.setattr(deform_conv.shutil, "which", lambda name: None)
    monkeypatch.setenv("CC", "/opt/cc")
    assert deform_conv.c_compiler_found()


def test_auto_and_unknown_impl() -> None:
    assert resolve_impl("auto", torch.device("cpu")) == "gather"
    with pytest.raises(ValueError, match="unknown DCN implementation"):
        DCN_layer(2, 2, impl="mmcv")


def test_gather_channels_last() -> None:
    """Channels-last input: same values; output and input gradient stay channels-last."""
    x, offset, mask, weight = make_inputs(2, 3, 4, 6, 5, torch.float64, seed=11)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    got = forward_and_grads(
        lambda *t: modulated_deform_conv2d(*t, impl="gather"), [x_cl, offset, mask, weight]
    )
    want = forward_and_grads(lambda *t: reference_dcn(*t, 1), [x, offset, mask, weight])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    leaf = x_cl.clone().requires_grad_()
    out = modulated_deform_conv2d(leaf, offset, mask, weight, impl="gather")
    assert out.is_contiguous(memory_format=torch.channels_last)
    (grad,) = torch.autograd.grad(out.sum(), leaf)
    assert grad.is_contiguous(memory_format=torch.channels_last)


def test_inter_terms_split_offset_conv_exactly() -> None:
    """conv([x, inter]) = conv(x, W_x) + conv(inter, W_inter) + b, batched over layers."""
    torch.manual_seed(0)
    layers = [DCN_layer(4, 4, impl="gather") for _ in range(3)]
    for layer in layers:
        torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.3)
        torch.nn.init.normal_(layer.conv_offset_mask.bias, std=0.3)
    x, inter = torch.randn(2, 4, 7, 5, dtype=torch.float64), torch.randn(2, 4, 7, 5)
    inter = inter.double()
    layers = [layer.double() for layer in layers]
    terms = inter_terms(layers, inter)
    for layer, term in zip(layers, terms, strict=True):
        torch.testing.assert_close(layer.forward_with_inter_term(x, term), layer(x, inter))


def test_merged_sft_equals_two_branches() -> None:
    sft = SFT_layer(6).double()
    x, inter = torch.randn(2, 6, 5, 4).double(), torch.randn(2, 6, 5, 4).double()
    torch.testing.assert_close(sft(x, inter), x * sft.conv_gamma(inter) + sft.conv_beta(inter))


@pytest.mark.parametrize("impl", IMPLS)
def test_float32_under_autocast(impl: str) -> None:
    """Mixed precision leaves the DCN in float32: same result as without autocast."""
    inputs = make_inputs(1, 4, 4, 9, 7, torch.float32, seed=11)
    want = modulated_deform_conv2d(*inputs, impl=impl)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = modulated_deform_conv2d(*inputs, impl=impl)
        half = modulated_deform_conv2d(inputs[0].bfloat16(), *inputs[1:], impl=impl)
    assert got.dtype == torch.float32 and half.dtype == torch.bfloat16
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
