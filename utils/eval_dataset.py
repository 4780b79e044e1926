"""Finding the test sets and pairing degraded images with their ground truth.

Layouts understood (a path may be the set itself or a folder of sets, one per subfolder);
the pairing of degraded and clean files is ``utils.pairing``'s, shared with training:
- denoise: a folder of clean images (CBSD68, Urban100); the noise is added at test time.
- derain: ``input/`` + ``target/`` with equal names (Rain100L), or ``rainy/`` + ``gt/``;
  ``rain-N`` may pair with ``norain-N`` as in the original Rain100L release.
- dehaze: ``input/XXXX_A_B.ext`` (SOTS outdoor) or ``input/XXXX_k.ext`` (indoor) +
  ``target/XXXX.png``; the official release's ``hazy/`` + ``gt/`` (or ``clear/``) is accepted
  too, and equal names pair first.
- deblur: GoPro's test folder (``<sequence>/blur`` + ``<sequence>/sharp``) as one set whose
  image names keep their sequence (``GOPR0384_11_00/000001.png``), or ``input/`` + ``target/``.
- lowlight: ``low/`` + ``high/`` (LOL's ``eval15``; a LOL root means its ``eval15/``), or
  ``input/`` + ``target/``.
A degraded image without a target is not an error of the whole set: it is listed in
``ImageSet.problems`` with its path, so the caller can report it and go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from utils.image_files import list_images, looks_like_image
from utils.pairing import LayoutError, describe_layouts, find_pairs, has_layout, is_dataset_root

TASKS = ("denoise", "derain", "dehaze", "deblur", "lowlight")


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
    return any(looks_like_image(path) for path in folder.iterdir())


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


def _paired_set(task: str, folder: Path, split: str) -> ImageSet:
    scan = find_pairs(task, folder, split)
    pairs = [ImagePair(name=p.name, target=p.clean, degraded=p.degraded) for p in scan.pairs]
    return ImageSet(name=folder.name, task=task, pairs=pairs, problems=scan.problems)


def find_paired_sets(task: str, paths: Iterable[str | Path], split: str = "test") -> list[ImageSet]:
    """Each path holds one of the task's layouts (``utils.pairing.find_pairs``) and is one set,
    or is a folder whose subfolders that hold one are sets. ``split``: "test", or "val" for
    validation (a LOL or GoPro root then is refused, so validation never reads a test set)."""
    sets = []
    for path in map(Path, paths):
        _check_folder(path, task)
        if has_layout(task, path, split) or is_dataset_root(task, path):
            sets.append(_paired_set(task, path, split))  # a root for "val": LayoutError
            continue
        subs = [sub for sub in sorted(path.iterdir()) if has_layout(task, sub, split)]
        if not subs:
            raise LayoutError(
                f"{path}: no {task} layout here or in its subfolders; expected "
                f"{describe_layouts(task, split)}"
            )
        sets.extend(_paired_set(task, sub, split) for sub in subs)
    return sets


def find_derain_sets(paths: Iterable[str | Path], split: str = "test") -> list[ImageSet]:
    """Each path holds ``input/`` + ``target/`` (equal names; ``rain-N`` <-> ``norain-N``) or
    ``rainy/`` + ``gt/``, or subfolders that do."""
    return find_paired_sets("derain", paths, split)


def find_dehaze_sets(paths: Iterable[str | Path], split: str = "test") -> list[ImageSet]:
    """Each path holds ``input/XXXX_A_B.ext`` + ``target/XXXX.png`` (or hazy/ + gt/ or
    clear/; equal names pair too), or subfolders that do."""
    return find_paired_sets("dehaze", paths, split)


def find_deblur_sets(paths: Iterable[str | Path], split: str = "test") -> list[ImageSet]:
    """Each path is GoPro's test folder (``<sequence>/blur`` + ``<sequence>/sharp``: one set,
    image names ``<sequence>/<file>``), a GoPro root (its ``test/``), ``blur/`` + ``sharp/``
    or ``input/`` + ``target/``, or a folder of such sets."""
    return find_paired_sets("deblur", paths, split)


def find_lowlight_sets(paths: Iterable[str | Path], split: str = "test") -> list[ImageSet]:
    """Each path holds ``low/`` + ``high/`` (LOL's ``eval15``), a LOL root (its ``eval15/``),
    or ``input/`` + ``target/``, or is a folder of such sets."""
    return find_paired_sets("lowlight", paths, split)
