"""Two runs into one folder (issue 33, item 8): a folder that a live run holds is refused
before any work (one line naming the folder and the holder's pid, exit 2); the lock is the
operating system's (flock), so a run killed with SIGKILL leaves nothing that blocks the next
run, --resume included."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

import train
from option import parse_args
from tests.test_outputs import errors, load, never
from tests.test_train import tiny_args
from tests.test_train_ddp import _free_port
from utils.outputs import LOCK_NAME, FolderInUseError, FolderLock

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from utils.outputs import FolderLock
lock = FolderLock()
lock.acquire(sys.argv[1], "--output_path")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process that holds a folder until it is killed: (folder, its pid, kill)."""
    folder = tmp_path / "held"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"

    def kill() -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)

    yield folder, process.pid, kill
    if process.poll() is None:
        kill()


def test_a_folder_held_by_a_live_process_is_refused_and_free_once_it_is_killed(holder):
    folder, pid, kill = holder
    with pytest.raises(FolderInUseError) as error:
        FolderLock().acquire(folder, "--output_path")
    assert str(error.value) == (
        f"--output_path {folder}: in use by another run (pid {pid}); wait for it to end or "
        "choose another folder"
    )
    kill()  # SIGKILL: no clean-up ran, the lock file is still there, the OS let the lock go
    assert (folder / LOCK_NAME).is_file()
    with FolderLock() as lock:
        lock.acquire(folder, "--output_path")
        assert (folder / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert list(folder.iterdir()) == []  # released: the lock file goes too


def test_one_lock_holds_a_folder_named_twice_and_another_lock_is_refused(tmp_path):
    with FolderLock() as lock:
        lock.acquire(tmp_path / "runs", "--ckpt_path")
        lock.acquire(tmp_path / "runs", "--log_dir")  # the same folder for two flags
        with pytest.raises(FolderInUseError, match=f"pid {os.getpid()}"):
            FolderLock().acquire(tmp_path / "runs", "--log_dir")
    with FolderLock() as again:  # a new run into a finished folder
        again.acquire(tmp_path / "runs", "--ckpt_path")


def test_two_evaluations_into_one_folder(tmp_path, tiny_ckpt, monkeypatch, caplog):
    """The issue's example: the second run is refused before scoring, the first one's results
    are its own."""
    evaluation = load("test.py")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(photos / "a.png")
    out = tmp_path / "out"
    argv = ["--mode", "0", "--sigmas", "25", "--denoise_path", str(photos)]
    argv += ["--ckpt", str(tiny_ckpt), "--output_path", str(out), "--device", "cpu"]
    with FolderLock() as first:
        first.acquire(out, "--output_path")
        with monkeypatch.context() as patch, caplog.at_level(logging.ERROR):
            patch.setattr(evaluation, "load_airnet", never)
            assert evaluation.main(evaluation.parse_args(argv)) == 2
        assert errors(caplog) == [
            f"--output_path {out}: in use by another run (pid {os.getpid()}); wait for it to "
            "end or choose another folder"
        ]
        assert list(out.iterdir()) == [out / LOCK_NAME]  # nothing scored, nothing written
    assert evaluation.main(evaluation.parse_args(argv)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "summary.json"]


@pytest.mark.parametrize("flag", ["--ckpt_path", "--log_dir", "--output_path"])
def test_a_second_training_run_on_a_folder_in_use_is_refused(tmp_path, flag, monkeypatch, caplog):
    argv = tiny_args(tmp_path)
    folder = Path(argv[argv.index(flag) + 1])
    monkeypatch.setattr(train, "build_loader", never)
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    with FolderLock() as other, caplog.at_level(logging.ERROR):
        other.acquire(folder, flag)
        with pytest.raises(SystemExit) as stop:
            train.cli()
    assert stop.value.code == 2
    assert errors(caplog) == [
        f"{flag} {folder}: in use by another run (pid {os.getpid()}); wait for it to end or "
        "choose another folder"
    ]


def test_resume_after_a_killed_run_and_a_run_into_a_finished_folder(tmp_path):
    """A SIGKILLed run leaves its lock file, held by nobody; --resume goes on."""
    argv = tiny_args(tmp_path, "--max_steps", "2")
    assert train.main(parse_args(argv)).step == 2
    for folder in ("ckpt", "logs", "out"):
        assert not (tmp_path / folder / LOCK_NAME).exists()
        (tmp_path / folder / LOCK_NAME).write_text("999999\n")  # as a killed run leaves it
    resumed = train.main(
        parse_args([*argv, "--max_steps", "4", "--resume", str(tmp_path / "ckpt")])
    )
    assert resumed.step == 4
    stored = torch.load(tmp_path / "ckpt" / "airnet_last_train.pth", weights_only=True)
    assert stored["step"] == 4


def _rank(rank: int, argv: list[str], port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    os.environ["WORLD_SIZE"] = "2"
    torch.set_num_threads(1)
    try:
        train.main(parse_args(argv))
    except train.SetupError as error:
        (Path(out) / f"rank{rank}.txt").write_text(str(error))


def test_under_torchrun_every_process_stops_with_rank_0s_verdict(tmp_path):
    """Only rank 0 holds the folders; the others learn its refusal instead of waiting for it
    at the first collective (each prints that one line and exits 2)."""
    argv = tiny_args(tmp_path / "run")
    folder = Path(argv[argv.index("--log_dir") + 1])
    with FolderLock() as other:
        other.acquire(folder, "--log_dir")
        mp.spawn(_rank, args=(argv, _free_port(), str(tmp_path)), nprocs=2, join=True)
    expected = f"--log_dir {folder}: in use by another run (pid {os.getpid()})"
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text().startswith(expected), rank
