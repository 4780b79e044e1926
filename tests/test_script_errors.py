"""Decision 10 for the scripts and app.py: a setup error is one line naming the file or flag,
exit 2, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["scripts/average_weights.py", "average", "nope.pth", "--output", "x.pth"], "nope.pth"),
        (["scripts/baselines.py", "--dehaze_path", "no_such_folder"], "no_such_folder"),
        (
            [
                "scripts/card_figures.py",
                "strips",
                "--images",
                "i",
                "--sets",
                "no_such_set",
                "--output",
                "x.jpg",
            ],
            "no_such_set",
        ),
    ],  # fmt: skip
)
def test_scripts_refuse_missing_inputs_in_one_line(argv, names, tmp_path):
    if argv[0].endswith("card_figures.py"):
        pytest.importorskip("matplotlib")
    if argv[0].endswith("baselines.py"):
        pytest.importorskip("scipy")
    result = run(*argv)
    assert result.returncode == 2, result.stderr[-1000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0]


def test_app_with_its_port_taken_is_one_line_exit_2():
    pytest.importorskip("gradio")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("app.py", "--port", str(port))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"--port {port}" in result.stderr.strip().splitlines()[-1]
