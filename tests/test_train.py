"""train.py end to end on CPU with a tiny AirNet: both phases, exports, resume, NaN stop."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import train
from net import AirNet, load_airnet
from option import parse_args
from tests.test_train_dataset import make_training_folders
from train import NonFiniteLossError, lr_at_epoch, main
from utils.checkpoint import save_checkpoint_atomic
from utils.run_state import Position, export_model, save_training_state
from utils.validation import qualifies

REPO = Path(__file__).resolve().parents[1]
TINY = ["--n_feats", "8", "--n_groups", "1", "--n_blocks", "1", "--queue_size", "16"]


def tiny_args(tmp_path: Path, *extra: str) -> list[str]:
    """Every type, one patch each per step, 2 steps per epoch, phase 2 from epoch 1."""
    folders = make_training_folders(tmp_path / "data")
    return [
        *TINY,
        "--denoise_dir", str(folders["denoise"]),
        "--derain_dir", str(folders["derain"]),
        "--dehaze_dir", str(folders["dehaze"]),
        "--data_file_dir", str(tmp_path / "no_lists"),
        "--ckpt_path", str(tmp_path / "ckpt"),
        "--log_dir", str(tmp_path / "logs"),
        "--output_path", str(tmp_path / "out"),
        "--patch_size", "24",
        "--epoch_size", "2",
        "--epochs_encoder", "1",
        "--epochs", "3",
        "--num_workers", "0",
        "--device", "cpu",
        "--val_every", "0",
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("epoch", "lr"),
    [
        (0, 1e-3),
        (60, 1e-3),  # set at the end of epoch 59: 1e-3 * 0.1^0
        (61, 1e-4),  # set at the end of epoch 60: 1e-3 * 0.1^1
        (100, 1e-4),
        (101, 1e-4),  # end of epoch 100 = epochs_encoder: still the phase-1 formula
        (102, 1e-4),  # end of epoch 101: 1e-4 * 0.5^0
        (225, 1e-4),
        (226, 5e-5),  # end of epoch 225: 1e-4 * 0.5^1
        (351, 2.5e-5),
    ],
)
def test_learning_rate_at_phase_boundaries(epoch, lr):
    assert math.isclose(lr_at_epoch(epoch, 1e-3, 100), lr, rel_tol=1e-12)


def test_both_phases_validation_and_exports(tmp_path):
    val = [
        "--val_every", "1",
        "--val_images", "1",
        "--val_crop", "32",
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
        "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
    ]  # fmt: skip
    args = parse_args(tiny_args(tmp_path, "--epochs", "2", "--log_every", "1", *val))
    result = main(args)
    assert (result.epoch, result.step) == (2, 4)
    records = [
        json.loads(line) for line in (tmp_path / "logs" / "log.jsonl").read_text().splitlines()
    ]
    train_records = [r for r in records if r["kind"] == "train"]
    assert [r["l1"] == 0 for r in train_records] == [True, True, False, False]  # phase 1, 2
    assert all(math.isfinite(r["ce"]) and 0 <= r["contrast_acc"] <= 1 for r in train_records)
    assert [r["lr"] for r in train_records] == [1e-3] * 4
    val_records = [r for r in records if r["kind"] == "val"]
    assert len(val_records) == 2
    for de_type in ("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"):
        assert math.isfinite(val_records[-1][f"psnr/{de_type}"])
        assert val_records[0][f"input_psnr/{de_type}"] == val_records[-1][f"input_psnr/{de_type}"]
        assert (tmp_path / "out" / "val" / de_type).is_dir()
    assert json.loads((tmp_path / "logs" / "args.json").read_text())["queue_size"] == 16
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "logs").iterdir())

    ckpt = tmp_path / "ckpt"
    assert {p.name for p in ckpt.iterdir()} >= {
        "airnet_last_train.pth",
        "airnet_last.pth",
        "airnet_best.pth",
    }
    export = torch.load(ckpt / "airnet_last.pth", weights_only=True)
    assert set(export) == {"model", "args"}
    reference_keys = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16).state_dict().keys()
    assert list(export["model"]) == list(reference_keys)
    model = load_airnet(ckpt / "airnet_last.pth")
    for name, value in model.state_dict().items():
        assert torch.equal(value, result.model.state_dict()[name]), name
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 20, 28)).shape == (1, 3, 20, 28)
    # Phase 2 trained DGRN and the query encoder (Adam holds state for exactly those).
    n_restorer = len(list(model.R.parameters()))
    n_query = len(list(model.E.E.encoder_q.parameters()))
    state = torch.load(ckpt / "airnet_last_train.pth", weights_only=True)["optimizer"]["state"]
    assert set(state) == set(range(n_restorer + n_query))


def test_phase_one_trains_the_encoder_only(tmp_path):
    result = main(parse_args(tiny_args(tmp_path, "--epochs", "1")))
    n_restorer = len(list(result.model.R.parameters()))
    n_query = len(list(result.model.E.E.encoder_q.parameters()))
    checkpoint = torch.load(tmp_path / "ckpt/airnet_last_train.pth", weights_only=True)
    assert set(checkpoint["optimizer"]["state"]) == set(range(n_restorer, n_restorer + n_query))


def test_command_line_smoke_run(tmp_path):
    """python train.py ... as a user runs it: both phases, exit status 0, files written."""
    argv = tiny_args(tmp_path, "--max_steps", "3", "--num_workers", "2", "--log_every", "1")
    result = subprocess.run(
        [sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # stderr is a pipe, not a terminal: plain lines, one per --log_every steps, no bar redraws
    assert "\r" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if " step " in line and "loss=" in line]
    assert [line.split(" step ")[1].split(":")[0] for line in lines] == ["1", "2", "3"]
    assert "epoch 1 (full) step 3: loss=" in lines[-1] and "s/step)" in lines[-1]
    assert load_airnet(tmp_path / "ckpt" / "airnet_last.pth").config["n_feats"] == 8


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    uninterrupted = main(parse_args(tiny_args(tmp_path / "a")))
    assert uninterrupted.step == 6
    # Stop mid-epoch in phase 2, then resume from the checkpoint the stop wrote.
    interrupted = tiny_args(tmp_path / "b")
    first = main(parse_args([*interrupted, "--max_steps", "3"]))
    assert (first.epoch, first.step) == (1, 3)
    checkpoint = torch.load(tmp_path / "b/ckpt/airnet_last_train.pth", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["batch"], checkpoint["step"]) == (1, 1, 3)
    assert {"python", "numpy", "torch"} <= checkpoint["rng"].keys()
    # --max_steps comes from the checkpoint unless given again (decision 6)
    resume = [*interrupted, "--resume", str(tmp_path / "b/ckpt"), "--max_steps", "6"]
    resumed = main(parse_args(resume))
    assert resumed.step == 6
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    compute_losses = train.compute_losses
    calls = []

    def diverging(*args, **kwargs):
        loss, stats = compute_losses(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            loss, stats = loss * math.nan, {**stats, "loss": stats["loss"] * math.nan}
        return loss, stats

    monkeypatch.setattr(train, "compute_losses", diverging)
    with pytest.raises(NonFiniteLossError, match="step 3 "):
        main(parse_args(tiny_args(tmp_path)))
    checkpoint = torch.load(tmp_path / "ckpt/airnet_last_train.pth", weights_only=True)
    assert checkpoint["step"] == 2
    assert all(
        torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point()
    )


def test_paper_size_export_is_an_official_flat_state_dict(tmp_path):
    """The official code does ``net.load_state_dict(torch.load(path))``: it needs a flat dict."""
    model = AirNet()
    export_model(model, parse_args([]), tmp_path / "airnet_last.pth", epoch=3, step=9)
    state = torch.load(tmp_path / "airnet_last.pth", weights_only=True)
    assert list(state) == list(model.state_dict())
    AirNet().load_state_dict(state)
    assert load_airnet(tmp_path / "airnet_last.pth").config == AirNet().config


def test_checkpoints_are_readable_by_others(tmp_path):
    save_checkpoint_atomic({"a": torch.zeros(1)}, tmp_path / "x.pth")
    assert (tmp_path / "x.pth").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["x.pth"]  # no temporary file left


def test_sigterm_saves_a_resumable_checkpoint_and_exits(tmp_path):
    """A cluster's SIGTERM mid-epoch: the step finishes, a checkpoint is written, exit 143."""
    argv = tiny_args(tmp_path, "--epochs", "1000", "--epoch_size", "50", "--log_every", "1")
    argv += ["--num_workers", "2"]
    log = tmp_path / "logs" / "log.jsonl"
    process = subprocess.Popen(
        [sys.executable, "train.py", *argv], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (log.is_file() and log.read_text().count('"train"') >= 3):
            assert process.poll() is None and time.monotonic() < deadline, "no training steps"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr
    state = torch.load(tmp_path / "ckpt" / "airnet_last_train.pth", weights_only=True)
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert state["step"] == max(logged) and state["step"] < 1000 * 50  # saved where it stopped
    resumed = main(parse_args([*argv, "--resume", str(tmp_path / "ckpt")] + [
        "--max_steps", str(state["step"] + 2), "--num_workers", "0"]))  # fmt: skip
    assert resumed.step == state["step"] + 2 and resumed.interrupted is None


def test_synthetic_haze_and_rain_train_from_clean_photos_only(tmp_path):
    argv = tiny_args(tmp_path, "--max_steps", "2")
    argv = [a for a in argv if "derain" not in a and "dehaze" not in a]  # drop the real folders
    args = parse_args([*argv, "--synthetic", "derain", "dehaze"])
    assert args.derain_dir is None and args.dehaze_dir is None
    assert main(args).step == 2


def test_mid_epoch_checkpoint_every_n_steps(tmp_path):
    argv = tiny_args(tmp_path, "--epoch_size", "50", "--checkpoint_every_steps", "3")
    first = main(parse_args([*argv, "--max_steps", "5"]))
    assert first.step == 5
    # The step-3 save happened mid-epoch; the stop at 5 wrote another. Both are resumable.
    state = torch.load(tmp_path / "ckpt/airnet_last_train.pth", weights_only=True)
    assert (state["epoch"], state["batch"], state["step"]) == (0, 5, 5)


def test_mid_epoch_checkpoint_by_time(tmp_path, monkeypatch):
    saved_at = []
    save = train.save_training_state

    def recording(path, model, optimizer, scaler, args, position, *rest):
        saved_at.append(position.step)
        save(path, model, optimizer, scaler, args, position, *rest)

    monkeypatch.setattr(train, "save_training_state", recording)
    clock = iter(range(0, 10_000, 40))  # each call 40 s later: a 1-minute interval every 2 steps
    monkeypatch.setattr(train.time, "monotonic", lambda: next(clock))
    argv = tiny_args(tmp_path, "--epoch_size", "50", "--checkpoint_every_minutes", "1")
    main(parse_args([*argv, "--max_steps", "6"]))
    assert saved_at[:-1] and all(step < 6 for step in saved_at[:-1])  # mid-epoch saves
    assert saved_at[-1] == 6  # and the final one


def test_sigkill_mid_epoch_resumes_to_the_same_weights(tmp_path):
    """No signal handler runs on SIGKILL: the run resumes from the last interval checkpoint."""
    argv = tiny_args(tmp_path / "b", "--epoch_size", "50", "--epochs", "1")
    argv += ["--checkpoint_every_steps", "2", "--log_every", "1"]
    uninterrupted = main(
        parse_args(tiny_args(tmp_path / "a", "--epoch_size", "50", "--epochs", "1"))
    )
    checkpoint = tmp_path / "b" / "ckpt" / "airnet_last_train.pth"
    process = subprocess.Popen(
        [sys.executable, "train.py", *argv], cwd=REPO, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.is_file():
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.05)
        process.kill()  # SIGKILL: nothing is saved on the way out
        process.wait(timeout=60)
    finally:
        process.kill()
    state = torch.load(checkpoint, weights_only=True)
    assert 2 <= state["step"] < 50 and state["step"] % 2 == 0  # mid-epoch, at the interval
    resumed = main(parse_args([*argv, "--resume", str(checkpoint)]))
    assert resumed.step == uninterrupted.step == 50
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_init_from_takes_weights_and_size_with_a_fresh_optimiser(tmp_path):
    source = AirNet(n_feats=8, n_groups=1, n_blocks=2, queue_size=32)
    export = tmp_path / "weights.pth"
    save_checkpoint_atomic({"model": source.state_dict(), "args": source.config}, export)
    args = parse_args(tiny_args(tmp_path, "--init_from", str(export), "--max_steps", "1"))
    captured = {}
    monkey_step = train.optimizer_step

    def first_step(net, batch, encoder_only, optimizer, *rest):
        captured.setdefault("state", {k: v.clone() for k, v in train_model(net).items()})
        captured.setdefault("optimizer", len(optimizer.state))
        return monkey_step(net, batch, encoder_only, optimizer, *rest)

    def train_model(net):
        return getattr(net, "module", net).state_dict()

    train.optimizer_step = first_step
    try:
        result = main(args)
    finally:
        train.optimizer_step = monkey_step
    assert result.model.config == {"n_feats": 8, "n_groups": 1, "n_blocks": 2}
    assert captured["optimizer"] == 0  # fresh Adam
    encoder_state = source.E.state_dict()
    for name, value in captured["state"].items():  # phase 1 wraps the encoder: E's keys
        if "queue" not in name:
            assert torch.equal(value, encoder_state[name]), name
    assert result.step == 1 and result.epoch == 0


def test_init_from_and_resume_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(tiny_args(tmp_path, "--init_from", "a.pth", "--resume", "b"))
    assert "give one of them" in capsys.readouterr().err


def test_non_finite_weights_are_never_written(tmp_path, caplog):
    """Every writer (interval, epoch end, SIGTERM, airnet_last/_best) goes through these two:
    a file on disk stays the last good one when the weights are no longer finite."""
    args = parse_args(tiny_args(tmp_path))
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    export = tmp_path / "export.pth"
    export_model(model, args, export)
    good = export.read_bytes()
    with torch.no_grad():
        model.R.tail[0].weight[0, 0, 0, 0] = float("nan")
    export_model(model, args, export)
    assert export.read_bytes() == good
    state = tmp_path / "state.pth"
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    save_training_state(state, model, optimizer, scaler, args, Position())
    assert not state.exists()
    assert caplog.text.count("not written: the weights are not finite") == 2


OLD_CHECKPOINT = REPO / "tests/fixtures/train_checkpoint_7a221e3.pth"
RESUME_THE_FIXTURE = ["--resume", str(OLD_CHECKPOINT), "--max_steps", "6"]


@contextmanager
def threads_of_the_fixture() -> Iterator[None]:
    """Run torch on the 2 CPU threads that wrote OLD_CHECKPOINT: the sums of a CPU step
    depend on the thread count, so a resumed run matches an uninterrupted one bit for bit
    only on the same count (under OMP_NUM_THREADS=1 they differ from the first step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_a_checkpoint_written_before_the_code_moves_resumes_exactly(tmp_path):
    """tests/fixtures/train_checkpoint_7a221e3.pth was written by train.py at commit 7a221e3,
    before the run state and logs moved to utils/run_state.py and utils/run_log.py (issue 31):
    ``tiny_args`` with --max_steps 3, on 2 threads. Resumed now, it ends where an
    uninterrupted run does. The sums of a CPU step depend on the thread count, so both runs
    use the fixture's 2 (under OMP_NUM_THREADS=1 the bits would differ from step 1)."""
    with threads_of_the_fixture():
        uninterrupted = main(parse_args(tiny_args(tmp_path / "a")))
        resumed = main(parse_args([*tiny_args(tmp_path / "b"), *RESUME_THE_FIXTURE]))
    assert resumed.step == 6
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_reference_weights_are_scored_once_and_every_validation_compares_with_them(tmp_path):
    """--reference_weights (decision 14): the shipped file's metrics are logged once as a
    ``reference`` record, and each validation's ``qualifies`` is the rule against them."""
    shipped = tmp_path / "shipped.pth"
    reference_model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    torch.save({"model": reference_model.state_dict(), "args": reference_model.config}, shipped)
    val = [
        "--val_every", "1", "--val_images", "1", "--val_crop", "32",
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
        "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
        "--reference_weights", str(shipped),
    ]  # fmt: skip
    main(parse_args(tiny_args(tmp_path, "--epochs", "2", *val)))
    lines = (tmp_path / "logs" / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    references = [r for r in records if r["kind"] == "reference"]
    assert len(references) == 1 and math.isfinite(references[0]["psnr/derain"])
    for record in (r for r in records if r["kind"] == "val"):
        metrics = {k: v for k, v in record.items() if "/" in k}
        assert record["qualifies"] == qualifies(metrics, references[0])


def test_reference_weights_that_cannot_be_read_stop_the_run_in_one_line(tmp_path):
    val = ["--val_every", "1", "--val_images", "1", "--val_crop", "32"]
    val += ["--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68")]
    val += ["--val_derain_dir", str(REPO / "data/test/derain/Rain100L")]
    val += ["--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor")]
    argv = tiny_args(tmp_path, *val, "--reference_weights", str(tmp_path / "absent.pth"))
    result = subprocess.run(
        [sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "--reference_weights" in result.stderr and "Traceback" not in result.stderr


def test_a_run_with_sampling_weights_resumes_with_them_exactly(tmp_path):
    """--sampling_weights (issue 32, the one-by-one dehaze file's clean share): stopped
    mid-run and resumed without the flag, the checkpoint's weights hold and the run ends
    where an uninterrupted one does."""
    weighted = ["--de_type", "dehaze", "clean", "--sampling_weights", "1", "2", "--epochs", "2"]
    uninterrupted = main(parse_args(tiny_args(tmp_path / "a", *weighted)))
    main(parse_args(tiny_args(tmp_path / "b", *weighted, "--max_steps", "3")))
    checkpoint = torch.load(tmp_path / "b/ckpt/airnet_last_train.pth", weights_only=True)
    assert checkpoint["args"]["sampling_weights"] == [1, 2]
    assert checkpoint["args"]["batch_size"] == 3
    resume = ["--resume", str(tmp_path / "b/ckpt"), "--max_steps", "4"]
    args = parse_args([*tiny_args(tmp_path / "b"), *resume])
    resumed = main(args)
    assert args.sampling_weights == [1, 2] and args.de_type == ["dehaze", "clean"]
    assert resumed.step == uninterrupted.step
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
