"""Test content in training and validation data: found, named, and left out on request.

``train.py`` at the start of every run and ``train.py --check_data`` compare every image that
training and validation read (degraded and clean side; photos that noise or a synthetic type
degrades on the fly are their clean side) with every benchmark fingerprint of
``data/benchmarks/`` (utils/fingerprints.py: equal decoded pixels, or the same photo resized,
re-encoded, flipped or turned). The overlaps are always printed, one line per data folder and
benchmark, and listed file by file in ``LOG_DIR/test_content.tsv``; ``--drop_test_content``
leaves them out of the run (off by default: the paper's recipe stays the paper's; decision 13
makes it the rule for shipped files).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from utils.fingerprints import Benchmark, HashCache, Match, find_test_content
from utils.outputs import writing
from utils.train_dataset import TypeScan

LIST_NAME = "test_content.tsv"  # in the run's --log_dir
LIST_HEADER = ("part", "data", "file", "benchmark", "image", "distance_bits", "equal_pixels")


@dataclass(frozen=True)
class DataFolder:
    """The files one data folder gives a run: ``part`` ("training" or "validation"), ``data``
    (the key of its flag: "denoise" for --denoise_dir and --val_denoise_dir) and the folder."""

    part: str
    data: str
    folder: Path | None
    files: tuple[Path, ...]


@dataclass
class Overlaps:
    """What the comparison found: the folders compared, each file that is a benchmark image
    with its matches (nearest first), the benchmarks, and the cost: ``seconds`` in all, files
    ``hashed`` now and ``reused`` from the cache."""

    folders: list[DataFolder]
    matches: dict[Path, list[Match]]
    benchmarks: list[Benchmark]
    seconds: float = 0.0
    hashed: int = 0
    reused: int = 0
    cache: Path | None = None

    def excluded(self) -> dict[Path, str]:
        """File -> why it is left out (its nearest benchmark image), for ``leave_out``."""
        return {
            path: f"test content: {match.benchmark} {match.image} ("
            + ("equal pixels" if match.exact else f"pHash {match.distance} bits")
            + ")"
            for path, (match, *_) in self.matches.items()
        }


def data_folders_of(parts: Sequence[tuple[str, Sequence[TypeScan]]]) -> list[DataFolder]:
    """The data folders of scans (``train.py --check_data``'s parts), each once: the types
    that read one folder (the noise types, clean, synthetic types) share it. Files are the
    usable items' degraded and clean sides, in order."""
    files: dict[tuple[str, str, Path | None], dict[Path, None]] = {}
    for part, scans in parts:
        for scan in scans:
            data = scan.flag.removeprefix("--").removeprefix("val_").removesuffix("_dir")
            key = (part, data, scan.folder)
            found = files.setdefault(key, {})
            for degraded, clean in scan.items:
                found.update(dict.fromkeys(p for p in (degraded, clean) if p is not None))
    return [DataFolder(*key, tuple(found)) for key, found in files.items() if found]


def find_overlaps(
    parts: Sequence[tuple[str, Sequence[TypeScan]]],
    benchmarks: list[Benchmark],
    cache: HashCache,
) -> Overlaps:
    """Compare every file of ``parts`` with ``benchmarks``, hashes through ``cache`` (saved
    here); unreadable files are left to the scans that skip them."""
    start = time.perf_counter()
    hashed, reused = cache.hashed, cache.reused
    folders = data_folders_of(parts)
    files = [path for folder in folders for path in folder.files]
    matches = find_test_content(files, benchmarks, cache)
    cache.save()
    return Overlaps(
        folders,
        matches,
        benchmarks,
        time.perf_counter() - start,
        cache.hashed - hashed,
        cache.reused - reused,
        cache.path,
    )


def write_overlap_list(overlaps: Overlaps, path: Path) -> None:
    """``path``: one tab-separated line per (data folder, file, benchmark image) (LIST_HEADER);
    a list of an earlier run is removed when nothing matches now.

    Raises:
        utils.outputs.OutputError: the list cannot be written (one line naming it)."""
    if not overlaps.matches:
        with writing(path):
            path.unlink(missing_ok=True)
        return
    lines = ["\t".join(LIST_HEADER)]
    for folder in overlaps.folders:
        for file in folder.files:
            for match in overlaps.matches.get(file, ()):
                row = (folder.part, folder.data, file, match.benchmark, match.image)
                row += (match.distance, "yes" if match.exact else "no")
                lines.append("\t".join(map(str, row)))
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def _side_counts(images: set[str]) -> str:
    """``75 target/, 71 input/``: the matched benchmark images by their first folder."""
    sides = Counter(name.split("/")[0] + "/" if "/" in name else "" for name in images)
    return ", ".join(f"{count} {side}".rstrip() for side, count in sides.most_common())


def format_overlaps(overlaps: Overlaps, list_path: Path, left_out: bool) -> list[str]:
    """The lines train.py and --check_data print: per data folder and benchmark, ``67 of 432
    training denoise images (FOLDER) are Rain100L test images: 75 target/, 70 input/ (67 with
    equal pixels)``; where they are listed (``list_path``) and whether they are left out of
    the run (``left_out``); the cost."""
    names = ", ".join(benchmark.name for benchmark in overlaps.benchmarks) or "none found"
    checked = sum(len(folder.files) for folder in overlaps.folders)
    lines = []
    for folder in overlaps.folders:
        for benchmark in overlaps.benchmarks:
            found = {
                file: [m for m in overlaps.matches.get(file, ()) if m.benchmark == benchmark.name]
                for file in folder.files
            }
            found = {file: matches for file, matches in found.items() if matches}
            if not found:
                continue
            exact = sum(any(m.exact for m in matches) for matches in found.values())
            images = {m.image for matches in found.values() for m in matches}
            lines.append(
                f"test content: {len(found)} of {len(folder.files)} {folder.part} "
                f"{folder.data} images ({folder.folder}) are {benchmark.name} images: "
                f"{_side_counts(images)} ({exact} with equal pixels)"
            )
    if lines:
        action = (
            "left out of this run (--drop_test_content)"
            if left_out
            else "kept (--drop_test_content leaves them out)"
        )
        lines.append(f"test content: {len(overlaps.matches)} files, {action}; list: {list_path}")
    else:
        lines.append(f"test content: none of {checked} images is an image of {names}")
    count = len(overlaps.benchmarks)
    lines.append(
        f"test content checked: {checked} images against {count} benchmark "
        f"fingerprint{'s' * (count != 1)} in {overlaps.seconds:.1f} s ({overlaps.hashed} "
        f"hashed, {overlaps.reused} from the cache {overlaps.cache})"
    )
    return lines
