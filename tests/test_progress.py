"""utils/progress.py: bars on a terminal, plain lines in a file."""

from __future__ import annotations

import io

from utils.progress import bars_wanted, format_values


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal(tmp_path):
    assert bars_wanted(Terminal())
    assert not bars_wanted(io.StringIO())
    with open(tmp_path / "run.log", "w") as log_file:
        assert not bars_wanted(log_file)
    assert not bars_wanted(log_file)  # closed: isatty raises ValueError


def test_values_are_short_and_named():
    assert format_values({"loss": 0.041234, "psnr": 31.2345}) == "loss=0.04123 psnr=31.23"
