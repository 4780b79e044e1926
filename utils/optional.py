"""Optional packages: a missing one ends a program with one line naming the requirements file
that brings it (decision 10: exit code 2, no traceback).

    try:
        import onnxruntime as ort
    except ImportError as error:
        exit_missing_package(error, "requirements-onnx.txt")

Standard library only, so that the entry points that run without PyTorch (restore_onnx.py)
can use it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import NoReturn

EXIT_SETUP = 2


def missing_package_message(error: ImportError, requirements: str) -> str:
    """ "onnx is not installed: pip install -r requirements-onnx.txt" for ``error``."""
    if error.name:
        return f"{error.name.split('.')[0]} is not installed: pip install -r {requirements}"
    first_line = (str(error).splitlines() or [type(error).__name__])[0]
    return f"an optional package failed to import ({first_line}): pip install -r {requirements}"


def exit_missing_package(error: ImportError, requirements: str) -> NoReturn:
    """Print the one-line message to stderr and exit with code 2."""
    print(missing_package_message(error, requirements), file=sys.stderr)
    raise SystemExit(EXIT_SETUP)


def require(module: str, requirements: str) -> ModuleType:
    """``importlib.import_module(module)``, or exit_missing_package when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        exit_missing_package(error, requirements)
