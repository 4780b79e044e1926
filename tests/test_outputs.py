"""Outputs that cannot be written (issue 33, item 2): every entry point checks by a real write,
before any work, that its outputs can be written (one line naming the flag, exit 2); a write
that fails later is one line naming the file, and training keeps its last good checkpoint.

Folders are made unwritable by a path through a file, which gives ENOTDIR for any user: root
writes through permission bits, so chmod would test nothing in CI.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train
from tests.stubs import IdentitySession
from tests.test_ranges import load  # a script as a module, as the range tests load it
from tests.test_train import tiny_args
from utils import paths
from utils.outputs import OutputError, check_writable_file, check_writable_folder

REPO = Path(__file__).resolve().parents[1]


def through_a_file(tmp_path: Path) -> Path:
    """A folder path whose parent is a file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    return blocker / "out"


def never(*args, **kwargs):
    raise AssertionError("work started before the output was checked")


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_check_writable_folder(tmp_path):
    bad = through_a_file(tmp_path)
    with pytest.raises(OutputError) as error:
        check_writable_folder(bad, "--log_dir")
    assert str(error.value) == (
        f"--log_dir {bad}: cannot write there ({tmp_path / 'a_file'} is a file, not a folder)"
    )
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable_folder(tmp_path / "a_file", "--ckpt_path")  # an existing file
    check_writable_folder(tmp_path / "new" / "deep", "--output_path")  # nothing made or left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_check_writable_file(tmp_path):
    with pytest.raises(OutputError, match="it is a folder"):
        check_writable_file(tmp_path, "--output")
    with pytest.raises(OutputError, match=r"--output .*a_file/out/x.onnx: cannot write there"):
        check_writable_file(through_a_file(tmp_path) / "x.onnx", "--output")
    check_writable_file(tmp_path / "sub" / "x.onnx", "--output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# ---------------------------------------------------------------------------------------------
# train.py
# ---------------------------------------------------------------------------------------------


def run_cli(monkeypatch, argv: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    with pytest.raises(SystemExit) as stop:
        train.cli()
    return stop.value.code


@pytest.mark.parametrize("flag", ["--log_dir", "--ckpt_path", "--output_path"])
def test_training_refuses_an_unwritable_folder_before_any_work(tmp_path, flag, monkeypatch, caplog):
    bad = through_a_file(tmp_path)
    monkeypatch.setattr(train, "build_loader", never)
    with caplog.at_level(logging.ERROR):
        assert run_cli(monkeypatch, tiny_args(tmp_path, flag, str(bad))) == 2
    assert errors(caplog) == [
        f"{flag} {bad}: cannot write there ({bad.parent} is a file, not a folder)"
    ]


def test_training_refuses_a_ckpt_path_that_is_a_file_at_start(tmp_path, monkeypatch, caplog):
    """The issue's example: it trained, then crashed at its first save."""
    file = tmp_path / "airnet.pth"
    file.write_bytes(b"weights")
    monkeypatch.setattr(train, "build_loader", never)
    with caplog.at_level(logging.ERROR):
        assert run_cli(monkeypatch, tiny_args(tmp_path, "--ckpt_path", str(file))) == 2
    assert errors(caplog) == [
        f"--ckpt_path {file}: cannot write there ({file} is a file, not a folder)"
    ]
    assert file.read_bytes() == b"weights"


def test_a_missing_reference_file_is_refused_before_any_work(tmp_path, monkeypatch, caplog):
    missing = tmp_path / "shipped.safetensors"
    monkeypatch.setattr(train, "build_loader", never)
    argv = tiny_args(tmp_path, "--val_every", "1", "--reference_weights", str(missing))
    with caplog.at_level(logging.ERROR):
        assert run_cli(monkeypatch, argv) == 2
    assert errors(caplog) == [f"--reference_weights {missing}: cannot read it (no such file)"]


def test_a_save_that_fails_mid_run_is_one_line_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, caplog
):
    """The disk fills up after the first checkpoint: exit 1, one line naming the file, and
    the checkpoint on disk is still the one of step 1 (resumable)."""
    replace, saves = os.replace, []

    def full_after_one(src, dst):
        if str(dst).endswith(".pth"):
            saves.append(dst)
            if len(saves) > 1:
                raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(paths.os, "replace", full_after_one)  # utils.paths.write_atomic
    argv = tiny_args(tmp_path, "--checkpoint_every_steps", "1", "--max_steps", "4")
    with caplog.at_level(logging.ERROR):
        assert run_cli(monkeypatch, argv) == 1
    monkeypatch.undo()
    path = tmp_path / "ckpt" / "airnet_last_train.pth"
    assert errors(caplog) == [
        f"{path}: cannot write (No space left on device); stopping (the checkpoints written "
        "before stay as they were)"
    ]
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


# ---------------------------------------------------------------------------------------------
# test.py, demo.py, restore_onnx.py, export.py
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(folder / name)
    return folder


def test_evaluation_refuses_an_unwritable_output_before_the_model_loads(
    tmp_path, photos, tiny_ckpt, monkeypatch, caplog
):
    evaluation = load("test.py")
    monkeypatch.setattr(evaluation, "load_airnet", never)
    bad = through_a_file(tmp_path)
    argv = ["--mode", "0", "--denoise_path", str(photos), "--ckpt", str(tiny_ckpt)]
    args = evaluation.parse_args([*argv, "--output_path", str(bad), "--device", "cpu"])
    with caplog.at_level(logging.ERROR):
        assert evaluation.main(args) == 2
    assert errors(caplog) == [
        f"--output_path {bad}: cannot write there ({bad.parent} is a file, not a folder)"
    ]


def test_demo_refuses_an_unwritable_output_before_the_model_loads(
    tmp_path, photos, tiny_ckpt, monkeypatch, caplog
):
    demo = load("demo.py")
    monkeypatch.setattr(demo, "load_airnet", never)
    bad = through_a_file(tmp_path)
    args = demo.parse_args(
        ["--test_path", str(photos), "--ckpt", str(tiny_ckpt), "--output_path", str(bad)]
    )
    with caplog.at_level(logging.ERROR):
        assert demo.main(args) == 2
    assert (
        len(errors(caplog)) == 1 and f"--output_path {bad}: cannot write there" in errors(caplog)[0]
    )


def test_restore_onnx_refuses_an_unwritable_output_and_names_a_file_that_fails(
    tmp_path, photos, monkeypatch, caplog
):
    restore_onnx = load("restore_onnx.py")
    monkeypatch.setattr(restore_onnx, "load_session", lambda *a: IdentitySession())
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    bad = through_a_file(tmp_path)
    argv = ["--input", str(photos), "--model", str(model)]
    with caplog.at_level(logging.ERROR):
        assert restore_onnx.main(restore_onnx.parse_args([*argv, "--output", str(bad)])) == 2
    assert errors(caplog) == [
        f"--output {bad}: cannot write there ({bad.parent} is a file, not a folder)"
    ]
    caplog.clear()
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)  # one result cannot be written: a folder has its name
    with caplog.at_level(logging.ERROR):
        assert restore_onnx.main(restore_onnx.parse_args([*argv, "--output", str(out)])) == 1
    assert (out / "b.png").is_file()
    assert f"skipped {photos / 'a.png'}: {out / 'a.png'}: cannot write (" in errors(caplog)[0]


@pytest.mark.parametrize("where", ["through a file", "a folder"])
def test_export_refuses_an_unwritable_output_before_exporting(tmp_path, where, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    export = load("export.py")
    monkeypatch.setattr(export, "build_model", never)
    output = through_a_file(tmp_path) / "m.onnx" if where == "through a file" else tmp_path
    args = export.build_parser().parse_args(["--output", str(output)])
    with caplog.at_level(logging.ERROR):
        assert export.main(args) == 2
    assert (
        len(errors(caplog)) == 1 and f"--output {output}: cannot write there" in errors(caplog)[0]
    )


# ---------------------------------------------------------------------------------------------
# app.py and the scripts
# ---------------------------------------------------------------------------------------------


def test_app_names_a_result_it_cannot_write(tmp_path, photos, tiny_ckpt):
    pytest.importorskip("gradio")
    app = load("app.py")
    out = tmp_path / "out"
    (out / "a_restored.png").mkdir(parents=True)
    files = [str(photos / "a.png"), str(photos / "b.png")]
    _, outputs, messages = app.restore_files(files, str(tiny_ckpt), None, "cpu", 0, out)
    assert [p.name for p in outputs] == ["b_restored.png"]
    assert any(m.startswith(f"a.png: {out / 'a_restored.png'}: cannot write") for m in messages)


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("make_split.py", ["--clean_dir", "{photos}", "--output", "{bad}"]),
        ("make_deblur_testset.py", ["--clean_dir", "{photos}", "--output", "{bad}"]),
        ("average_weights.py", ["average", "{ckpt}", "{ckpt}", "--output", "{bad}/avg.pth"]),
    ],
)
def test_scripts_refuse_an_unwritable_output_in_one_line(
    tmp_path, photos, tiny_ckpt, script, argv, monkeypatch, capsys
):
    bad = through_a_file(tmp_path)
    argv = [a.format(photos=photos, bad=bad, ckpt=tiny_ckpt) for a in argv]
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    with pytest.raises(SystemExit) as stop:
        sys.exit(load(script).main(argv))
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--output {bad}" in lines[0] and "cannot write there" in lines[0]
