"""Where results go: checked writable before any work, held by one run at a time, and a write
that fails later named in one line.

- ``check_writable_folder`` / ``check_writable_file``: a real test write (a probe file created,
  written and removed in the folder, or in its nearest existing parent: nothing is created).
  Permission bits do not stop root, while a read-only mount or a path through a file stops
  everyone, so only a write tells.
- ``FolderLock``: ``flock`` on a lock file in each output folder, so that a second run into a
  folder in use is refused. The operating system releases the lock when the process ends,
  however it ends (a crash, SIGKILL), so ``--resume`` after a crash and a new run into a
  finished folder both work.
- ``writing``: an OSError while writing a file becomes ``OutputError`` naming that file.

Every failure is an ``OutputError`` (an OSError) whose one-line message names the flag or file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".airnet.lock"


class OutputError(OSError):
    """An output that cannot be written, or a folder held by another run; one line."""


class FolderInUseError(OutputError):
    """An output folder that another live run holds."""


def _write_probe(folder: Path) -> str | None:
    """Write, close and remove a probe file in ``folder``, or, while it does not exist, in its
    nearest existing parent (where it would be created); None when that worked, else why not:
    the file in the way, or the system's reason (read-only file system, permission denied, no
    space left)."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".airnet-write-test-")
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        return error.strerror or str(error)
    return None


def check_writable_folder(path: str | Path, flag: str) -> None:
    """Check, by a real write, that the folder ``path`` can be written, or created and then
    written; nothing is left behind.

    Raises:
        OutputError: ``FLAG PATH: cannot write there (REASON)``: a read-only mount, a path
            through a file, a file where the folder should be, no permission, a full disk.
    """
    reason = _write_probe(Path(path))
    if reason:
        raise OutputError(f"{flag} {path}: cannot write there ({reason})")


def check_writable_file(path: str | Path, flag: str) -> None:
    """Check that the file ``path`` can be written: not a folder, and a probe file can be
    written beside it (``check_writable_folder``).

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


class FolderLock:
    """Output folders held by this run: ``acquire`` each one, ``release`` all at the end (or
    use it as a context manager). A folder is held through an exclusive ``flock`` on its
    ``.airnet.lock``, which holds the holder's process id; the lock file is removed on release.
    POSIX only (``fcntl``), as the training and evaluation scripts are.
    """

    def __init__(self) -> None:
        self._held: dict[Path, tuple[Path, int]] = {}

    def acquire(self, folder: str | Path, flag: str) -> None:
        """Hold ``folder`` (created if needed) for this process; a folder already held by
        this lock is skipped, so two flags may name one folder.

        Raises:
            FolderInUseError: another live process holds it: one line naming the flag, the
                folder and, when it is known, the holder's process id.
            OutputError: the lock file cannot be created.
        """
        import fcntl  # here, not at the top: restore_onnx.py only checks writability (Windows)

        folder = Path(folder)
        key = folder.resolve()
        if key in self._held:
            return
        lock_path = folder / LOCK_NAME
        while True:
            with writing(lock_path):
                folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                pid = f" (pid {holder})" if holder else ""
                raise FolderInUseError(
                    f"{flag} {folder}: in use by another run{pid}; wait for it to end or "
                    "choose another folder"
                ) from None
            # The holder removes the file as it releases it: a file opened just before that is
            # no longer the folder's lock file, so open the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._held[key] = (lock_path, fd)

    def release(self) -> None:
        """Let every held folder go (removing its lock file first, then unlocking)."""
        while self._held:
            _, (lock_path, fd) = self._held.popitem()
            lock_path.unlink(missing_ok=True)
            os.close(fd)

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The process id written in a lock file, or None while its holder has not written it."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
