"""What every entry point's command line shares: one-line usage errors and numeric ranges.

Decision 10: a setup error is one line naming the flag, exit 2. argparse prints its whole usage
block before the error (26 lines for train.py); ``ArgumentParser`` prints the error alone, with
a pointer to ``--help``. Every numeric flag of every entry point and script takes a ``Range``
as its type, so a value outside the flag's stated range (NaN and infinity included) is refused
while the command line is parsed, before any work. ``train.py --config`` hands every value of
the file to the same types (``utils.config``), so a file and a command line are checked alike.

    parser = ArgumentParser(description="...")
    parser.add_argument("--lr", type=Range(float, above=0, maximum=1), default=1e-3)
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line (decision 10): ``PROG: error:
    MESSAGE (PROG --help lists the flags)``, exit 2; ``--help`` states each ``Range``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the flags)\n")

    def _get_formatter(self) -> argparse.HelpFormatter:
        formatter = super()._get_formatter()
        help_string = formatter._get_help_string

        def with_range(action: argparse.Action) -> str | None:
            text = help_string(action)
            if isinstance(action.type, Range) and text is not None:
                text += f" [{action.type.describe()}]"
            return text

        formatter._get_help_string = with_range
        return formatter


class Range:
    """An argparse type: a finite number of ``kind`` (int or float) within the given bounds.

    Bounds left as None do not apply; ``minimum``/``maximum`` include the bound, ``above`` and
    ``below`` exclude it. ``zero`` also accepts 0 outside the bounds, for flags where 0 means
    "off" or "whole" (``--val_crop 0``: no crop). A refusal names the range and the value,
    e.g. ``--lr: expected a number > 0 and <= 1, got nan``; argparse adds the flag.
    """

    def __init__(
        self,
        kind: type[int] | type[float],
        minimum: float | None = None,
        maximum: float | None = None,
        *,
        above: float | None = None,
        below: float | None = None,
        zero: bool = False,
    ) -> None:
        self.kind = kind
        self.minimum, self.maximum, self.above, self.below = minimum, maximum, above, below
        self.zero = zero
        # argparse names the type in some messages ("invalid Range value"): name the kind.
        self.__name__ = kind.__name__

    def describe(self) -> str:
        """The range in words: ``an integer from 16 to 512``, ``a number > 0 and <= 1``."""
        noun = "an integer" if self.kind is int else "a number"
        if self.minimum is not None and self.maximum is not None:
            text = f"{noun} from {_number(self.minimum)} to {_number(self.maximum)}"
        else:
            bounds = [
                f"{sign} {_number(value)}"
                for sign, value in (
                    (">=", self.minimum),
                    (">", self.above),
                    ("<=", self.maximum),
                    ("<", self.below),
                )
                if value is not None
            ]
            text = f"{noun} {' and '.join(bounds)}" if bounds else f"a finite {noun[3:]}"
        return f"0 or {text}" if self.zero else text

    def __call__(self, text: str | float) -> int | float:
        """Parse ``text`` (a string from the command line, or a stored number) and check it.

        Raises:
            argparse.ArgumentTypeError: not a number of the kind, not finite, or out of range.
        """
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.contains(value):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text}")
        return value

    def contains(self, value: float) -> bool:
        """True when ``value`` is finite and within the range (or 0 where 0 is allowed)."""
        if not math.isfinite(value):
            return False
        if self.zero and value == 0:
            return True
        return not (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
            or (self.below is not None and value >= self.below)
        )

    def __repr__(self) -> str:
        return f"Range({self.describe()})"


def _number(value: float) -> str:
    """A bound as written: 4294967295, 0.5, 1e-08."""
    return str(value) if isinstance(value, int) else f"{value:g}"


# Ranges that several entry points share.
SEED = Range(int, 0, 2**32 - 1)  # numpy's global seed takes 32 bits
N_FEATS = Range(int, 1, 256)  # the paper's 64
N_GROUPS = Range(int, 1, 32)  # the paper's 5
N_BLOCKS = Range(int, 1, 32)  # the paper's 5
# A training patch: from the smallest usable image side (decision 7) to the side at which one
# batch of the paper's five patches still fits in memory: 135 KB per pixel measured for a
# training step at the paper's size (CPU, fp32), so 5 x 256^2 pixels take about 44 GB.
PATCH_SIZE = Range(int, 16, 256)
SIGMA = Range(int, 0, 255)  # Gaussian noise in grey levels
