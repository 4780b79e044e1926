"""One ``--precision`` for train.py, test.py and demo.py: fp32 (the paper's), bf16 or fp16.

bf16 and fp16 run the network under ``torch.autocast`` (convolutions and matrix products in 16
bits, reductions and the DCN's sampling positions in float32). fp16 needs a GradScaler when
training; bf16 has float32's range and does not. On a CPU, 16-bit arithmetic is fast only with
hardware support: bf16 with AVX512-BF16 or AMX-BF16 (``lscpu`` flags avx512_bf16, amx_bf16);
fp16 has no fast path for most of the network's ops.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def needs_grad_scaler(precision: str) -> bool:
    """Only float16 underflows gradients enough to need loss scaling."""
    return precision == "fp16"


def warn_if_slow_precision(precision: str, device: torch.device) -> None:
    """Say so when a 16-bit precision has no fast path on this CPU; it still runs as asked."""
    if device.type != "cpu":
        return
    if precision == "fp16":
        logger.warning("--precision fp16 is very slow on CPU; use fp32 (or bf16) there")
    elif precision == "bf16" and not cpu_has_fast_bf16():
        logger.warning(
            "--precision bf16 is slow on this CPU (no %s in its flags); fp32 is faster here",
            " or ".join(BF16_CPU_FLAGS),
        )
