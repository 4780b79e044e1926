"""CUDA: every DCN implementation, the model, training with --amp, demo and mixed precision.

The Triton DCN's float32 kernels are also tested on the CPU in Triton's interpreter
(tests/test_dcn_triton.py); its 16-bit kernels and the autotuned configurations only here.

Skipped without a GPU (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
TF32 is switched off here so that CUDA and CPU compare at float32 precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from net import AirNet, load_airnet
from net.deform_conv import DCN_IMPLS, DCN_layer, modulated_deform_conv2d, resolve_impl
from net.dgrn import DGRN
from option import parse_args
from tests.airnet_reference import random_official_state_dict, reference_eval
from tests.test_deform_conv import forward_and_grads, make_inputs, reference_dcn
from tests.test_train import tiny_args
from train import main
from utils.image_io import image_to_tensor
from utils.restore import restore, restore_tensor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
IMPLS = [name for name in DCN_IMPLS if name != "auto"]
FLOAT64_IMPLS = [name for name in IMPLS if name != "triton"]  # triton: float32 positions
NAMES = ["out", "x", "offset", "mask", "weight"]


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def cuda(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.cuda() for t in tensors]


@pytest.mark.parametrize("impl", FLOAT64_IMPLS)
@pytest.mark.parametrize("padding", [1, 0])
def test_dcn_matches_reference_float64(impl: str, padding: int) -> None:
    inputs = make_inputs(2, 3, 4, 7, 5, torch.float64, padding=padding)
    want = forward_and_grads(lambda *t: reference_dcn(*t, padding), inputs)
    leaves = [t.cuda().requires_grad_() for t in inputs]
    out = modulated_deform_conv2d(*leaves, None, padding, impl)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    got = [out, *torch.autograd.grad(out, leaves, grad_out.cuda())]
    for name, a, b in zip(NAMES, got, want, strict=True):
        assert a.is_cuda
        torch.testing.assert_close(a.cpu(), b, rtol=1e-9, atol=1e-10, msg=f"{impl} {name}")


@pytest.mark.parametrize("impl", IMPLS)
def test_dcn_float32_matches_cpu_torchvision(impl: str) -> None:
    inputs = make_inputs(2, 8, 6, 9, 11, torch.float32, seed=5)  # as the CPU test
    want = forward_and_grads(
        lambda x, o, m, w: torchvision.ops.deform_conv2d(x, o, w, padding=(1, 1), mask=m), inputs
    )
    leaves = [t.cuda().requires_grad_() for t in inputs]
    out = modulated_deform_conv2d(*leaves, impl=impl)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    got = [out, *torch.autograd.grad(out, leaves, grad_out.cuda())]
    for name, a, b in zip(NAMES, got, want, strict=True):
        assert (a.cpu() - b).abs().max().item() <= 1e-4, f"{impl} {name}"


@pytest.mark.parametrize("impl", ["auto", "gather", "triton"])
def test_official_checkpoint_on_cuda_matches_reference(tmp_path, impl: str) -> None:
    state = random_official_state_dict(queue_size=256)
    path = tmp_path / "Dehaze.pth"
    torch.save(state, path)
    model = load_airnet(path, "cuda", dcn_impl=impl)
    x = torch.rand(1, 3, 19, 26, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ours = model(x.cuda())
        expected = reference_eval(state, x)
    assert ours.is_cuda and ours.shape == x.shape
    assert (ours.cpu() - expected).abs().max().item() < 1e-4


def test_training_forward_on_cuda() -> None:
    model = AirNet(n_feats=16, n_groups=2, n_blocks=1, queue_size=10).cuda().train()
    xq, xk = torch.rand(4, 3, 24, 24).cuda(), torch.rand(4, 3, 24, 24).cuda()
    restored, logits, labels = model(xq, xk)
    assert restored.is_cuda and logits.is_cuda and labels.is_cuda
    assert logits.shape == (4, 11) and int(model.E.E.queue_ptr) == 4
    (restored.mean() + logits.mean()).backward()
    assert all(p.grad is None for p in model.E.E.encoder_k.parameters())


def test_train_with_amp_on_cuda(tmp_path) -> None:
    """train.py --device cuda --amp (= --precision fp16), both phases; the export loads on CPU."""
    result = main(parse_args(tiny_args(tmp_path, "--device", "cuda", "--amp")))
    assert result.step == 6
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    model = load_airnet(tmp_path / "ckpt" / "airnet_last.pth", "cpu")
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 20, 28)).shape == (1, 3, 20, 28)


@pytest.mark.parametrize("impl", ["auto", "triton"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_eval_is_close_to_fp32(precision: str, impl: str) -> None:
    torch.manual_seed(0)
    model = AirNet(n_feats=16, n_groups=2, n_blocks=2, queue_size=16, dcn_impl=impl)
    model = model.cuda().eval()
    image = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    x = image_to_tensor(image)
    fp32 = restore_tensor(x, model)
    half = restore_tensor(x, model, precision=precision)
    assert 0 < (half - fp32).abs().max() < 0.05
    assert restore(image, model, precision=precision).shape == image.shape


def test_auto_is_triton_on_this_card() -> None:
    """'auto' takes the Triton DCN on an Ampere-or-newer card (where it was measured faster)."""
    expected = "triton" if torch.cuda.get_device_capability() >= (8, 0) else "torchvision"
    assert resolve_impl("auto", torch.device("cuda")) == expected


def relative_errors(got: list[torch.Tensor], want: list[torch.Tensor]) -> dict[str, float]:
    """Largest error of each tensor relative to the reference tensor's largest value."""
    return {
        name: ((a.double().cpu() - b.double().cpu()).abs().max() / b.abs().max()).item()
        for name, a, b in zip(NAMES, got, want, strict=True)
    }


@pytest.mark.parametrize(("precision", "tol"), [("fp32", 1e-5), ("bf16", 3e-2), ("fp16", 5e-3)])
def test_triton_matches_reference(precision: str, tol: float) -> None:
    """Forward and four gradients against the float64 reference; 16-bit under autocast, as the
    model runs it (16-bit columns, output in the autocast dtype, gradients in the inputs')."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    inputs = make_inputs(2, 8, 6, 9, 11, torch.float32, seed=5)
    want = forward_and_grads(lambda *t: reference_dcn(*t, 1), [t.double() for t in inputs])

    def triton_dcn(*t: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype, enabled=dtype != torch.float32):
            out = modulated_deform_conv2d(*(u.cuda() for u in t), impl="triton")
        assert out.dtype == dtype
        return out.double().cpu()

    got = forward_and_grads(triton_dcn, inputs)
    errors = relative_errors(got, want)
    assert max(errors.values()) < tol, errors


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_triton_full_width_layer(dtype: torch.dtype, tol: float, channels_last: bool) -> None:
    """64 -> 64 channels, as in AirNet (full blocks, the autotuned configurations), 16-bit
    inputs directly, against torchvision in float32 on the same (rounded) values."""
    inputs = make_inputs(2, 64, 64, 33, 47, torch.float32, seed=2)
    inputs = [t.to(dtype).float().cuda() for t in inputs]
    want = forward_and_grads(
        lambda x, o, m, w: torchvision.ops.deform_conv2d(x, o, w, padding=(1, 1), mask=m), inputs
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    half = [t.to(dtype) for t in inputs]
    half[0] = half[0].contiguous(memory_format=fmt)
    # .float(): the random output gradient is then drawn in float32, as the reference's.
    got = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, impl="triton").float(), half)
    assert got[0].is_contiguous(memory_format=fmt) and got[1].is_contiguous(memory_format=fmt)
    errors = relative_errors(got, want)
    assert max(errors.values()) < tol, errors


def test_triton_restorer_gradients_bf16() -> None:
    """DGRN (2 groups x 1 block, 4 DCN) with the Triton DCN under bf16 autocast: parameter
    gradients close to those of torchvision in float32."""
    torch.manual_seed(0)
    model = DGRN(n_feats=16, n_groups=2, n_blocks=1).cuda()
    for name, param in model.named_parameters():
        if "conv_offset_mask.weight" in name:
            torch.nn.init.normal_(param, std=0.05)  # offsets of a few pixels, not zero
    gen = torch.Generator().manual_seed(0)
    x, inter = torch.rand(2, 3, 24, 24, generator=gen), torch.rand(2, 16, 24, 24, generator=gen)
    grads = {}
    for impl, dtype in (("torchvision", None), ("triton", torch.bfloat16)):
        model.zero_grad()
        for module in model.modules():
            if isinstance(module, DCN_layer):
                module.impl = impl
        with torch.autocast("cuda", dtype, enabled=dtype is not None):
            out = model(x.cuda(), inter.cuda())
        out.float().square().mean().backward()
        grads[impl] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.isfinite(grads["triton"]).all()
    cosine = F.cosine_similarity(grads["triton"], grads["torchvision"], dim=0).item()
    assert cosine > 0.99
