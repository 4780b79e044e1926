"""Ctrl-C ends every entry point with one line and exit code 130, as training's clean stop
does, never with a traceback, and leaves no output that looks complete (issue 33 item 9)."""

from __future__ import annotations

import logging
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils import restore
from utils.stop import EXIT_INTERRUPTED, run_interruptible

ROOT = Path(__file__).resolve().parents[1]


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def run_as_command(script: str, argv: list[str]) -> int:
    """Run ``script`` as ``python script argv`` would, in this process; its exit code."""
    sys.argv = [script, *argv]
    try:
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(str(ROOT / script), run_name="__main__")
    except KeyboardInterrupt:
        pytest.fail(f"{script}: Ctrl-C ended it with a traceback")
    return stop.value.code


def test_run_interruptible_turns_ctrl_c_into_one_line_and_130(caplog):
    with caplog.at_level(logging.ERROR):
        assert run_interruptible(ctrl_c, lambda: "2 of 3 written") == EXIT_INTERRUPTED == 130
    assert caplog.messages == ["interrupted (Ctrl-C): 2 of 3 written"]
    assert run_interruptible(lambda: 0) == 0


def test_demo_and_test_py_stop_on_ctrl_c_without_a_traceback(
    tmp_path, tiny_ckpt, monkeypatch, caplog
):
    """Ctrl-C in demo.py and test.py printed a traceback."""
    monkeypatch.setattr(sys, "argv", sys.argv)  # restored after run_as_command
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photos / "a.png")
    monkeypatch.setattr(restore, "restore", ctrl_c)  # demo.py's restore, imported on run
    monkeypatch.setattr(restore, "restore_tensor", ctrl_c)  # test.py's
    common = ["--ckpt", str(tiny_ckpt), "--device", "cpu"]
    with caplog.at_level(logging.INFO):
        demo_code = run_as_command(
            "demo.py", ["--test_path", str(photos), "--output_path", str(tmp_path / "d"), *common]
        )
        out = tmp_path / "t"
        test_code = run_as_command(
            "test.py",
            ["--mode", "0", "--sigmas", "15", "--denoise_path", str(photos),
             "--output_path", str(out), *common],
        )  # fmt: skip
    assert demo_code == test_code == EXIT_INTERRUPTED
    interrupted = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert interrupted[0] == "interrupted (Ctrl-C)"
    assert interrupted[1].startswith("interrupted (Ctrl-C): no results.csv nor summary.json")
    assert str(out / "results.csv.partial") in interrupted[1]
    assert not (out / "results.csv").exists() and not (out / "summary.json").exists()
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_train_and_app_stop_on_ctrl_c_with_130(monkeypatch, caplog):
    """train.py before its training loop (setup, --check_data) and app.py, whose server
    gradio stops on Ctrl-C, end with 130 too."""
    import app
    import train

    monkeypatch.setattr(train, "check_data", ctrl_c)
    monkeypatch.setattr(sys, "argv", ["train.py", "--check_data"])
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        train.cli()
    assert stop.value.code == EXIT_INTERRUPTED and "interrupted (Ctrl-C)" in caplog.messages

    class Page:
        def launch(self, **kwargs):  # gradio returns from launch() after a Ctrl-C
            return None

    monkeypatch.setattr(app, "build_app", lambda choices: Page())
    assert app.main(app.build_parser().parse_args([])) == EXIT_INTERRUPTED
