"""Finding the test sets and pairing degraded images with their ground truth.

Layouts understood (a path may be the set itself or a folder of sets, one per subfolder):
- denoise: a folder of clean images (CBSD68, Urban100); the noise is added at test time.
- derain: ``input/`` + ``target/`` with equal names (Rain100L); ``rain-N`` may pair with
  ``norain-N`` as in the original Rain100L release.
- dehaze: ``input/XXXX_A_B.ext`` + ``target/XXXX.png`` (SOTS outdoor); the official release's
  ``hazy/`` + ``gt/`` (or ``clear/``) is accepted too.
A degraded image without a target is not an error of the whole set: it is listed in
``ImageSet.problems`` with its path, so the caller can report it and go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from utils.degradations import parse_haze_name
from utils.image_io import IMAGE_EXTENSIONS, list_images

TASKS = ("denoise", "derain", "dehaze")
INPUT_FOLDERS = {"derain": ("input", "rainy"), "dehaze": ("input", "hazy")}
TARGET_FOLDERS = {"derain": ("target", "gt"), "dehaze": ("target", "gt", "clear")}


class LayoutError(ValueError):
    """A test-set path that does not hold the expected layout; the message says what is wrong."""


@dataclass(frozen=True)
class ImagePair:
    """One test image: ``degraded`` is None for denoising (noise is added on the fly)."""

    name: str
    target: Path
    degraded: Path | None = None


@dataclass
class ImageSet:
    name: str
    task: str
    pairs: list[ImagePair] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def _subfolder(root: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _check_folder(path: Path, task: str) -> None:
    if not path.is_dir():
        raise LayoutError(f"{path}: {task} test folder not found")


def denoise_set(folder: Path) -> ImageSet:
    pairs = [ImagePair(name=p.name, target=p) for p in list_images(folder)]
    return ImageSet(name=folder.name, task="denoise", pairs=pairs)


def find_denoise_sets(paths: Iterable[str | Path]) -> list[ImageSet]:
    """Each path is a folder of clean images, or a folder whose subfolders are such sets."""
    sets = []
    for path in map(Path, paths):
        _check_folder(path, "denoise")
        if _has_images(path):
            sets.append(denoise_set(path))
            continue
        found = [denoise_set(sub) for sub in sorted(path.iterdir()) if sub.is_dir()]
        found = [s for s in found if s.pairs]
        if not found:
            raise LayoutError(f"{path}: no images, nor subfolders with images")
        sets.extend(found)
    return sets


def _same_name_candidates(degraded: Path) -> list[str]:
    """Target stems for derain: the same stem, or ``norain-N`` for ``rain-N``."""
    stems = [degraded.stem]
    if degraded.stem.startswith("rain-"):
        stems.append("no" + degraded.stem)
    return stems


def _haze_candidates(degraded: Path) -> list[str]:
    """Target stems for dehaze: ``XXXX`` for ``XXXX_A_B``, or the same stem."""
    return [parse_haze_name(degraded), degraded.stem]


def _pair_folder(root: Path, task: str, candidates: Callable[[Path], list[str]]) -> ImageSet:
    inputs = _subfolder(root, INPUT_FOLDERS[task])
    targets = _subfolder(root, TARGET_FOLDERS[task])
    if inputs is None or targets is None:
        raise LayoutError(
            f"{root}: expected {task} folders {'/'.join(INPUT_FOLDERS[task])} and "
            f"{'/'.join(TARGET_FOLDERS[task])}"
        )
    by_stem: dict[str, list[Path]] = {}
    for target in list_images(targets):
        by_stem.setdefault(target.stem, []).append(target)
    test_set = ImageSet(name=root.name, task=task)
    for degraded in list_images(inputs):
        target = _pick_target(degraded, candidates(degraded), by_stem)
        if target is None:
            wanted = " or ".join(f"{stem}.*" for stem in dict.fromkeys(candidates(degraded)))
            test_set.problems.append((degraded, f"no target {wanted} in {targets}"))
        else:
            test_set.pairs.append(ImagePair(name=degraded.name, target=target, degraded=degraded))
    return test_set


def _pick_target(degraded: Path, stems: list[str], by_stem: dict[str, list[Path]]) -> Path | None:
    """Prefer the same file name, then PNG, then the first by name."""
    for stem in stems:
        found = by_stem.get(stem)
        if found:
            for path in found:
                if path.name == degraded.name or path.suffix.lower() == ".png":
                    return path
            return found[0]
    return None


def _find_paired_sets(
    paths: Iterable[str | Path], task: str, candidates: Callable[[Path], list[str]]
) -> list[ImageSet]:
    sets = []
    for path in map(Path, paths):
        _check_folder(path, task)
        if _subfolder(path, INPUT_FOLDERS[task]) is not None:
            sets.append(_pair_folder(path, task, candidates))
            continue
        subs = [
            sub
            for sub in sorted(path.iterdir())
            if sub.is_dir() and _subfolder(sub, INPUT_FOLDERS[task]) is not None
        ]
        if not subs:
            raise LayoutError(
                f"{path}: no {'/'.join(INPUT_FOLDERS[task])} folder here or in its subfolders"
            )
        sets.extend(_pair_folder(sub, task, candidates) for sub in subs)
    return sets


def find_derain_sets(paths: Iterable[str | Path]) -> list[ImageSet]:
    """Each path holds ``input/`` + ``target/`` (equal names), or subfolders that do."""
    return _find_paired_sets(paths, "derain", _same_name_candidates)


def find_dehaze_sets(paths: Iterable[str | Path]) -> list[ImageSet]:
    """Each path holds ``input/XXXX_A_B.ext`` + ``target/XXXX.png`` (or hazy/ + gt/)."""
    return _find_paired_sets(paths, "dehaze", _haze_candidates)
