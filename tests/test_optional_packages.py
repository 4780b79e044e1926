"""A missing optional package is one line naming its requirements file, exit code 2
(decision 10), in every entry point that needs one. The package is hidden by putting None in
sys.modules, which makes its import fail as if it were not installed."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from utils.optional import missing_package_message

REPO = Path(__file__).resolve().parents[1]

# (script, package hidden, its requirements file, arguments that reach the import)
CASES = [
    ("export.py", "onnx", "requirements-onnx.txt", []),
    ("export.py", "onnxruntime", "requirements-onnx.txt", []),
    ("export.py", "onnxscript", "requirements-onnx.txt", []),
    ("restore_onnx.py", "onnxruntime", "requirements-onnx.txt", []),
    ("app.py", "gradio", "requirements-app.txt", []),
    ("scripts/baselines.py", "bm3d", "requirements-tools.txt", ["--denoise_path", "x"]),
    ("scripts/card_figures.py", "matplotlib", "requirements-tools.txt",
     ["curve", "--log", "log.jsonl", "--output", "curve.png"]),
]  # fmt: skip


@pytest.mark.parametrize(("script", "package", "requirements", "argv"), CASES)
def test_a_missing_package_is_one_line(script, package, requirements, argv, monkeypatch, capsys):
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / script), run_name="__main__")
    assert exit_info.value.code == 2
    printed = capsys.readouterr()
    assert printed.err == f"{package} is not installed: pip install -r {requirements}\n"
    assert (REPO / requirements).is_file()


def test_the_message_of_a_broken_install():
    error = ImportError("libfoo.so: cannot open shared object file")
    assert missing_package_message(error, "requirements-app.txt") == (
        "an optional package failed to import (libfoo.so: cannot open shared object file): "
        "pip install -r requirements-app.txt"
    )
