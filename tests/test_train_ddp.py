"""Two-process training on CPU (gloo), as torchrun would run it: after steps of both phases
the parameters and the MoCo queues are identical on both ranks, and the queue holds the keys
of both ranks (MoCo.gather_keys), and with --encoder_loss supcon their types."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import train
from option import parse_args
from tests.test_train import tiny_args
from train import main
from utils.stop import GracefulStop

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, argv: list[str], port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
    )
    torch.set_num_threads(1)
    result = main(parse_args(argv))
    torch.save(result.model.state_dict(), Path(out) / f"rank{rank}.pt")
    torch.save(result.model.E.E.queue_types, Path(out) / f"rank{rank}.types")
    summary = {"step": result.step, "interrupted": result.interrupted}
    torch.save(summary, Path(out) / f"rank{rank}.result")


@pytest.mark.parametrize("encoder_loss", ["moco", "supcon"])
def test_two_gloo_processes_stay_identical(tmp_path, encoder_loss):
    # 5 patches per rank and step; epoch_size 4 gives 2 steps per epoch on each rank, so
    # 4 steps cover phase 1 (epoch 0) and phase 2 (epoch 1). No --queue_size: 256 * 5 * 2.
    argv = [a for a in tiny_args(tmp_path) if a not in ("--queue_size", "16")]
    argv += ["--epoch_size", "4", "--max_steps", "4", "--encoder_loss", encoder_loss]
    mp.spawn(_rank, args=(argv, _free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # BatchNorm running statistics are per process (rank 0's are broadcast before each
    # forward); everything else must agree exactly.
    compared = [k for k in states[0] if "running_" not in k and "num_batches" not in k]
    assert "E.E.queue" in compared and "R.head.0.weight" in compared
    for name in compared:
        assert torch.equal(states[0][name], states[1][name]), name
    # 4 steps x 5 keys x 2 ranks entered the queue of 2560 on every rank.
    assert states[0]["E.E.queue"].shape == (32, 2560)
    assert int(states[0]["E.E.queue_ptr"]) == 40
    types = [torch.load(tmp_path / f"rank{r}.types", weights_only=True) for r in range(2)]
    assert torch.equal(types[0], types[1]) and (types[0][40:] == -1).all()
    if encoder_loss == "supcon":  # one patch of each of the 5 types per rank and step
        assert torch.bincount(types[0][:40]).tolist() == [8] * 5
    else:
        assert (types[0] == -1).all()
    assert (tmp_path / "ckpt" / "airnet_last_train.pth").is_file()


class _SignalledOnRankOne(GracefulStop):
    """As if SIGTERM had reached rank 1 only, before its first step."""

    def __enter__(self) -> GracefulStop:
        super().__enter__()
        if os.environ["RANK"] == "1":
            self.requested = "SIGTERM"
        return self


def _rank_signalled(rank: int, argv: list[str], port: int, out: str) -> None:
    train.GracefulStop = _SignalledOnRankOne
    _rank(rank, argv, port, out)


def test_a_signal_on_one_rank_stops_all_at_the_same_step(tmp_path):
    argv = [*tiny_args(tmp_path), "--epoch_size", "20"]
    mp.spawn(
        _rank_signalled, args=(argv, _free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True
    )
    results = [torch.load(tmp_path / f"rank{r}.result", weights_only=True) for r in range(2)]
    assert results == [{"step": 1, "interrupted": "SIGTERM"}] * 2
    state = torch.load(tmp_path / "ckpt" / "airnet_last_train.pth", weights_only=True)
    assert state["step"] == 1


def _rank_with_fast_clock_on_rank_one(rank: int, argv: list[str], port: int, out: str) -> None:
    """Rank 1's clock runs two minutes a call, rank 0's is real: only rank 1 finds the time-based
    checkpoint due, and every rank must still save at the same steps (or the barrier hangs)."""
    if rank == 1:
        ticks = iter(range(0, 10**6, 120))
        train.time.monotonic = lambda: next(ticks)
    save = train.save_resumable
    saved = []

    def recording(run, position):
        saved.append(position.step)
        save(run, position)

    train.save_resumable = recording
    _rank(rank, argv, port, out)
    torch.save(saved, Path(out) / f"rank{rank}.saved")


def test_time_based_checkpoints_happen_at_the_same_step_on_every_rank(tmp_path):
    argv = [*tiny_args(tmp_path), "--epoch_size", "20", "--max_steps", "4"]
    argv += ["--checkpoint_every_minutes", "1"]
    mp.spawn(
        _rank_with_fast_clock_on_rank_one,
        args=(argv, _free_port(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
    )
    saved = [torch.load(tmp_path / f"rank{r}.saved", weights_only=True) for r in range(2)]
    assert saved[0] == saved[1] and saved[0]  # mid-epoch saves, on both ranks alike
