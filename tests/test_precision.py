"""--precision: the shared flag's helpers, and a bf16 training run on the CPU."""

from __future__ import annotations

import logging

import pytest
import torch

from option import parse_args
from tests.test_train import tiny_args
from train import main
from utils import precision


def test_bf16_on_a_cpu_without_bf16_support_warns_and_runs_as_asked(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    with caplog.at_level(logging.WARNING):
        precision.warn_if_slow_precision("bf16", torch.device("cpu"))
    assert "bf16 is slow on this CPU" in caplog.text and "amx_bf16" in caplog.text
    caplog.clear()
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16"}))
    with caplog.at_level(logging.WARNING):
        precision.warn_if_slow_precision("bf16", torch.device("cpu"))
        precision.warn_if_slow_precision("fp32", torch.device("cpu"))
    assert caplog.text == ""


def test_only_fp16_needs_a_grad_scaler():
    assert [precision.needs_grad_scaler(p) for p in ("fp32", "bf16", "fp16")] == [0, 0, 1]


def test_cpu_flags_are_read_from_proc_cpuinfo():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)
    if flags:  # Linux: the instruction sets every x86-64 or arm64 CPU reports
        assert flags & {"sse2", "fp", "asimd", "neon"}


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_training_runs_in_16_bits_on_cpu(tmp_path, name):
    result = main(parse_args(tiny_args(tmp_path, "--precision", name, "--max_steps", "3")))
    assert result.step == 3
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    state = torch.load(tmp_path / "ckpt" / "airnet_last_train.pth", weights_only=True)
    assert state["args"]["precision"] == name
    assert bool(state["scaler"]) == (name == "fp16")  # a scaler's state only where fp16 needs it
