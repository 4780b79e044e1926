"""train.py --config (recipes as files) and decision 6 (where a resumed run's settings come
from), with the device error of a machine without CUDA."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train
from option import apply_checkpoint_settings, get_parser, parse_args
from tests.test_train import REPO, tiny_args
from train import main
from utils.config import config_to_argv, read_config

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_every_recipe_parses(config):
    values = read_config(config)
    assert values, "an empty recipe"
    config_to_argv(values, get_parser(), config)  # every key a flag, every value accepted
    args = parse_args(["--config", str(config)])
    for key, value in values.items():
        if value is not None:
            expected = value if isinstance(value, bool | list) else type(getattr(args, key))(value)
            assert getattr(args, key) == expected, key


def test_smoke_recipe_runs_two_steps(tmp_path):
    out = ["--ckpt_path", str(tmp_path / "c"), "--log_dir", str(tmp_path / "l")]
    out += ["--output_path", str(tmp_path / "o"), "--max_steps", "2"]
    args = parse_args(["--config", str(REPO / "configs/smoke_cpu.yaml"), *out])
    result = main(args)
    assert result.step == 2
    recorded = json.loads((tmp_path / "l/args.json").read_text())
    assert recorded["config"] == str((REPO / "configs/smoke_cpu.yaml").resolve())
    assert recorded["config_values"]["n_feats"] == 8


def test_command_line_overrides_the_file_and_yaml_strings_go_through_the_types(tmp_path):
    config = write(tmp_path / "r.yaml", "lr: 2e-3\nepochs: 7\nde_type: [derain, dehaze]\n")
    args = parse_args(["--config", str(config), "--epochs", "9"])
    assert args.lr == 0.002  # YAML 1.1 reads 2e-3 as a string; float() reads it as the CLI does
    assert args.epochs == 9
    assert args.de_type == ["derain", "dehaze"]
    assert {"lr", "epochs", "de_type"} <= set(args.given)
    assert "patch_size" not in args.given  # a default is never "given"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate: 1e-3\n", "unknown key 'learning_rate'"),
        ("precision: no\n", "precision: YAML reads False as a boolean"),
        ("lr: fast\n", "lr: expected a number > 0 and <= 1, got fast"),
        ("precision: fp64\n", "precision: 'fp64' is not one of"),
        ("de_type: [derain, snow]\n", "de_type: 'snow' is not one of"),
        ("epochs: [1, 2]\n", "epochs: takes one value, got a list"),
        ("sync_bn: 1\n", "sync_bn: expected true or false"),
        ("- lr\n", "expected a mapping"),
        ("lr: [\n", "not valid YAML"),
    ],
)
def test_a_bad_recipe_is_one_line_exit_2(tmp_path, text, message, capsys):
    config = write(tmp_path / "bad.yaml", text)
    with pytest.raises(SystemExit) as stop:
        parse_args(["--config", str(config)])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and str(config) in error


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_utf16_with_its_mark_and_utf8_with_a_mark_are_read(tmp_path, encoding):
    """Windows editors and PowerShell's > write UTF-16 with a byte-order mark."""
    config = tmp_path / "r.yaml"
    text = "# réglage\nlr: 2e-3\nde_type: [derain, dehaze]\n"
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # the codec writes no mark: add it
        data = ("\ufeff" + text).encode(encoding)
    config.write_bytes(data)
    args = parse_args(["--config", str(config)])
    assert args.lr == 0.002 and args.de_type == ["derain", "dehaze"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("# réglage\nlr: 2e-3\n".encode("latin-1"), "not UTF-8 (byte 0xe9 at offset 3)"),
        ("lr: 2e-3\n".encode("utf-16-le"), "not UTF-8 (it holds zero bytes)"),
        ("lr: 2e-3\n".encode("cp1252") + b"# \x93quoted\x94\n", "not UTF-8 (byte 0x93"),
    ],
    ids=["latin-1", "utf-16 without its mark", "cp1252"],
)
def test_other_encodings_are_one_line_naming_the_file(tmp_path, data, reason, capsys):
    config = tmp_path / "r.yaml"
    config.write_bytes(data)
    with pytest.raises(SystemExit) as stop:
        parse_args(["--config", str(config)])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and reason in lines[0], lines


@pytest.mark.parametrize(
    ("key", "meant"),
    [("learning_rate", "lr"), ("patch-size", "patch_size"), ("epoch", "epochs"), ("LR", "lr")],
)
def test_an_unknown_key_is_one_line_with_the_closest_flag(tmp_path, key, meant, capsys):
    """Not argparse's usage block (26 lines) before the line that matters."""
    config = write(tmp_path / "r.yaml", f"{key}: 1e-3\n")
    with pytest.raises(SystemExit) as stop:
        parse_args(["--config", str(config)])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"unknown key {key!r} (did you mean {meant}?)" in lines[0], lines


def test_missing_config_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(["--config", str(tmp_path / "none.yaml")])
    assert stop.value.code == 2
    assert "cannot read it" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Decision 6
# ---------------------------------------------------------------------------------------------


def stop_after(monkeypatch, steps: int) -> None:
    """Make the run stop (as a signal would) after ``steps`` optimiser steps."""
    calls = {"n": 0}

    def stop_everywhere(*_):
        calls["n"] += 1
        return calls["n"] >= steps

    monkeypatch.setattr(train, "stop_everywhere", stop_everywhere)


PATH_FLAGS = ("--denoise_dir", "--derain_dir", "--dehaze_dir", "--data_file_dir", "--ckpt_path")
PATH_FLAGS += ("--log_dir", "--output_path", "--device", "--num_workers")


def paths_only(argv: list[str]) -> list[str]:
    """The data, output and machine flags of ``argv``: what the SIGTERM message advises."""
    pairs = zip(argv[::2], argv[1::2], strict=True)
    return [token for flag, value in pairs if flag in PATH_FLAGS for token in (flag, value)]


def test_resume_with_only_the_paths_ends_like_the_uninterrupted_run(tmp_path, monkeypatch):
    recipe = ["--epochs", "4", "--epochs_encoder", "1", "--lr", "2e-3"]
    uninterrupted = main(parse_args([*tiny_args(tmp_path / "a"), *recipe]))
    assert uninterrupted.step == 8
    argv = tiny_args(tmp_path / "b")
    stop_after(monkeypatch, 3)
    main(parse_args([*argv, *recipe]))
    monkeypatch.undo()
    resumed = main(parse_args([*paths_only(argv), "--resume", str(tmp_path / "b/ckpt")]))
    assert resumed.step == 8
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    stored = torch.load(tmp_path / "b/ckpt/airnet_last_train.pth", weights_only=True)["args"]
    assert (stored["epochs"], stored["epochs_encoder"], stored["lr"]) == (4, 1, 2e-3)


def stored_args(tmp_path: Path, *extra: str) -> dict:
    args = parse_args([*tiny_args(tmp_path), *extra])
    return dict(vars(args))


def test_checkpoint_settings_and_what_the_command_line_may_change(tmp_path):
    stored = stored_args(tmp_path / "a", "--epochs", "4", "--lr", "2e-3", "--patch_size", "24")
    argv = [*paths_only(tiny_args(tmp_path / "b")), "--resume", "x"]
    argv += ["--patch_size", "32", "--lr", "1e-3"]
    args = parse_args(argv)
    taken, ignored = apply_checkpoint_settings(args, stored)
    assert args.patch_size == 24 and ignored == {"patch_size": 32}  # fixed by the checkpoint
    assert args.lr == 1e-3 and args.epochs == 4  # given again wins; not given: the checkpoint's
    assert args.device == "cpu" and args.ckpt_path == str(tmp_path / "b/ckpt")  # never restored
    assert "epochs" in taken


def test_default_folders_never_count_as_given(tmp_path):
    """A run on synthetic haze, resumed from the repo root with paths only, must not pick up
    the sample pair of data/train/dehaze/ (the parser's default)."""
    stored = stored_args(tmp_path / "a", "--synthetic", "dehaze")
    del stored["dehaze_dir"]  # as if --dehaze_dir had never been given
    stored["dehaze_dir"] = None
    args = parse_args(["--resume", "x", "--denoise_dir", "d"])
    assert args.dehaze_dir is None and args.derain_dir is None  # not filled before the merge
    apply_checkpoint_settings(args, stored)
    assert args.synthetic == ["dehaze"] and args.dehaze_dir is None
    assert args.denoise_dir == "d"


def test_an_old_checkpoint_without_new_settings_still_resumes(tmp_path, monkeypatch):
    argv = tiny_args(tmp_path)
    stop_after(monkeypatch, 3)
    main(parse_args(argv))
    monkeypatch.undo()
    path = tmp_path / "ckpt/airnet_last_train.pth"
    checkpoint = torch.load(path, weights_only=True)
    for key in ("loss_weighting", "tur_floor", "given", "config"):
        checkpoint["args"].pop(key, None)
    checkpoint.pop("best_qualifies")
    torch.save(checkpoint, path)
    resumed = main(parse_args([*argv, "--resume", str(path)]))
    assert resumed.step == 6


def test_a_differing_fixed_setting_is_logged_in_one_line(tmp_path, monkeypatch, caplog):
    argv = tiny_args(tmp_path)
    stop_after(monkeypatch, 3)
    main(parse_args(argv))
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="train"):
        main(parse_args([*argv, "--resume", str(tmp_path / "ckpt"), "--seed", "5"]))
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert lines == ["fixed by the checkpoint, ignored: --seed 5 (start a new run to change them)"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_one_line_exit_2(tmp_path):
    argv = [*tiny_args(tmp_path), "--device", "cuda"]
    result = subprocess.run(
        [sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "--device cuda: CUDA is not available" in errors[0]
