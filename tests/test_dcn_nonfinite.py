"""Non-finite offsets make the DCN's output NaN, never an exception or a crash (issue 20, item 8).

A diverged run's NaN or infinite offsets must reach train.py's non-finite-loss stop in every DCN
implementation. torchvision's CPU kernel crashed the process on NaN offsets, and the Triton
kernels run on the CPU only in Triton's interpreter (``TRITON_INTERPRET=1`` before Triton is
imported), so those two run their checks in a subprocess, which a crash cannot take down:
``python -m tests.test_dcn_nonfinite IMPL`` prints {check: "" or its traceback} as JSON.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision

from net import AirNet
from net.dcn_guard import guard_offsets
from net.deform_conv import DCN_layer, modulated_deform_conv2d
from tests.test_deform_conv import forward_and_grads, make_inputs

ROOT = Path(__file__).resolve().parents[1]
PIXEL = (1, 2, 3)  # (n, h, w) of the output pixel whose offset or mask a case spoils
IN_PROCESS = ["gather", "grid_sample"]
IN_SUBPROCESS = ["torchvision", "triton"]


def _spoil(channel: str, index: int, value: float) -> Callable[[list[torch.Tensor]], None]:
    """Set one value of the offset (channel 2k = dy, 2k+1 = dx) or mask at PIXEL."""

    def spoil(inputs: list[torch.Tensor]) -> None:
        n, h, w = PIXEL
        inputs[1 if channel == "offset" else 2][n, index, h, w] = value

    return spoil


def _all_offsets_nan(inputs: list[torch.Tensor]) -> None:
    inputs[1].fill_(math.nan)


def _one_input_nan(inputs: list[torch.Tensor]) -> None:
    inputs[0][PIXEL[0], 1, PIXEL[1], PIXEL[2]] = math.nan


# name -> (how the inputs are spoilt, which output pixels turn NaN: "pixel" (PIXEL alone),
# "everywhere", or "somewhere" (a NaN input spreads to every sample that reads it))
CASES: dict[str, tuple[Callable[[list[torch.Tensor]], None], str]] = {
    "all_offsets_nan": (_all_offsets_nan, "everywhere"),
    "one_dy_nan": (_spoil("offset", 8, math.nan), "pixel"),  # kernel point 4, the centre
    "one_dx_nan": (_spoil("offset", 1, math.nan), "pixel"),
    "one_dy_inf": (_spoil("offset", 6, math.inf), "pixel"),
    "one_dx_minus_inf": (_spoil("offset", 17, -math.inf), "pixel"),
    "one_mask_nan": (_spoil("mask", 4, math.nan), "pixel"),
    "one_input_nan": (_one_input_nan, "somewhere"),
}


def check(impl: str, case: str) -> None:
    """Forward and backward of ``impl`` on spoilt float32 inputs: no exception, and NaN in
    every channel of the output pixels the case names, finite elsewhere."""
    inputs = make_inputs(2, 3, 4, 6, 7, torch.float32, seed=13)
    spoil, where = CASES[case]
    spoil(inputs)
    out, *grads = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, impl=impl), inputs)
    assert len(grads) == 4  # the backward ran
    nan_pixels = out.isnan().any(1)  # (N, H_out, W_out)
    if where == "somewhere":
        assert nan_pixels.any().item()
        return
    expected = torch.full_like(nan_pixels, where == "everywhere")
    expected[PIXEL] = True
    assert torch.equal(nan_pixels, expected), f"NaN at {nan_pixels.nonzero().tolist()}"
    assert torch.equal(out.isnan(), nan_pixels.unsqueeze(1).expand_as(out))  # every channel
    assert not out.isinf().any().item()


def run_checks(impl: str) -> dict[str, str]:
    """Every case for ``impl`` in this process; {case: "" when it passed, else its traceback}."""
    results = {}
    for case in CASES:
        try:
            check(impl, case)
            results[case] = ""
        except Exception:  # noqa: BLE001 - reported to the test that owns the case
            results[case] = traceback.format_exc()
    return results


@functools.cache
def subprocess_results(impl: str) -> dict[str, str]:
    """``run_checks(impl)`` in a subprocess (Triton's interpreter for "triton")."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if impl == "triton":
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_dcn_nonfinite", impl],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-4000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", IN_PROCESS)
def test_non_finite_gives_nan_output(impl: str, case: str) -> None:
    check(impl, case)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", IN_SUBPROCESS)
def test_non_finite_gives_nan_output_in_subprocess(impl: str, case: str) -> None:
    if impl == "triton" and importlib.util.find_spec("triton") is None:
        pytest.skip("Triton is not installed")
    result = subprocess_results(impl)[case]
    assert result == "", result


def test_guard_leaves_finite_offsets_unchanged() -> None:
    """torchvision behind the guard gives exactly torchvision's output and gradients."""
    inputs = make_inputs(2, 3, 4, 6, 7, torch.float32, seed=17)
    offset, mask = guard_offsets(inputs[1], inputs[2])
    assert torch.equal(offset, inputs[1]) and torch.equal(mask, inputs[2])
    got = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, impl="torchvision"), inputs)
    want = forward_and_grads(
        lambda x, o, m, w: torchvision.ops.deform_conv2d(x, o, w, padding=(1, 1), mask=m), inputs
    )
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("impl", ["gather", "grid_sample", "torchvision"])
def test_huge_finite_offsets_read_zero(impl: str) -> None:
    """Finite offsets far outside the image are not poisoned: they read zero, as 100 px do."""
    inputs = make_inputs(2, 3, 4, 6, 7, torch.float32, seed=19)
    far = [t.clone() for t in inputs]
    huge = [t.clone() for t in inputs]
    n, h, w = PIXEL
    for channel, value in [(0, 1e30), (3, -1e30), (9, 1e30), (10, -1e30)]:
        far[1][n, channel, h, w] = math.copysign(100.0, value)
        huge[1][n, channel, h, w] = value
    got = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, impl=impl), huge)
    want = forward_and_grads(lambda *t: modulated_deform_conv2d(*t, impl=impl), far)
    assert got[0].isfinite().all()
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("channel", "value"), [(1, math.nan), (0, math.inf)])
def test_model_with_a_non_finite_offset_gives_nan(channel: int, value: float) -> None:
    """A tiny AirNet whose first DCN predicts one non-finite offset channel (its mask stays
    finite): eval output and training loss are NaN, and backward runs."""
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    dcn = next(m for m in model.modules() if isinstance(m, DCN_layer))
    with torch.no_grad():
        dcn.conv_offset_mask.bias[channel] = value
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 20, 24))
    assert out.isnan().any()
    model.train()
    restored, _, _ = model(torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24))
    loss = restored.abs().mean()
    loss.backward()
    assert math.isnan(loss.item())


def test_train_stops_on_non_finite_loss_from_dcn_offsets(tmp_path: Path) -> None:
    """train.py from weights whose first DCN predicts a NaN dx: the documented stop (exit 1,
    "non-finite loss"), not a traceback from inside the DCN."""
    from tests.test_train import tiny_args  # imports train.py: not needed by the subprocesses

    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    dcn = next(m for m in model.modules() if isinstance(m, DCN_layer))
    with torch.no_grad():
        dcn.conv_offset_mask.bias[1] = math.nan
    torch.save(model.state_dict(), tmp_path / "nan_offsets.pth")
    argv = tiny_args(tmp_path, "--init_from", str(tmp_path / "nan_offsets.pth"))
    argv += ["--epochs_encoder", "0", "--max_steps", "2"]
    proc = subprocess.run(
        [sys.executable, "train.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "non-finite loss at step 1" in proc.stderr
    assert "Traceback" not in proc.stderr


if __name__ == "__main__":
    print(json.dumps(run_checks(sys.argv[1])))
