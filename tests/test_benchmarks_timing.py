"""benchmarks/timing.py: what each timed call counts, the statistics, and that every benchmark
times through it. Clocks are stubbed; nothing here asserts on speed."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from benchmarks import timing

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if p.name != "timing.py")


class FakeClock:
    """Stands in for the ``time`` module: both clocks move only when a test moves them."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def perf_counter(self) -> float:
        return self.wall

    def process_time(self) -> float:
        return self.cpu


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing, "time", fake)
    return fake


def test_rounds_alternate_and_each_call_is_timed_by_both_clocks(clock: FakeClock) -> None:
    log: list[str] = []
    # (wall, cpu) seconds each call takes; the first is the untimed warm-up.
    takes = {
        "a": iter([(9, 9), (3, 1), (1, 0.5), (2, 2)]),
        "b": iter([(9, 9), (5, 4), (7, 6), (6, 5)]),
    }

    def call(name: str) -> Callable[[], None]:
        def fn() -> None:
            wall, cpu = next(takes[name])
            clock.wall += wall
            clock.cpu += cpu
            log.append(name)

        return fn

    times = timing.time_alternated({"a": call("a"), "b": call("b")}, repeat=3, warmup=1)
    assert log == ["a", "b"] * 4  # one warm-up round, then three timed rounds
    assert times["a"] == timing.Times(wall=[3, 1, 2], cpu=[1, 0.5, 2])
    assert times["b"] == timing.Times(wall=[5, 7, 6], cpu=[4, 6, 5])
    assert timing.best(times["a"].wall) == 1
    assert timing.median(times["b"].wall) == 6
    assert timing.median(times["a"].cpu) == 1


def test_sync_counts_queued_work_in_its_call_and_not_before(clock: FakeClock) -> None:
    """As with CUDA: a call queues work; synchronising waits for it."""
    queued = [0.0]

    def fn() -> None:
        queued[0] += 2  # returns at once, the work runs later

    def sync() -> None:
        clock.wall += queued[0]
        queued[0] = 0.0

    queued[0] = 5  # left over from earlier work: must not count in the first timed call
    times = timing.time_calls(fn, repeat=2, warmup=1, sync=sync)
    assert times.wall == [2, 2]
    assert timing.time_calls(fn, repeat=2).wall == [0, 0]  # without sync only the queueing


def test_statistics() -> None:
    assert timing.median([4.0, 1.0, 3.0, 2.0]) == 2.5  # even count: mean of the middle two
    assert timing.median([3.0, 1.0, 2.0]) == 2.0
    assert timing.best([0.3, 0.1, 0.2]) == 0.1


@pytest.mark.parametrize("repeat", [0, -1])
def test_no_timed_runs_is_an_error(repeat: int) -> None:
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        timing.time_calls(lambda: None, repeat)


def test_cpu_model_name(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000 @ 3.00GHz\nflags\t: avx2\n")
    assert timing.cpu_model_name(cpuinfo) == "Example CPU 9000 @ 3.00GHz"
    cpuinfo.write_text("processor\t: 0\nflags\t: avx2\n")
    assert timing.cpu_model_name(cpuinfo) == "unknown CPU"
    assert timing.cpu_model_name(tmp_path / "missing") == "unknown CPU"


def test_utc_timestamp_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", timing.utc_timestamp())


def test_importing_timing_does_not_import_torch() -> None:
    """bench_onnx.py's ONNX Runtime worker reports its memory; torch's must not be in it."""
    code = "import sys, benchmarks.timing; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_imports_and_times_through_timing(path: Path) -> None:
    importlib.import_module(f"benchmarks.{path.stem}")
    source = path.read_text()
    assert "benchmarks.timing import" in source
    for clock_call in ("perf_counter(", "process_time(", "getrusage("):
        assert clock_call not in source, f"{path.name} reads a clock itself: use timing.py"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only")
def test_cuda_time_resets_the_peak_memory_after_the_warmups() -> None:
    calls = []

    def fn() -> None:
        # The warm-ups take 256 MiB (as cudnn.benchmark's trial workspaces do), timed calls 4 MiB.
        size = 2**26 if len(calls) < 2 else 2**20
        calls.append(torch.empty(size, device="cuda").fill_(1).sum())

    held = torch.cuda.memory_allocated()  # by earlier tests of the session
    assert timing.cuda_time(fn, repeat=3, warmup=2) >= 0
    assert len(calls) == 5
    assert torch.cuda.max_memory_allocated() - held < 2**26


def test_bench_sizes_reads_sizes_and_refuses_others() -> None:
    from benchmarks.bench_sizes import parse_size

    assert parse_size("32x1x2") == (32, 1, 2) and parse_size("64X5X5") == (64, 5, 5)
    for bad in ("32x1", "32x0x2", "axbxc"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
