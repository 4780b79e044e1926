"""File names as the file system has them: shown, hashed, walked and written safely.

Linux allows any bytes but ``/`` and NUL in a name. Python reads a name that is not UTF-8 (the
Latin-1 ``caf\\xe9.png``) into a ``str`` holding "surrogate escapes" (``'caf\\udce9.png'``),
which opens the file again but cannot be encoded as UTF-8: printed, written to a CSV or JSON
file or hashed as UTF-8, it raised ``UnicodeEncodeError``. Here:

- ``shown`` is how every log line, table, CSV and JSON file shows a name: UTF-8 as it is, each
  byte that is not UTF-8 as ``\\xNN`` (``caf\\xe9.png``); output files keep the original
  bytes, since they are named from the ``str`` itself, never from ``shown``;
- ``show_names_in_output`` makes stdout and stderr (every print, log line and progress bar)
  show names so; each entry point calls it first;
- ``shown_all`` does so for every string of a record before it is written to CSV or JSON;
- ``name_bytes`` is what a name is hashed as: its bytes on disk (UTF-8 names as before);
- ``walk_folders`` lists the folders under a folder, following linked folders, each real
  folder once, so a link cycle ends;
- ``write_atomic`` writes a file whole or not at all, under a temporary name short enough for
  any legal final name.

No torch and no PIL here: ``restore_onnx.py`` uses it too.
"""

from __future__ import annotations

import codecs
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

NAME_MAX = 255  # bytes in one file name: the limit of Linux's, macOS's and Windows' file systems
# The temporary file of an atomic write: ".airnet-" + 8 random characters + ".tmp" (20 bytes),
# whatever the final name. It used to be ".<final name>.<8>.tmp", 14 bytes longer than the
# final name, so a final name within 14 bytes of the file system's limit (255) failed with
# "File name too long" although it was legal.
TEMP_PREFIX, TEMP_SUFFIX = ".airnet-", ".tmp"
SHOWN = "airnet-shown"  # the codec error handler below, by name (open(..., errors=SHOWN))


def _show_unencodable(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a surrogate escape (a byte of a name that is not UTF-8, U+DC80 to
    U+DCFF) becomes ``\\xNN`` of that byte; anything else unencodable its backslash escape."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    return (
        "".join(
            f"\\x{ord(char) - 0xDC00:02x}"
            if 0xDC80 <= ord(char) <= 0xDCFF
            else char.encode("ascii", "backslashreplace").decode("ascii")
            for char in text
        ),
        error.end,
    )


codecs.register_error(SHOWN, _show_unencodable)


def shown(text: str | os.PathLike) -> str:
    """``text`` (a name, a path or a whole message) as logs, tables, CSV and JSON show it.

    Valid text is returned unchanged; each byte of a name that is not UTF-8 (held in a ``str``
    as a surrogate escape, as Python reads such names) becomes ``\\xNN``: the Latin-1 name
    ``caf\\xe9.png`` is shown as the 11 characters ``caf\\xe9.png``. The result always
    encodes as UTF-8. It is for showing only: open and name files with the path itself.
    """
    raw = os.fspath(text)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return raw.encode("utf-8", SHOWN).decode("utf-8")


def show_names_in_output() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` write what they cannot encode as ``shown`` does,
    so that a print, a log line or a progress bar naming ``caf\\xe9.png`` shows those 11
    characters instead of raising ``UnicodeEncodeError`` or writing raw bytes. Streams that
    cannot be reconfigured (replaced by a test runner) are left as they are."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=SHOWN)


def shown_all(value: Any) -> Any:
    """``value`` with every string in it, at any depth of dicts (keys too), lists and tuples,
    passed through ``shown``: a record made ready for a CSV or JSON file, whose text must be
    valid UTF-8. Other values are returned as they are."""
    if isinstance(value, str | os.PathLike):
        return shown(value)
    if isinstance(value, dict):
        return {shown_all(key): shown_all(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [shown_all(item) for item in value]
    return value


def name_bytes(name: str | os.PathLike) -> bytes:
    """The bytes of a name as the file system stores them, for hashing: a UTF-8 name gives
    its UTF-8 bytes (so seeds made from such names do not change), any other its raw bytes."""
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
