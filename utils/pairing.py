"""Pairing degraded images with their clean partners: one rule for every entry point.

Training (``train.py``), validation, testing (``test.py``) and ``--check_data`` all pair files
here (decision 8), so a folder that one of them accepts, all of them accept.

Folder layouts (``FOLDER_PAIRS``): a folder holds a degraded and a clean subfolder side by
side (names in any case: ``GT/``, ``Input/``); the first pair found, in this order, is used:

- derain:   ``rainy/`` + ``gt/``; ``rain/`` + ``norain/`` (JORDER's and RGR's Rain100L);
            ``input/`` + ``target/``
- dehaze:   ``hazy/`` or ``synthetic/`` + ``original/``, ``clear/`` or ``gt/``;
            ``input/`` + ``target/``
- deblur:   ``blur/`` + ``sharp/``; ``input/`` + ``target/``; GoPro sequences; a GoPro root
- lowlight: ``low/`` + ``high/`` (LOL) or ``normal/`` (LOL-v2's ``Low/`` + ``Normal/``);
            ``input/`` + ``target/``; a LOL root

- Rain100L as PReNet distributes it (``NAMED_PAIRS``): ``rain-N`` beside ``norain-N`` in one
  folder (``RainTrainL``), or ``rainy/rain-N`` with ``norain-N`` beside ``rainy/`` (the test
  set); other files of the folder (``rainstreak-N``, ``rainregion-N``) are not inputs.
- GoPro sequences: a folder whose subfolders ``<sequence>/`` each hold ``blur/`` beside
  ``sharp/`` with equal names (GoPro's ``GOPRO_Large/train`` or ``test``; ``blur_gamma/`` and
  other subfolders are ignored). Names keep their sequence (``GOPR0384_11_00/000001.png``), so
  the outputs of two sequences never collide.
- Roots (``ROOT_SUBSETS``): a LOL root holding ``our485/`` (split "train") and ``eval15/``
  (split "test"); a GoPro root (``GOPRO_Large``) holding ``train/`` and ``test/``. A root is
  not accepted for split "val": validation names its held-out folder, so it can be neither
  the training part nor the test set.

Degraded files are found recursively in the degraded subfolder (RESIDE's ``synthetic/partK/``);
the partner is looked for in the clean subfolder's matching relative folder, then at its top.

Name rules (``partner_stems``), tried in order:
- dehaze: the same stem; then RESIDE's namings, where they match (numeric parts only):
  ``<id>_<A>_<beta>`` (SOTS and OTS outdoor, ``0001_0.8_0.2.jpg`` -> ``0001.png``; ITS's
  ``<id>_<k>_<beta>``, ``1_1_0.90179.png`` -> ``1.png``) and ``<id>_<k>`` (SOTS indoor,
  ``1400_1.png`` ... ``1400_10.png`` -> ``1400.png``), in that order;
- derain: the same stem; then ``norain-N`` for ``rain-N`` (the official Rain100L naming);
- lowlight: the same stem; then ``normalN`` for ``lowN`` (LOL-v2's naming);
- deblur: the same stem.
The partner's extension may differ: the same file name wins, then PNG, then the first by name.

A missing partner is a problem of that file, not of the folder: scans return the pairs found
and a list of (path, reason), and the caller decides. A missing partner's reason names every
candidate tried. A folder with none of the layouts raises ``LayoutError`` naming what was
expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from utils.image_files import ImageReadError, image_size, images_under, list_images

MIN_SIDE = 16  # px; decision 7: an image with a side under this is too small to use
PAIRED_TYPES = ("derain", "dehaze", "deblur", "lowlight")
SPLITS = ("train", "val", "test")

# type -> ((degraded subfolder names, clean subfolder names), ...) in order of preference
FOLDER_PAIRS: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "derain": ((("rainy",), ("gt",)), (("rain",), ("norain",)), (("input",), ("target",))),
    "dehaze": ((("hazy", "synthetic"), ("original", "clear", "gt")), (("input",), ("target",))),
    "deblur": ((("blur",), ("sharp",)), (("input",), ("target",))),
    "lowlight": ((("low",), ("high", "normal")), (("input",), ("target",))),
}
# type -> (degraded stem prefix, clean stem prefix): pairs told apart by name, not by folder
NAMED_PAIRS = {"derain": ("rain-", "norain-")}
SEQUENCE_FOLDERS = {"deblur": ("blur", "sharp")}  # GoPro: <sequence>/blur + <sequence>/sharp
# type -> split -> the subfolder of a dataset root that holds that split
ROOT_SUBSETS: dict[str, dict[str, str]] = {
    "lowlight": {"train": "our485", "test": "eval15"},
    "deblur": {"train": "train", "test": "test"},
}

Problem = tuple[Path, str]  # (file, reason)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# RESIDE's hazy names, the longest first: <id>_<A>_<beta> (outdoor), <id>_<k>_<beta> (ITS), then
# <id>_<k> (SOTS indoor: ten hazy images per clear one).
_RESIDE_NAMES = (
    re.compile(rf"^(?P<id>.+?)_{_NUMBER}_{_NUMBER}$"),
    re.compile(rf"^(?P<id>.+?)_{_NUMBER}$"),
)


class LayoutError(ValueError):
    """A folder that holds none of the layouts of its type; the message says what was expected."""


@dataclass(frozen=True)
class Pair:
    """One degraded image and its clean partner.

    ``name`` is unique within a scan: the degraded file's path relative to its degraded
    subfolder (``x.png``, ``part1/0001_0.8_0.2.jpg``), prefixed by the sequence for GoPro
    (``GOPR0384_11_00/000001.png``). Use it for output names and result rows.
    """

    degraded: Path
    clean: Path
    name: str


@dataclass
class PairScan:
    """The pairs of one folder, the files that could not be paired, and the layout found."""

    folder: Path
    layout: str
    pairs: list[Pair] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Part:
    degraded: Path  # folder of degraded images (searched recursively)
    clean: Path  # folder of clean partners
    prefix: str  # prepended to pair names ("<sequence>/" for GoPro)
    # degraded files: when set, only those directly in ``degraded`` with this stem prefix
    only: str | None = None


@dataclass(frozen=True)
class _Layout:
    description: str
    parts: tuple[_Part, ...]


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


def too_small(height: int, width: int) -> bool:
    """True when an image is too small to use anywhere (decision 7): a side under MIN_SIDE px.

    Larger images smaller than a training patch are mirror-padded by the caller instead.
    """
    return min(height, width) < MIN_SIDE


def reside_ids(stem: str) -> list[str]:
    """The clear ``<id>`` a RESIDE hazy stem may pair with, most specific naming first; [] when
    no naming matches. Every part after ``<id>`` is a number:

    - ``<id>_<A>_<beta>`` (SOTS/OTS outdoor: atmosphere, scattering) and ``<id>_<k>_<beta>``
      (ITS: the k-th haze of clear image ``<id>``): ``0001_0.8_0.2`` -> ``0001``;
    - ``<id>_<k>`` (SOTS indoor): ``1400_10`` -> ``1400``.

    ``0001_0.8_0.2`` -> ["0001", "0001_0.8"]; ``my_photo_01`` -> ["my_photo"];
    ``img_2020_x1`` -> [] (``x1`` is not a number).
    """
    ids = (pattern.match(stem) for pattern in _RESIDE_NAMES)
    return list(dict.fromkeys(match.group("id") for match in ids if match))


def partner_stems(de_type: str, degraded: Path) -> list[str]:
    """The clean stems a degraded file may pair with, in the order they are tried."""
    stem = degraded.stem
    if de_type == "dehaze":
        stems = [stem, *reside_ids(stem)]  # an exact same-stem partner wins (decision 8)
    elif de_type == "derain":
        rain, norain = NAMED_PAIRS[de_type]
        stems = [stem, norain + stem.removeprefix(rain) if stem.startswith(rain) else None]
    elif de_type == "lowlight":
        stems = [stem, "normal" + stem[3:] if stem.lower().startswith("low") else None]
    elif de_type in PAIRED_TYPES:
        stems = [stem]
    else:
        raise ValueError(f"{de_type!r} has no degraded/clean pairs (types: {PAIRED_TYPES})")
    return list(dict.fromkeys(s for s in stems if s))


def describe_layouts(de_type: str, split: str = "train") -> str:
    """The layouts ``find_pairs`` accepts for a type and split, for messages and --help."""
    layouts = [
        f"{'|'.join(degraded)}/ + {'|'.join(clean)}/" for degraded, clean in FOLDER_PAIRS[de_type]
    ]
    if de_type in NAMED_PAIRS:
        rain, norain = NAMED_PAIRS[de_type]
        layouts.append(f"{rain}N + {norain}N in one folder, or beside rainy/{rain}N (PReNet)")
    if de_type in SEQUENCE_FOLDERS:
        blur, sharp = SEQUENCE_FOLDERS[de_type]
        layouts.append(f"<sequence>/{blur}/ + <sequence>/{sharp}/ (GoPro)")
    subset = ROOT_SUBSETS.get(de_type, {}).get(split)
    if subset is not None:
        layouts.append(f"a root holding {subset}/ with one of those")
    return ", ".join(layouts)


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------


def _first_dir(folder: Path, names: Iterable[str]) -> Path | None:
    """The first of ``names`` that is a subfolder of ``folder``, in any case (``GT/``,
    ``Input/``: datasets differ, and macOS and Windows would not tell them apart)."""
    subfolders: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:  # unreadable: no layout here, which the caller reports
        return None
    for path in entries:
        if path.is_dir():
            subfolders.setdefault(path.name.lower(), path)
    return next((subfolders[name] for name in names if name in subfolders), None)


def _direct_layout(de_type: str, folder: Path) -> _Layout | None:
    for degraded_names, clean_names in FOLDER_PAIRS[de_type]:
        degraded = _first_dir(folder, degraded_names)
        clean = _first_dir(folder, clean_names)
        if degraded is not None and clean is not None:
            return _Layout(f"{degraded.name}/ + {clean.name}/", (_Part(degraded, clean, ""),))
    return None


def _named_layout(de_type: str, folder: Path) -> _Layout | None:
    """PReNet's Rain100L: clean ``norain-N`` files in ``folder``, beside their rainy partners
    ``rain-N`` (same folder) or beside a ``rainy/`` folder holding them."""
    if de_type not in NAMED_PAIRS:
        return None
    degraded_prefix, clean_prefix = NAMED_PAIRS[de_type]
    stems = [path.stem for path in list_images(folder)]
    if not any(stem.startswith(clean_prefix) for stem in stems):
        return None
    rainy = _first_dir(folder, FOLDER_PAIRS[de_type][0][0])
    if rainy is not None:
        return _Layout(f"{rainy.name}/ + {clean_prefix}N beside it", (_Part(rainy, folder, ""),))
    if any(stem.startswith(degraded_prefix) for stem in stems):
        part = _Part(folder, folder, "", only=degraded_prefix)
        return _Layout(f"{degraded_prefix}N + {clean_prefix}N in one folder", (part,))
    return None


def _sequence_layout(de_type: str, folder: Path) -> _Layout | None:
    """GoPro: every subfolder holding ``blur/`` is a sequence (``sharp/`` missing: problems)."""
    if de_type not in SEQUENCE_FOLDERS:
        return None
    blur, sharp = SEQUENCE_FOLDERS[de_type]
    parts = tuple(
        _Part(sequence / blur, sequence / sharp, f"{sequence.name}/")
        for sequence in sorted(folder.iterdir())
        if (sequence / blur).is_dir()
    )
    if not parts:
        return None
    return _Layout(f"{len(parts)} sequences <sequence>/{blur}/ + <sequence>/{sharp}/", parts)


def _layout(de_type: str, folder: Path, split: str) -> _Layout | None:
    found = (
        _direct_layout(de_type, folder)
        or _named_layout(de_type, folder)
        or _sequence_layout(de_type, folder)
    )
    if found is not None:
        return found
    subset = ROOT_SUBSETS.get(de_type, {}).get(split)
    if subset is not None and (folder / subset).is_dir():
        inner = _direct_layout(de_type, folder / subset) or _sequence_layout(
            de_type, folder / subset
        )
        if inner is not None:
            return _Layout(f"{subset}/: {inner.description}", inner.parts)
    return None


def _check_arguments(de_type: str, split: str) -> None:
    if de_type not in PAIRED_TYPES:
        raise ValueError(f"{de_type!r} has no degraded/clean pairs (types: {PAIRED_TYPES})")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def is_dataset_root(de_type: str, folder: str | Path) -> bool:
    """Whether ``folder`` is a LOL or GoPro root: it holds a split's subfolder
    (``ROOT_SUBSETS``) that holds one of the type's layouts."""
    folder = Path(folder)
    return any(
        _direct_layout(de_type, folder / subset) or _sequence_layout(de_type, folder / subset)
        for subset in ROOT_SUBSETS.get(de_type, {}).values()
        if (folder / subset).is_dir()
    )


def has_layout(de_type: str, folder: str | Path, split: str = "train") -> bool:
    """Whether ``folder`` itself holds one of the type's layouts (not only its subfolders)."""
    _check_arguments(de_type, split)
    folder = Path(folder)
    return folder.is_dir() and _layout(de_type, folder, split) is not None


# ---------------------------------------------------------------------------------------------
# Pairing
# ---------------------------------------------------------------------------------------------


class _StemIndex:
    """Clean images of each folder by stem, read once per folder."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, list[Path]]] = {}

    def get(self, folder: Path) -> dict[str, list[Path]]:
        if folder not in self._folders:
            by_stem: dict[str, list[Path]] = {}
            if folder.is_dir():
                for path in list_images(folder):
                    by_stem.setdefault(path.stem, []).append(path)
            self._folders[folder] = by_stem
        return self._folders[folder]


def _pick(degraded: Path, found: list[Path]) -> Path:
    """Among files of one stem: the same file name, then PNG, then the first by name."""
    for path in found:
        if path.name == degraded.name:
            return path
    return next((path for path in found if path.suffix.lower() == ".png"), found[0])


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:  # a listed file outside the degraded folder: pair it by name
        return Path(path.name)


def _pair_part(
    de_type: str, part: _Part, files: Sequence[Path], index: _StemIndex, scan: PairScan
) -> None:
    """Append to ``scan`` a pair or a problem for every degraded file of one part."""
    for degraded in files:
        relative = _relative(degraded, part.degraded)
        folders = list(dict.fromkeys([part.clean / relative.parent, part.clean]))
        stems = partner_stems(de_type, degraded)
        clean = None
        for folder in folders:
            for stem in stems:
                # a file never pairs with itself (rain-N and norain-N may share a folder)
                found = [path for path in index.get(folder).get(stem, []) if path != degraded]
                if found:
                    clean = _pick(degraded, found)
                    break
            if clean is not None:
                break
        if clean is None:
            tried = ", ".join(str(folder / f"{stem}.*") for folder in folders for stem in stems)
            scan.problems.append((degraded, f"no clean partner: tried {tried}"))
        else:
            scan.pairs.append(Pair(degraded, clean, part.prefix + relative.as_posix()))


def pair_files(
    de_type: str,
    degraded_files: Iterable[str | Path],
    degraded_root: str | Path,
    clean_root: str | Path,
) -> PairScan:
    """Pair given degraded files (e.g. from an official list file) with ``clean_root``.

    Each file's partner is looked for in ``clean_root`` / (its folder relative to
    ``degraded_root``), then in ``clean_root``, by ``partner_stems``. A listed file that does
    not exist is a problem, not an error.
    """
    _check_arguments(de_type, "train")
    part = _Part(Path(degraded_root), Path(clean_root), "")
    scan = PairScan(Path(degraded_root), f"{part.degraded.name}/ + {part.clean.name}/ (listed)")
    existing = []
    for path in map(Path, degraded_files):
        if path.is_file():
            existing.append(path)
        else:
            scan.problems.append((path, "listed but not found"))
    _pair_part(de_type, part, existing, _StemIndex(), scan)
    return scan


def find_pairs(de_type: str, folder: str | Path, split: str = "train") -> PairScan:
    """All (degraded, clean) pairs of one folder of a paired type ("derain", "dehaze",
    "deblur", "lowlight"), in name order, and the files left unpaired with their reasons.

    ``split`` ("train", "val" or "test") only chooses the subset of a dataset root: LOL's
    ``our485/`` or ``eval15/``, GoPro's ``train/`` or ``test/``; "val" accepts no root.
    Raises ``LayoutError`` when ``folder`` is missing or holds none of the type's layouts
    (``describe_layouts``). Files are not opened: ``check_pairs`` reads their headers.
    """
    _check_arguments(de_type, split)
    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutError(f"{folder}: {de_type} folder not found")
    layout = _layout(de_type, folder, split)
    if layout is None and split == "val" and is_dataset_root(de_type, folder):
        raise LayoutError(
            f"{folder}: a dataset root holding {' and '.join(ROOT_SUBSETS[de_type].values())}/; "
            f"validation takes a held-out folder (scripts/make_split.py), never the training "
            f"part nor the test set"
        )
    if layout is None:
        raise LayoutError(
            f"{folder}: no {de_type} layout here; expected {describe_layouts(de_type, split)}"
        )
    scan = PairScan(folder, layout.description)
    index = _StemIndex()
    for part in layout.parts:
        if part.only is None:
            files = images_under(part.degraded)
        else:
            files = [path for path in list_images(part.degraded) if path.stem.startswith(part.only)]
        _pair_part(de_type, part, files, index, scan)
    return scan


def check_pairs(pairs: Iterable[Pair]) -> tuple[list[Pair], list[Problem]]:
    """Read the headers of every pair (nothing decoded): keep those whose two files are
    readable, not ``too_small`` and of equal size; each other one becomes a problem naming
    the file at fault. For training scans and ``--check_data``."""
    kept: list[Pair] = []
    problems: list[Problem] = []
    for pair in pairs:
        sizes = []
        for path in (pair.degraded, pair.clean):
            try:
                sizes.append(image_size(path))
            except ImageReadError as error:
                problems.append((path, str(error).removeprefix(f"{path}: ")))
                break
        if len(sizes) < 2:
            continue
        (width, height), (clean_width, clean_height) = sizes
        if too_small(height, width):
            problems.append(
                (pair.degraded, f"too small to use: {width}x{height} (a side under {MIN_SIDE} px)")
            )
        elif (width, height) != (clean_width, clean_height):
            problems.append(
                (
                    pair.degraded,
                    f"{width}x{height}, but its partner {pair.clean} is "
                    f"{clean_width}x{clean_height}",
                )
            )
        else:
            kept.append(pair)
    return kept, problems
