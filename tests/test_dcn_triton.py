"""The Triton DCN (net/dcn_triton.py) on the CPU, in Triton's interpreter, against the reference.

``TRITON_INTERPRET=1`` makes Triton interpret kernels; it must be set before Triton is imported,
and torchvision imports Triton, so the checks run in one subprocess started with it set
(``python -m tests.test_dcn_triton`` runs them and prints the results) and each test reports one
check. Float32 only: the interpreter's 16-bit ``tl.dot`` is not reliable, so the bfloat16 and
float16 paths are tested on CUDA (tests/test_cuda.py). The interpreter takes seconds per call,
so the shapes are tiny, chosen to cover partial pixel, channel and output-channel blocks (64,
16 and 16 wide in the interpreter), samples far outside the image and a split weight gradient.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from net.deform_conv import DCN_IMPLS, modulated_deform_conv2d, resolve_impl
from tests.test_deform_conv import forward_and_grads, make_inputs, reference_dcn

# torch's Linux CUDA wheels (CI installs one) require Triton: there a missing one fails the tests.
if not (sys.platform == "linux" and torch.version.cuda):
    pytest.importorskip("triton")

NAMES = ["out", "x", "offset", "mask", "weight"]
ROOT = Path(__file__).resolve().parents[1]


def assert_matches_reference(inputs: list[torch.Tensor], padding: int = 1) -> None:
    """Output and the four gradients in float32 against the float64 reference; the error is
    relative to each reference tensor's largest value."""
    from net.dcn_triton import deform_conv2d_triton

    want = forward_and_grads(lambda *t: reference_dcn(*t, padding), [t.double() for t in inputs])
    # .double(): the random output gradient is then drawn in float64, as the reference's.
    got = forward_and_grads(lambda *t: deform_conv2d_triton(*t, padding).double(), inputs)
    assert all(grad.dtype == torch.float32 for grad in got[1:])
    for name, a, b in zip(NAMES, got, want, strict=True):
        assert a.shape == b.shape, name
        error = ((a.double() - b).abs().max() / b.abs().max()).item()
        assert error < 1e-5, f"{name}: relative error {error:.1e}"


def check_reference(padding: int) -> Callable[[], None]:
    """N=2, 7x5 (two pixel blocks); offsets of a few pixels, some 30-40 pixels outside."""
    return lambda: assert_matches_reference(
        make_inputs(2, 3, 4, 7, 5, torch.float32, padding=padding), padding
    )


def check_several_blocks_and_split_weight_gradient() -> None:
    """C=20 and C_out=18 span two 16-wide blocks each; 7 weight-gradient splits of 16 pixels
    over two 64-pixel blocks, so that most splits are empty and must write zeros."""
    import net.dcn_triton

    saved = net.dcn_triton._ROWS_PER_SPLIT
    net.dcn_triton._ROWS_PER_SPLIT = 16
    try:
        assert_matches_reference(make_inputs(2, 20, 18, 6, 9, torch.float32, seed=3))
    finally:
        net.dcn_triton._ROWS_PER_SPLIT = saved


def check_channels_last_and_partial_grads() -> None:
    """Channels-last x gives channels-last output and input gradient; the input gradient alone,
    and offset and mask gradients alone (no atomic adds), match the reference; so does the
    output under inference mode."""
    from net.dcn_triton import deform_conv2d_triton

    x, offset, mask, weight = make_inputs(1, 4, 3, 5, 6, torch.float32, seed=5)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = deform_conv2d_triton(x_cl, offset, mask, weight)
    (grad_x,) = torch.autograd.grad(out.sum(), x_cl)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert grad_x.is_contiguous(memory_format=torch.channels_last)
    leaves = [t.double().requires_grad_() for t in (x, offset, mask)]
    want_out = reference_dcn(*leaves, weight.double(), 1)
    want = torch.autograd.grad(want_out.sum(), leaves)
    torch.testing.assert_close(out.double(), want_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_x.double(), want[0], rtol=1e-5, atol=1e-5)

    offset, mask = offset.requires_grad_(), mask.requires_grad_()
    out = deform_conv2d_triton(x, offset, mask, weight)
    grad_offset, grad_mask = torch.autograd.grad(out.sum(), [offset, mask])
    torch.testing.assert_close(grad_offset.double(), want[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_mask.double(), want[2], rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        out = deform_conv2d_triton(x, offset, mask, weight)
    torch.testing.assert_close(out.double(), want_out, rtol=1e-5, atol=1e-5)


CHECKS: dict[str, Callable[[], None]] = {
    "reference_padding_1": check_reference(1),
    "reference_padding_0": check_reference(0),
    "reference_padding_2": check_reference(2),
    "several_blocks_and_split_weight_gradient": check_several_blocks_and_split_weight_gradient,
    "channels_last_partial_grads_inference": check_channels_last_and_partial_grads,
}


def run_checks() -> dict[str, str]:
    """Every check, in this process; {name: "" when it passed, else its traceback}."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = ""
        except Exception:  # noqa: BLE001 - reported to the test that owns the check
            results[name] = traceback.format_exc()
    return results


@pytest.fixture(scope="module")
def interpreted() -> dict[str, str]:
    """The checks' results from one subprocess with TRITON_INTERPRET=1."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_dcn_triton"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", list(CHECKS))
def test_interpreted(interpreted: dict[str, str], name: str) -> None:
    assert interpreted[name] == "", interpreted[name]


def test_dispatch() -> None:
    """'triton' is a choice, never picked for CPU tensors, which get a clear error outside the
    interpreter."""
    assert "triton" in DCN_IMPLS
    assert resolve_impl("auto", torch.device("cpu")) == "gather"
    if os.environ.get("TRITON_INTERPRET", "0") != "0":
        pytest.skip("the whole run is interpreted: Triton accepts CPU tensors")
    x, offset, mask, weight = make_inputs(1, 2, 2, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="runs on CUDA tensors"):
        modulated_deform_conv2d(x, offset, mask, weight, impl="triton")


if __name__ == "__main__":
    print(json.dumps(run_checks()))
