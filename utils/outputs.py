"""Where results go: checked writable before any work, and a write that fails later named in
one line.

- ``check_writable_folder`` / ``check_writable_file``: a real test write (a probe file created,
  written and removed). Permission bits do not stop root, while a read-only mount or a path
  through a file stops everyone, so only a write tells.
- ``writing``: an OSError while writing a file becomes ``OutputError`` naming that file.

Every failure is an ``OutputError`` (an OSError) whose one-line message names the flag or file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputError(OSError):
    """An output that cannot be written; one line."""


def _reason(error: OSError, folder: Path) -> str:
    """Why ``folder`` cannot be written, in words: the file in the way, or the system's
    reason (read-only file system, permission denied, no space left)."""
    for part in (*reversed(folder.parents), folder):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return error.strerror or str(error)


def _write_probe(folder: Path) -> str | None:
    """Create ``folder`` (with its parents) if needed and write, close and remove a probe
    file in it; None when that worked, else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".airnet-write-test-")
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        return _reason(error, folder)
    return None


def check_writable_folder(path: str | Path, flag: str) -> None:
    """Check, by a real write, that the folder ``path`` (created if needed) can be written.

    Raises:
        OutputError: ``FLAG PATH: cannot write there (REASON)``: a read-only mount, a path
            through a file, a file where the folder should be, no permission, a full disk.
    """
    reason = _write_probe(Path(path))
    if reason:
        raise OutputError(f"{flag} {path}: cannot write there ({reason})")


def check_writable_file(path: str | Path, flag: str) -> None:
    """Check that the file ``path`` can be written: not a folder, and a probe file can be
    written beside it (its folder created if needed).

    Raises:
        OutputError: one line naming ``flag`` and ``path``, as ``check_writable_folder``.
    """
    path = Path(path)
    reason = "it is a folder" if path.is_dir() else _write_probe(path.parent)
    if reason:
        raise OutputError(f"{flag} {path}: cannot write there ({reason})")


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into ``OutputError``: ``PATH: cannot
    write (REASON)``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
