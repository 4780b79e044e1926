"""File names as the file system has them: measured, walked and written safely.

- ``name_bytes`` is a name as the file system stores it (its length in bytes is what
  ``NAME_MAX`` limits);
- ``walk_folders`` lists the folders under a folder, following linked folders, each real
  folder once, so a link cycle ends;
- ``write_atomic`` writes a file whole or not at all, under a temporary name short enough for
  any legal final name.

No torch and no PIL here: ``restore_onnx.py`` uses it too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

NAME_MAX = 255  # bytes in one file name: the limit of Linux's, macOS's and Windows' file systems
# The temporary file of an atomic write: ".airnet-" + 8 random characters + ".tmp" (20 bytes),
# whatever the final name. It used to be ".<final name>.<8>.tmp", 14 bytes longer than the
# final name, so a final name within 14 bytes of the file system's limit (255) failed with
# "File name too long" although it was legal.
TEMP_PREFIX, TEMP_SUFFIX = ".airnet-", ".tmp"


def name_bytes(name: str | os.PathLike) -> bytes:
    """The bytes of a name as the file system stores them (NAME_MAX counts these): a UTF-8
    name gives its UTF-8 bytes, any other its raw bytes."""
    return os.fsencode(name)


def walk_folders(folder: str | Path) -> Iterator[Path]:
    """``folder`` and every folder under it, each subfolder's contents in name order, linked
    folders followed (a data folder may be a tree of links, as ``scripts/make_split.py``
    writes). Each real folder is visited once: a link cycle (a link to a folder above it)
    ends, and two links to one folder give its files once. Unreadable folders are passed over.
    """
    seen: set[str] = set()
    for root, folders, _ in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders.sort()
        yield Path(root)


def write_atomic(
    path: str | Path, write: Callable[[IO[bytes]], None], durable: bool = False
) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it over ``path``: a
    reader sees the old file or the whole new one, never a truncated one, and an interrupted
    run leaves no partial file under the final name. Parent folders are created.

    The temporary name is ``.airnet-XXXXXXXX.tmp`` whatever the final name, so every final
    name the file system allows can be written. ``durable``: flushed to disk before the rename
    (checkpoints). The file gets the usual rw-r--r-- (mkstemp makes it private).

    Raises:
        OSError: the folder cannot be written, the disk is full, the name is not legal.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """``text`` as UTF-8 to ``path`` by ``write_atomic``."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
