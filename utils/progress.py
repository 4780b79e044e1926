"""Progress on a terminal as bars, in a file as plain lines.

A tqdm bar redraws itself with carriage returns; written to a file (``train.py ... > run.log
2>&1``) every redraw stays, about 300 bytes a step, and the file cannot be read. So bars are
drawn only when stderr is a terminal; otherwise the entry points log one plain line every
``--log_every`` steps (train.py) or one per test set (test.py).
"""

from __future__ import annotations

import sys
from typing import TextIO


def bars_wanted(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default: ``sys.stderr``, where tqdm draws) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def format_values(values: dict[str, float]) -> str:
    """``name=value`` pairs for a log line, four significant decimals (``loss=0.0412``)."""
    return " ".join(f"{name}={value:.4g}" for name, value in values.items())
