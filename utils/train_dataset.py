"""Training data of AirNet: patches of several degradations, balanced in every batch.

Each sample is two random crops (query and key) of one degraded image, with the clean crops
that match them (Sec. 3.1 of the paper; the official ``TrainDataset``):

- denoise_15/25/50: two crops of one clean image, the same random dihedral transform on both,
  Gaussian noise of the same sigma added on the fly to each;
- derain/dehaze/deblur/lowlight: two crops of one (degraded, clean) pair, each crop location
  and dihedral transform shared by the degraded crop and its clean crop. Without real pairs,
  the pair can be made from a clean photo (``utils/synthetic.py``: haze of random A and beta,
  rain streaks, camera-shake blur, darkening with signal-dependent noise), once per sample, so
  both crops share one degradation as a real pair's crops do.

Where the files come from: one mapping, ``TYPE_FOLDERS``, gives each type its data folder
(decision 1); paired folders are read through ``utils/pairing.py`` (decision 8) and every file
is checked from its header before training starts, a side under 16 px being too small to use
(``pairing.too_small``, decision 7). ``scan_training_data``/``scan_validation_data`` report
what they found without raising; training (``build_sources``, ``build_validation_set``) and
``train.py --check_data`` both use them.

All randomness of a sample comes from a seed that the batch sampler hands over with the index,
so batches do not depend on the number of loader workers or on which worker reads what (the
official dataset kept a cycling counter in the Dataset object, which workers copy).
"""

from __future__ import annotations

import logging
import math
import random
import signal
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from utils.degradations import add_gaussian_noise, crop_to_multiple, noise_rng, random_dihedral
from utils.eval_dataset import find_denoise_sets, find_paired_sets
from utils.image_files import distinct_names, image_size, images_under
from utils.image_io import ImageReadError, read_image
from utils.pairing import (
    MIN_SIDE,
    LayoutError,
    Pair,
    Problem,
    check_pairs,
    find_pairs,
    pair_files,
    too_small,
)
from utils.synthetic import add_rain_streaks, low_light, motion_blur, random_haze

logger = logging.getLogger(__name__)

NOISE_SIGMA = {"denoise_15": 15, "denoise_25": 25, "denoise_50": 50}
# "clean": a photo of --denoise_dir given as its own target, so the encoder learns "nothing to
# remove" and the restorer to leave such a photo alone (not in the paper; off by default).
CLEAN = "clean"
# Decision 1: the one mapping type -> data folder. Folder KEY comes from train.py's --KEY_dir
# for training and --val_KEY_dir for validation (``folder_flag``); the noise types and clean
# read the clean photos of "denoise", as does a synthetic type without real pairs.
TYPE_FOLDERS = {
    "denoise_15": "denoise",
    "denoise_25": "denoise",
    "denoise_50": "denoise",
    "derain": "derain",
    "dehaze": "dehaze",
    "clean": "denoise",
    "deblur": "deblur",
    "lowlight": "lowlight",
}
PHOTOS = "denoise"  # the folder of clean photos
# Paired types that can be made from a clean photo: clean, rng -> degraded (uint8 (H, W, 3)).
SYNTHESIS = {
    "derain": add_rain_streaks,
    "dehaze": random_haze,
    "deblur": motion_blur,
    "lowlight": low_light,
}
# The official list files: type -> (the list, relative to --data_file_dir or the type's folder;
# the subfolder its lines point into; the subfolder of the clean partners).
LIST_FILES = {
    "derain": (Path("rainy/rainTrain.txt"), "rainy", "gt"),
    "dehaze": (Path("hazy/hazy_outside.txt"), "synthetic", "original"),
}
MAX_REPORTED = 20  # skipped files named one by one in the log before a count

Item = tuple[Path | None, Path]  # (degraded or None, clean)
SampleIndex = tuple[int, int, int]  # (type index, image index, sample seed)


# ---------------------------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------------------------


class DataError(ValueError):
    """Data a type cannot train or validate on; one line naming the flag and the folder."""


def folder_flag(key: str, validation: bool = False) -> str:
    """train.py's flag of the data folder ``key`` (a value of TYPE_FOLDERS): ``--KEY_dir``,
    or ``--val_KEY_dir`` for its validation folder."""
    return f"--{'val_' if validation else ''}{key}_dir"


@dataclass
class TypeScan:
    """What the scan of one type's training or validation data found.

    ``found`` counts the candidate images: clean photos, or degraded files of a paired folder
    or list file; ``items`` holds the usable ones as (degraded or None, clean); ``skipped``
    the others as (file, reason), reasons from utils/pairing.py's rules (no partner, size
    mismatch, too small, unreadable); ``error`` says in one line, naming the flag and the
    folder, why the type cannot be used at all (no folder, no layout, nothing usable), else
    None. ``synthetic``: the degraded images are made from the clean photos on the fly.
    ``labels`` (validation scans): each input file's name as test.py names it (set, then the
    pair's name: ``<sequence>/<file>`` for GoPro), from which outputs are named.
    """

    de_type: str
    flag: str
    folder: Path | None
    layout: str = ""
    items: tuple[Item, ...] = ()
    found: int = 0
    skipped: list[Problem] = field(default_factory=list)
    error: str | None = None
    synthetic: bool = False
    labels: dict[Path, Path] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.error is None


def photo_problem(path: Path) -> str | None:
    """Why a clean photo cannot be used (unreadable, ``too_small``), read from its header
    only; None when it can. Larger photos smaller than the patch are padded by TrainDataset."""
    try:
        width, height = image_size(path)
    except ImageReadError as error:
        return str(error).removeprefix(f"{path}: ")
    if too_small(height, width):
        return f"too small to use: {width}x{height} (a side under {MIN_SIDE} px)"
    return None


def _scan_photos(scan: TypeScan, photos: list[Path]) -> None:
    """Fill ``scan`` with the usable photos of ``photos`` and the reasons of the others."""
    items = []
    for path in photos:
        problem = photo_problem(path)
        if problem is None:
            items.append((None, path))
        else:
            scan.skipped.append((path, problem))
    scan.found, scan.items = len(photos), tuple(items)


def _listed_files(
    de_type: str, folder: Path, data_file_dir: str | Path | None
) -> tuple[Path, list[Path]] | None:
    """(list file, the degraded files it lists relative to ``folder``) from the type's
    official list file in ``data_file_dir``, else in ``folder``; None when there is none."""
    if de_type not in LIST_FILES:
        return None
    relative = LIST_FILES[de_type][0]
    candidates = [folder / relative]
    if data_file_dir is not None:
        candidates.insert(0, Path(data_file_dir) / relative)
    for list_file in candidates:
        if list_file.is_file():
            lines = list_file.read_text().splitlines()
            return list_file, [folder / line.strip() for line in lines if line.strip()]
    return None


def _scan_pairs(scan: TypeScan, data_file_dir: str | Path | None) -> None:
    """Fill ``scan`` with the pairs of its folder (an official list file if there is one,
    else utils/pairing.py's layouts), checked from the headers by ``check_pairs``."""
    folder = scan.folder
    try:
        listed = _listed_files(scan.de_type, folder, data_file_dir)
        if listed is None:
            found = find_pairs(scan.de_type, folder, "train")
            scan.layout = found.layout
        else:
            list_file, files = listed
            _, degraded, clean = LIST_FILES[scan.de_type]
            found = pair_files(scan.de_type, files, folder / degraded, folder / clean)
            scan.layout = f"listed in {list_file}, partners in {clean}/"
    except LayoutError as error:
        scan.error = f"{scan.flag} {error}"
        return
    kept, problems = check_pairs(found.pairs)
    scan.items = tuple((pair.degraded, pair.clean) for pair in kept)
    scan.found = len(found.pairs) + len(found.problems)
    scan.skipped = found.problems + problems


def _scan_training_type(
    de_type: str,
    folders: Mapping[str, str | Path | None],
    data_file_dir: str | Path | None,
    synthetic: Sequence[str],
    photo_scans: dict[Path, TypeScan],
) -> TypeScan:
    if de_type not in TYPE_FOLDERS:
        raise ValueError(f"unknown degradation type {de_type!r} (types: {', '.join(TYPE_FOLDERS)})")
    key = TYPE_FOLDERS[de_type]
    real = folders.get(key) if key != PHOTOS else None
    if key != PHOTOS and real is None and de_type not in synthetic:
        flag = folder_flag(key)
        return TypeScan(
            de_type,
            flag,
            None,
            error=f"{de_type}: no folder of real pairs ({flag}) and no --synthetic {de_type}",
        )
    if real is not None:
        scan = TypeScan(de_type, folder_flag(key), Path(real))
        _scan_pairs(scan, data_file_dir)
    else:  # a noise type, clean, or a synthetic type: the clean photos
        folder = folders.get(PHOTOS)
        layout = "clean photos" if key == PHOTOS else f"clean photos, synthetic {de_type}"
        scan = TypeScan(
            de_type, folder_flag(PHOTOS), None if folder is None else Path(folder), layout
        )
        scan.synthetic = key != PHOTOS
        if folder is None:
            scan.error = f"{de_type}: no folder of clean photos ({scan.flag})"
            return scan
        if scan.folder not in photo_scans:  # one header scan per folder, shared by its types
            photos = TypeScan(de_type, scan.flag, scan.folder)
            try:
                _scan_photos(photos, images_under(scan.folder))
            except FileNotFoundError as error:
                photos.error = f"{scan.flag} {error}"
            photo_scans[scan.folder] = photos
        photos = photo_scans[scan.folder]
        scan.items, scan.found, scan.skipped = photos.items, photos.found, photos.skipped
        scan.error = photos.error
    if scan.error is None and not scan.items:
        scan.error = f"{scan.flag} {scan.folder}: no usable image for {de_type}" + (
            f" ({len(scan.skipped)} skipped)" if scan.skipped else ""
        )
    return scan


def scan_training_data(
    de_types: Sequence[str],
    folders: Mapping[str, str | Path | None],
    data_file_dir: str | Path | None = None,
    synthetic: Sequence[str] = (),
) -> list[TypeScan]:
    """Scan the training data of every type in ``de_types``, as training reads it; reports
    every problem instead of raising (``build_sources`` and ``--check_data`` share it).

    Args:
        de_types: types of TYPE_FOLDERS.
        folders: data folder per key of TYPE_FOLDERS' values ("denoise", "derain", ...),
            None or absent where not given.
        data_file_dir: where the official list files (LIST_FILES) are looked for first.
        synthetic: types made from the clean photos of ``folders["denoise"]`` (SYNTHESIS)
            where their own folder is None; a real folder, when given, wins.

    A paired folder is read through utils/pairing.py: the official list file if present,
    else ``find_pairs`` (split "train"); pairs and photos are checked from their headers
    (``check_pairs``, ``photo_problem``): unreadable, too small (decision 7) or of unequal
    sizes, a file is skipped with its reason.
    """
    photo_scans: dict[Path, TypeScan] = {}
    return [
        _scan_training_type(de_type, folders, data_file_dir, synthetic, photo_scans)
        for de_type in de_types
    ]


def log_skipped(scans: Sequence[TypeScan], what: str) -> None:
    """One warning per skipped file (the first MAX_REPORTED, then a count), each file once."""
    skipped = dict(problem for scan in scans for problem in scan.skipped)
    for path, reason in list(skipped.items())[:MAX_REPORTED]:
        logger.warning("%sskipping %s: %s", what, path, reason)
    if len(skipped) > MAX_REPORTED:
        logger.warning("%sskipping %d more files", what, len(skipped) - MAX_REPORTED)


def leave_out(scans: Sequence[TypeScan], excluded: Mapping[Path, str]) -> list[TypeScan]:
    """``scans`` without the items that have a file (degraded or clean) in ``excluded``, each
    such file recorded as skipped with its reason (``train.py --drop_test_content``); a type
    left with no item becomes unusable, as any type without usable data."""
    kept = []
    for scan in scans:
        items = tuple(item for item in scan.items if not set(item) & excluded.keys())
        if len(items) == len(scan.items):
            kept.append(scan)
            continue
        files = dict.fromkeys(p for item in scan.items for p in item if p in excluded)
        skipped = scan.skipped + [(path, excluded[path]) for path in files]
        error = scan.error
        if error is None and not items:
            error = f"{scan.flag} {scan.folder}: no image left for {scan.de_type} ({len(files)} "
            error += "left out as test content)"
        kept.append(replace(scan, items=items, skipped=skipped, error=error))
    return kept


def format_data_check(parts: Sequence[tuple[str, Sequence[TypeScan]]]) -> str:
    """The report of ``train.py --check_data``: one table row per (part, type) with the
    images found, the usable pairs (a photo of a noise, clean or synthetic type is its own
    pair, degraded on the fly), the files skipped and where they came from; then each
    skipped file once with its reason, then each unusable type with why, then a verdict.

    ``parts``: (name, scans) such as ("training", scan_training_data(...)).
    """
    header = ("data", "type", "images", "pairs", "skipped", "folder (layout)")
    rows = [header]
    for part, scans in parts:
        for scan in scans:
            where = "-" if scan.folder is None else f"{scan.folder} ({scan.layout or '?'})"
            status = str(len(scan.items)) if scan.usable else "NONE"
            rows.append(
                (part, scan.de_type, str(scan.found), status, str(len(scan.skipped)), where)
            )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = []
    for row in rows:  # text left-aligned, counts (columns 2-4) right-aligned, the folder as is
        cells = [
            row[column].rjust(width) if 2 <= column <= 4 else row[column].ljust(width)
            for column, width in enumerate(widths)
        ]
        lines.append("  ".join([*cells, row[-1]]))
    skipped = {
        (part, path): reason
        for part, scans in parts
        for scan in scans
        for path, reason in scan.skipped
    }
    if skipped:
        lines += ["", f"skipped files ({len(skipped)}):"]
        lines += [f"  {part}: {path}: {reason}" for (part, path), reason in skipped.items()]
    errors = [(part, scan.error) for part, scans in parts for scan in scans if scan.error]
    if errors:
        lines += ["", f"unusable ({len(errors)}):"]
        lines += [f"  {part}: {error}" for part, error in errors]
        lines += ["", "not ready to train: fix the folders above (validation: or --val_every 0)"]
    else:
        lines += ["", "every type is usable (exit 0)"]
    return "\n".join(lines)


@dataclass(frozen=True)
class Source:
    """The files of one degradation type: (degraded or None, clean) per image.

    ``synthetic``: the degraded image is made from the clean one on the fly (SYNTHESIS, for a
    paired type without real pairs); noise types are always made on the fly and leave this
    False.
    """

    de_type: str
    items: tuple[Item, ...]
    synthetic: bool = False


def build_sources(
    de_types: Sequence[str],
    folders: Mapping[str, str | Path | None],
    data_file_dir: str | Path | None = None,
    synthetic: Sequence[str] = (),
    excluded: Mapping[Path, str] | None = None,
) -> list[Source]:
    """The training files of every type in ``de_types``, all found and checked before
    training starts (``scan_training_data``, whose arguments these are), without the files
    of ``excluded`` (file -> reason: ``leave_out``); skipped files are logged.

    Raises:
        DataError: a type has no usable image (the first such type, in one line).
    """
    scans = leave_out(
        scan_training_data(de_types, folders, data_file_dir, synthetic), excluded or {}
    )
    log_skipped(scans, "")
    sources = []
    for scan in scans:
        if scan.error is not None:
            raise DataError(scan.error)
        logger.info(
            "%s: %d images from %s (%s)", scan.de_type, len(scan.items), scan.folder, scan.layout
        )
        sources.append(Source(scan.de_type, scan.items, scan.synthetic))
    return sources


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------


def pad_to_size(image: np.ndarray, size: int) -> np.ndarray:
    """Mirror-pad (H, W, 3) at the bottom/right so that both sides are at least ``size``."""
    pad_h, pad_w = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if pad_h == 0 and pad_w == 0:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")


def random_crop(rng: np.random.Generator, size: int, *images: np.ndarray) -> list[np.ndarray]:
    """The same random size x size window of every image (all of one shape, >= size)."""
    height, width = images[0].shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return [image[top : top + size, left : left + size] for image in images]


def _to_tensor(patch: np.ndarray) -> torch.Tensor:
    """uint8 (P, P, 3) -> float32 (3, P, P) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float() / 255.0


class TrainDataset(Dataset):
    """Patches of the given sources, indexed by (type index, image index, sample seed).

    Returns a dict of ``de_type`` (the type index) and float tensors (3, P, P) in [0, 1]:
    ``degraded_1`` (query), ``degraded_2`` (key), ``clean_1``, ``clean_2``.
    Images smaller than the patch are mirror-padded, with a warning naming the file.
    """

    def __init__(self, sources: Sequence[Source], patch_size: int) -> None:
        self.sources = list(sources)
        self.patch_size = patch_size
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return sum(len(source.items) for source in self.sources)

    def _load(self, path: Path) -> np.ndarray:
        """The image cropped to a multiple of 16 (as official), padded up to the patch."""
        image = crop_to_multiple(read_image(path), base=16)
        if min(image.shape[:2]) < self.patch_size:
            if path not in self._warned:
                self._warned.add(path)
                logger.warning(
                    "%s: %dx%d is smaller than the %d patch; mirror-padded",
                    path,
                    image.shape[1],
                    image.shape[0],
                    self.patch_size,
                )
            image = pad_to_size(image, self.patch_size)
        return image

    def _load_pair(self, degraded_path: Path, clean_path: Path) -> tuple[np.ndarray, np.ndarray]:
        degraded, clean = self._load(degraded_path), self._load(clean_path)
        if degraded.shape != clean.shape:
            if degraded_path not in self._warned:
                self._warned.add(degraded_path)
                logger.warning(
                    "%s and %s differ in size; using their common top-left part",
                    degraded_path,
                    clean_path,
                )
            height = min(degraded.shape[0], clean.shape[0])
            width = min(degraded.shape[1], clean.shape[1])
            degraded, clean = degraded[:height, :width], clean[:height, :width]
        return degraded, clean

    def __getitem__(self, index: SampleIndex) -> dict[str, torch.Tensor | int]:
        """The sample; a file that passed the scan but fails to decode (truncated) is replaced
        by the next image of its type, with a warning, rather than stopping the run."""
        type_index, image_index, seed = index
        count = len(self.sources[type_index].items)
        for attempt in range(count):
            try:
                return self._sample(type_index, (image_index + attempt) % count, seed)
            except ImageReadError as error:
                logger.warning("%s; using the next image instead", error)
        raise ImageReadError(f"no readable image left for {self.sources[type_index].de_type}")

    def _sample(self, type_index: int, image_index: int, seed: int) -> dict:
        source = self.sources[type_index]
        degraded_path, clean_path = source.items[image_index]
        rng = np.random.default_rng(seed)
        size = self.patch_size
        if source.de_type in NOISE_SIGMA or source.de_type == CLEAN:
            clean = self._load(clean_path)
            (clean_1,), (clean_2,) = random_crop(rng, size, clean), random_crop(rng, size, clean)
            clean_1, clean_2 = random_dihedral(rng, clean_1, clean_2)
            if source.de_type == CLEAN:
                degraded_1, degraded_2 = clean_1, clean_2
            else:
                sigma = NOISE_SIGMA[source.de_type]
                degraded_1 = add_gaussian_noise(clean_1, sigma, rng)
                degraded_2 = add_gaussian_noise(clean_2, sigma, rng)
        else:
            if source.synthetic:
                clean = self._load(clean_path)
                degraded = SYNTHESIS[source.de_type](clean, rng)
            else:
                degraded, clean = self._load_pair(degraded_path, clean_path)
            degraded_1, clean_1 = random_dihedral(rng, *random_crop(rng, size, degraded, clean))
            degraded_2, clean_2 = random_dihedral(rng, *random_crop(rng, size, degraded, clean))
        return {
            "de_type": type_index,
            "degraded_1": _to_tensor(degraded_1),
            "degraded_2": _to_tensor(degraded_2),
            "clean_1": _to_tensor(clean_1),
            "clean_2": _to_tensor(clean_2),
        }


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


class BalancedBatchSampler(Sampler[list[SampleIndex]]):
    """Batches with every degradation type in equal number (or in fixed proportions), the same
    for any worker count.

    An epoch draws ``epoch_size * weights[t]`` images of type t (shuffled passes over its
    images) and a seed for each sample, all from (seed, epoch). With u = ``batch_size /
    sum(weights)``, global batch b holds ``u * weights[t]`` samples of type t, in type order;
    process ``rank`` of ``world_size`` takes batches rank, rank + world_size, ... (as
    DistributedSampler shards samples), so the processes never share a sample and all run the
    same number of steps. Weights of 1 (the default) are the official balance, one stream per
    type, and draw exactly the stream this sampler drew before weights existed; a weight of 2
    repeats a type as AdaIR and PromptIR repeat a data set in their lists.

    Args:
        counts: number of images of each type.
        batch_size: samples per batch and process, a multiple of ``sum(weights)``.
        epoch_size: samples of a type of weight 1 per epoch (official 400).
        seed: seed of the whole stream.
        rank, world_size: this process and the number of processes.
        weights: positive integer share of each type in a batch (None: all 1).

    Raises:
        ValueError: a type without images, weights not positive or not one per type, or a
            batch that cannot hold the shares.
    """

    def __init__(
        self,
        counts: Sequence[int],
        batch_size: int,
        epoch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        weights: Sequence[int] | None = None,
    ) -> None:
        n_types = len(counts)
        if n_types == 0 or min(counts) <= 0:
            raise ValueError(f"every type needs at least one image, got counts {list(counts)}")
        weights = [1] * n_types if weights is None else list(weights)
        if len(weights) != n_types or min(weights) < 1:
            raise ValueError(f"need one positive weight per type, got {weights} for {n_types}")
        if batch_size % sum(weights):
            raise ValueError(
                f"batch size {batch_size} is not a multiple of {n_types} types"
                + (f" with weights summing to {sum(weights)}" if sum(weights) != n_types else "")
            )
        self.counts = list(counts)
        self.weights = weights
        self.per_type = batch_size // sum(weights)
        self.epoch_size = epoch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0
        if len(self) == 0:
            raise ValueError(
                f"epoch_size {epoch_size} gives no batch of {self.per_type} per type on each "
                f"of {world_size} processes; raise --epoch_size"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Draw epoch ``epoch``'s batches next, skipping the first ``start_batch`` (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches_per_epoch(self) -> int:
        """Batches each process gets in a whole epoch."""
        return self.epoch_size // self.per_type // self.world_size

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def _epoch_stream(self) -> list[list[tuple[int, int]]]:
        """For each type, epoch_size * weight (image index, seed) pairs from (seed, epoch)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        streams = []
        for count, weight in zip(self.counts, self.weights, strict=True):
            size = self.epoch_size * weight
            passes = math.ceil(size / count)
            images = np.concatenate([rng.permutation(count) for _ in range(passes)])
            images = images[:size].tolist()
            seeds = rng.integers(0, 2**63 - 1, size=size).tolist()
            streams.append(list(zip(images, seeds, strict=True)))
        return streams

    def __iter__(self) -> Iterator[list[SampleIndex]]:
        streams = self._epoch_stream()
        for local in range(self.start_batch, self.batches_per_epoch()):
            batch = local * self.world_size + self.rank
            rows = range(batch * self.per_type, (batch + 1) * self.per_type)
            yield [
                (type_index, *streams[type_index][row * weight + repeat])
                for row in rows
                for type_index, weight in enumerate(self.weights)
                for repeat in range(weight)
            ]


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a loader worker from the loader's seeded torch generator.

    The patches themselves use the seeds carried by the indices; this keeps any other library
    randomness in the workers reproducible too.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    # SIGTERM/Ctrl-C reach the whole process group; the main process finishes its step and
    # saves (utils/stop.py), so the workers must not die under it. They end with the main one.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


# ---------------------------------------------------------------------------------------------
# Validation set
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationImage:
    """One held-out image: degraded input and clean target, uint8 (H, W, 3); ``name`` is
    unique within its type (``distinct_names`` of the inputs as test.py names them: the
    stem, then what tells two apart, such as a GoPro sequence)."""

    de_type: str
    name: str
    degraded: np.ndarray
    clean: np.ndarray


def _centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop (H, W, 3) to at most size x size (0 keeps the image)."""
    if size <= 0:
        return image
    height, width = image.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return image[top : top + size, left : left + size]


def _scan_validation_folder(de_type: str, flag: str, folder: Path) -> TypeScan:
    """The held-out images of one folder, found as test.py finds its test sets
    (utils/eval_dataset.py with split "val", so a LOL or GoPro root is refused) and checked
    from their headers as training's are."""
    key = TYPE_FOLDERS[de_type]
    scan = TypeScan(de_type, flag, folder)
    try:
        if key == PHOTOS:
            sets = find_denoise_sets([folder])
        else:
            sets = find_paired_sets(key, [folder], split="val")
    except LayoutError as error:
        scan.error = f"{flag} {error}"
        return scan
    candidates = [pair for image_set in sets for pair in image_set.pairs]
    scan.layout = f"set{'s' * (len(sets) > 1)} {', '.join(image_set.name for image_set in sets)}"
    scan.labels = {
        pair.target if pair.degraded is None else pair.degraded: Path(image_set.name, pair.name)
        for image_set in sets
        for pair in image_set.pairs
    }
    if key == PHOTOS:
        _scan_photos(scan, [pair.target for pair in candidates])
        return scan
    unpaired = [problem for image_set in sets for problem in image_set.problems]
    kept, problems = check_pairs(Pair(p.degraded, p.target, p.name) for p in candidates)
    scan.items = tuple((pair.degraded, pair.clean) for pair in kept)
    scan.found = len(candidates) + len(unpaired)
    scan.skipped = unpaired + problems
    return scan


def scan_validation_data(
    de_types: Sequence[str], folders: Mapping[str, str | Path | None]
) -> list[TypeScan]:
    """Scan the validation folder of every type in ``de_types``; reports every problem
    instead of raising (``build_validation_set`` and ``--check_data`` share it).

    ``folders`` maps the keys of TYPE_FOLDERS' values to held-out folders (train.py's
    ``--val_KEY_dir``); the noise types and ``clean`` take the photos of "denoise". A type
    whose folder is None or absent is an error naming the flag.
    """
    found: dict[tuple[str, Path], TypeScan] = {}
    scans = []
    for de_type in de_types:
        key = TYPE_FOLDERS[de_type]
        flag, folder = folder_flag(key, validation=True), folders.get(key)
        if folder is None:
            error = f"{de_type}: no validation folder: give {flag} (held-out images)"
            scans.append(TypeScan(de_type, flag, None, error=error))
            continue
        if (key, Path(folder)) not in found:  # the noise types and clean share their photos
            found[key, Path(folder)] = _scan_validation_folder(de_type, flag, Path(folder))
        scan = replace(found[key, Path(folder)], de_type=de_type)
        if scan.error is None and not scan.items:
            scan.error = f"{flag} {folder}: no usable validation image for {de_type}" + (
                f" ({len(scan.skipped)} skipped)" if scan.skipped else ""
            )
        scans.append(scan)
    return scans


def build_validation_set(
    de_types: Sequence[str],
    folders: Mapping[str, str | Path | None],
    max_images: int = 4,
    crop: int = 256,
    excluded: Mapping[Path, str] | None = None,
) -> list[ValidationImage]:
    """The first ``max_images`` usable images of each type (0: all), centre-cropped to
    ``crop``, then to a multiple of 16 as test.py does; noise is added with a fixed seed per
    image, so every validation of a run sees the same inputs. ``clean`` takes the photos of
    "denoise" as their own input.

    Args:
        de_types: types of TYPE_FOLDERS.
        folders: held-out folder per key of TYPE_FOLDERS' values ("denoise", "derain",
            "dehaze", "deblur", "lowlight"), as ``scan_validation_data``.
        max_images: images per type (0: all).
        crop: the side of the centre crop (0: whole images).
        excluded: files left out (file -> reason: ``leave_out``), e.g. test content.

    Raises:
        DataError: a type has no folder or no usable image (one line naming the flag).
    """
    scans = leave_out(scan_validation_data(de_types, folders), excluded or {})
    log_skipped(scans, "validation: ")
    images = []
    for scan in scans:
        if scan.error is not None:
            raise DataError(scan.error)
        items = scan.items[:max_images] if max_images else scan.items
        inputs = [clean if degraded is None else degraded for degraded, clean in items]
        names = distinct_names([scan.labels[path] for path in inputs], suffix="")
        for (degraded_path, clean_path), name in zip(items, names, strict=True):
            clean = crop_to_multiple(_centre_crop(read_image(clean_path), crop), base=16)
            if scan.de_type == CLEAN:
                degraded = clean
            elif degraded_path is None:
                sigma = NOISE_SIGMA[scan.de_type]
                degraded = add_gaussian_noise(clean, sigma, noise_rng(clean_path.name, sigma))
            else:
                degraded = crop_to_multiple(_centre_crop(read_image(degraded_path), crop), 16)
            if degraded.shape != clean.shape:  # equal headers, but an EXIF turn on one side
                raise DataError(f"{degraded_path} and {clean_path} differ in size")
            images.append(ValidationImage(scan.de_type, name, degraded, clean))
    return images
