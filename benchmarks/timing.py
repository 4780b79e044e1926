"""Clocks, statistics and machine facts shared by the benchmarks in this folder.

Every time here is in seconds; a benchmark converts to milliseconds where its table shows ms.
Two clocks are read around each timed call: the wall clock (``time.perf_counter``) and the
process's CPU time (``time.process_time``, all its threads), which counts only this process's
work and so holds on a core shared with other jobs when the benchmark runs one thread.

Two statistics summarise the timed calls: ``best`` (the fastest: the run least disturbed by
other processes) and ``median`` (robust to a slow outlier in either direction). Each benchmark's
header line says which one its table shows.

torch is imported only inside ``cuda_time``: bench_onnx.py's ONNX Runtime worker imports this
module and reports its own resident memory, which must not include torch's.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple


class Times(NamedTuple):
    """Seconds of each timed call, in call order, by the two clocks."""

    wall: list[float]
    cpu: list[float]


def time_alternated(
    fns: Mapping[str, Callable[[], object]],
    repeat: int,
    warmup: int = 1,
    sync: Callable[[], object] | None = None,
) -> dict[str, Times]:
    """Time each function ``repeat`` times, in rounds that call every function once.

    A shared machine speeds up and slows down over seconds; alternating the functions exposes
    all of them to the same conditions, so their ratios hold even when the absolute times drift.

    Args:
        fns: name -> function of no arguments, called in this order within each round.
        repeat: timed calls of each function, at least 1.
        warmup: untimed rounds first (allocations, caches, algorithm choice), 0 for none.
        sync: called before starting and before stopping the clocks of each call, e.g.
            ``torch.cuda.synchronize``, so that queued asynchronous work counts in its call.

    Returns:
        name -> ``Times`` of its ``repeat`` timed calls (seconds).

    Raises:
        ValueError: ``repeat`` is below 1 (no statistic of no runs).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: Times([], []) for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if sync is not None:
                sync()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            if sync is not None:
                sync()
            times[name].wall.append(time.perf_counter() - wall)
            times[name].cpu.append(time.process_time() - cpu)
    return times


def time_calls(
    fn: Callable[[], object],
    repeat: int,
    warmup: int = 0,
    sync: Callable[[], object] | None = None,
) -> Times:
    """Seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed ones (see time_alternated)."""
    return time_alternated({"fn": fn}, repeat, warmup, sync)["fn"]


def best(seconds: Sequence[float]) -> float:
    """The smallest time (the run least disturbed by other processes), in the input's unit."""
    return min(seconds)


def median(seconds: Sequence[float]) -> float:
    """The median time (the mean of the middle two for an even count), in the input's unit."""
    return statistics.median(seconds)


def cuda_time(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Median wall seconds of ``repeat`` synchronised calls of ``fn`` after ``warmup`` calls.

    The CUDA peak-memory counter is reset after the warm-ups: cudnn.benchmark tries algorithms
    with large workspaces on the first call of each shape, which is not what a run keeps using,
    so ``torch.cuda.max_memory_allocated()`` afterwards reports the timed calls' peak.
    """
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return median(time_calls(fn, repeat, sync=torch.cuda.synchronize).wall)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss``, kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def utc_timestamp() -> str:
    """Now, to the minute, as the benchmarks' header lines print it: ``2026-01-31 12:34 UTC``."""
    return f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The 'model name' line of ``cpuinfo`` (what lscpu prints as Model name).

    Returns "unknown CPU" where the file is missing or has no such line (not Linux, some ARM).
    """
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
