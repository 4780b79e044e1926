"""Training data of AirNet: patches of several degradations, balanced in every batch.

Each sample is two random crops (query and key) of one degraded image, with the clean crops
that match them (Sec. 3.1 of the paper; the official ``TrainDataset``):

- denoise_15/25/50: two crops of one clean image, the same random dihedral transform on both,
  Gaussian noise of the same sigma added on the fly to each;
- derain/dehaze: two crops of one (degraded, clean) pair, each crop location and dihedral
  transform shared by the degraded crop and its clean crop. Without real pairs, the pair can be
  made from a clean photo (``utils/synthetic.py``: haze of random A and beta, rain streaks),
  once per sample, so both crops share one degradation as a real pair's crops do.

All randomness of a sample comes from a seed that the batch sampler hands over with the index,
so batches do not depend on the number of loader workers or on which worker reads what (the
official dataset kept a cycling counter in the Dataset object, which workers copy).
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from utils.degradations import (
    add_gaussian_noise,
    crop_to_multiple,
    noise_rng,
    parse_haze_name,
    random_dihedral,
)
from utils.eval_dataset import find_dehaze_sets, find_denoise_sets, find_derain_sets
from utils.image_io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    check_image,
    list_images,
    read_image,
)
from utils.synthetic import add_rain_streaks, random_haze

logger = logging.getLogger(__name__)

NOISE_SIGMA = {"denoise_15": 15, "denoise_25": 25, "denoise_50": 50}
# "clean": a photo of --denoise_dir given as its own target, so the encoder learns "nothing to
# remove" and the restorer to leave such a photo alone (not in the paper; off by default).
CLEAN = "clean"
SYNTHESIS = {"derain": add_rain_streaks, "dehaze": random_haze}  # clean, rng -> degraded
DERAIN_LIST = Path("rainy/rainTrain.txt")  # official list files, relative to --data_file_dir
DEHAZE_LIST = Path("hazy/hazy_outside.txt")
MAX_REPORTED = 20  # missing partners named one by one in the log before a count

SampleIndex = tuple[int, int, int]  # (type index, image index, sample seed)


# ---------------------------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------------------------


def find_images_recursive(folder: str | Path) -> list[Path]:
    """Every image under ``folder`` (sorted); other files are skipped with a logged note."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    images = []
    for root, dirs, _ in os.walk(folder):
        dirs.sort()
        images += list_images(root)
    return images


def _read_list_file(candidates: Sequence[Path], root: Path) -> list[Path] | None:
    """Paths listed (relative to ``root``, one a line) in the first existing candidate file."""
    for list_file in candidates:
        if list_file.is_file():
            lines = list_file.read_text().splitlines()
            logger.info("reading the file list %s", list_file)
            return [root / line.strip() for line in lines if line.strip()]
    return None


def derain_partner(rainy: Path) -> Path:
    """rainy/rain-N.png -> gt/norain-N.png (official Train100L naming)."""
    name = rainy.name
    if name.startswith("rain-"):
        name = "no" + name
    return rainy.parent.parent / "gt" / name


def dehaze_partner(hazy: Path, dehaze_dir: Path) -> Path:
    """synthetic/partK/XXXX_A_B.jpg -> original/XXXX.jpg (another extension if that exists)."""
    synthetic = next((p for p in hazy.parents if p.name == "synthetic"), None)
    original = (synthetic.parent if synthetic is not None else dehaze_dir) / "original"
    stem = parse_haze_name(hazy)
    partner = original / f"{stem}{hazy.suffix}"
    if not partner.exists():
        for ext in sorted(IMAGE_EXTENSIONS):
            if (original / f"{stem}{ext}").exists():
                return original / f"{stem}{ext}"
    return partner


def _keep_complete_pairs(pairs: list[tuple[Path, Path]], what: str) -> list[tuple[Path, Path]]:
    """Drop pairs whose files are missing, naming each in the log; fail when none is left."""
    missing = [(d, c) for d, c in pairs if not (d.is_file() and c.is_file())]
    for degraded, clean in missing[:MAX_REPORTED]:
        absent = degraded if not degraded.is_file() else clean
        logger.warning("%s: %s has no partner: %s is missing", what, degraded, absent)
    if len(missing) > MAX_REPORTED:
        logger.warning("%s: %d more incomplete pairs", what, len(missing) - MAX_REPORTED)
    incomplete = set(missing)
    complete = [pair for pair in pairs if pair not in incomplete]
    if not complete:
        raise FileNotFoundError(f"{what}: no complete (degraded, clean) pair found")
    if missing:
        logger.warning("%s: training on %d pairs, %d skipped", what, len(complete), len(missing))
    return complete


def find_derain_pairs(
    derain_dir: str | Path, data_file_dir: str | Path | None = None
) -> list[tuple[Path, Path]]:
    """(rainy, clean) pairs from rainy/rainTrain.txt if present, else from rainy/rain-*."""
    derain_dir = Path(derain_dir)
    candidates = [derain_dir / DERAIN_LIST]
    if data_file_dir is not None:
        candidates.insert(0, Path(data_file_dir) / DERAIN_LIST)
    rainy = _read_list_file(candidates, derain_dir)
    if rainy is None:
        rainy = find_images_recursive(derain_dir / "rainy")
    return _keep_complete_pairs([(p, derain_partner(p)) for p in rainy], f"derain {derain_dir}")


def find_dehaze_pairs(
    dehaze_dir: str | Path, data_file_dir: str | Path | None = None
) -> list[tuple[Path, Path]]:
    """(hazy, clean) pairs from hazy/hazy_outside.txt if present, else from synthetic/**."""
    dehaze_dir = Path(dehaze_dir)
    candidates = [dehaze_dir / DEHAZE_LIST]
    if data_file_dir is not None:
        candidates.insert(0, Path(data_file_dir) / DEHAZE_LIST)
    hazy = _read_list_file(candidates, dehaze_dir)
    if hazy is None:
        hazy = find_images_recursive(dehaze_dir / "synthetic")
    pairs = [(p, dehaze_partner(p, dehaze_dir)) for p in hazy]
    return _keep_complete_pairs(pairs, f"dehaze {dehaze_dir}")


@dataclass(frozen=True)
class Source:
    """The files of one degradation type: (degraded or None, clean) per image.

    ``synthetic``: the degraded image is made from the clean one on the fly (derain, dehaze
    without real pairs); noise types are always made on the fly and leave this False.
    """

    de_type: str
    items: tuple[tuple[Path | None, Path], ...]
    synthetic: bool = False


def _clean_images(folder: str | Path, de_type: str) -> tuple[tuple[None, Path], ...]:
    images = find_images_recursive(folder)
    if not images:
        raise FileNotFoundError(f"{folder}: no image for {de_type}")
    return tuple((None, path) for path in images)


def _drop_unreadable(
    items: tuple[tuple[Path | None, Path], ...],
) -> tuple[tuple[Path | None, Path], ...]:
    """Items whose files pass ``check_image`` (headers only); each other one is named in a
    warning and skipped, so a bad file is found before the first step, not mid-run."""
    kept, problems = [], {}
    for item in items:
        try:
            for path in item:
                if path is not None and path not in problems:
                    check_image(path)
        except ImageReadError as error:
            problems[path] = str(error)
            continue
        if not any(path in problems for path in item):
            kept.append(item)
    for message in list(problems.values())[:MAX_REPORTED]:
        logger.warning("skipping %s", message)
    if len(problems) > MAX_REPORTED:
        logger.warning("skipping %d more unreadable files", len(problems) - MAX_REPORTED)
    if not kept:
        raise FileNotFoundError(f"no readable training image among {len(items)} files")
    return tuple(kept)


def build_sources(
    de_types: Sequence[str],
    denoise_dir: str | Path,
    derain_dir: str | Path | None,
    dehaze_dir: str | Path | None,
    data_file_dir: str | Path | None = None,
    synthetic: Sequence[str] = (),
) -> list[Source]:
    """Find the files of every type in ``de_types`` (all checked before training starts).

    A type named in ``synthetic`` ("derain", "dehaze") whose real folder is None is made from
    the clean photos of ``denoise_dir``; a real folder, when given, wins.
    """
    sources = []
    for de_type in de_types:
        real_dir = {"derain": derain_dir, "dehaze": dehaze_dir}.get(de_type)
        if de_type in NOISE_SIGMA or de_type == CLEAN:
            source = Source(de_type, _clean_images(denoise_dir, de_type))
        elif de_type in SYNTHESIS and real_dir is None and de_type in synthetic:
            source = Source(de_type, _clean_images(denoise_dir, de_type), synthetic=True)
        elif de_type in SYNTHESIS and real_dir is None:
            raise ValueError(f"{de_type}: no folder of real pairs and no synthetic {de_type}")
        elif de_type == "derain":
            source = Source(de_type, tuple(find_derain_pairs(real_dir, data_file_dir)))
        elif de_type == "dehaze":
            source = Source(de_type, tuple(find_dehaze_pairs(real_dir, data_file_dir)))
        else:
            raise ValueError(f"unknown degradation type {de_type!r}")
        source = Source(source.de_type, _drop_unreadable(source.items), source.synthetic)
        kind = f"clean photos of {denoise_dir}, synthetic" if source.synthetic else "training"
        logger.info("%s: %d %s images", de_type, len(source.items), kind)
        sources.append(source)
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
    """Batches with every degradation type in equal number, the same for any worker count.

    An epoch draws ``epoch_size`` images of each type (shuffled passes over its images) and a
    seed for each sample, all from (seed, epoch). Global batch b holds
    ``batch_size / n_types`` samples of each type, in type order; process ``rank`` of
    ``world_size`` takes batches rank, rank + world_size, ... (as DistributedSampler shards
    samples), so the processes never share a sample and all run the same number of steps.

    Args:
        counts: number of images of each type.
        batch_size: samples per batch and process, a multiple of ``len(counts)``.
        epoch_size: samples of each type per epoch (official 400).
        seed: seed of the whole stream.
        rank, world_size: this process and the number of processes.
    """

    def __init__(
        self,
        counts: Sequence[int],
        batch_size: int,
        epoch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        n_types = len(counts)
        if n_types == 0 or min(counts) <= 0:
            raise ValueError(f"every type needs at least one image, got counts {list(counts)}")
        if batch_size % n_types:
            raise ValueError(f"batch size {batch_size} is not a multiple of {n_types} types")
        self.counts = list(counts)
        self.per_type = batch_size // n_types
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
        """For each type, epoch_size (image index, seed) pairs drawn from (seed, epoch)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        streams = []
        for count in self.counts:
            passes = math.ceil(self.epoch_size / count)
            images = np.concatenate([rng.permutation(count) for _ in range(passes)])
            images = images[: self.epoch_size].tolist()
            seeds = rng.integers(0, 2**63 - 1, size=self.epoch_size).tolist()
            streams.append(list(zip(images, seeds, strict=True)))
        return streams

    def __iter__(self) -> Iterator[list[SampleIndex]]:
        streams = self._epoch_stream()
        for local in range(self.start_batch, self.batches_per_epoch()):
            batch = local * self.world_size + self.rank
            rows = range(batch * self.per_type, (batch + 1) * self.per_type)
            yield [
                (type_index, *streams[type_index][row])
                for row in rows
                for type_index in range(len(self.counts))
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
    """One held-out image: degraded input and clean target, uint8 (H, W, 3)."""

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


def _validation_pairs(de_type: str, folder: Path) -> list[tuple[Path | None, Path]]:
    """(degraded or None, clean) pairs, found as test.py finds its test sets."""
    task = "denoise" if de_type in NOISE_SIGMA or de_type == CLEAN else de_type
    sets = {"denoise": find_denoise_sets, "derain": find_derain_sets, "dehaze": find_dehaze_sets}
    pairs = []
    for image_set in sets[task]([folder]):
        for path, problem in image_set.problems:
            logger.warning("validation %s: %s: %s", de_type, path, problem)
        pairs += [(pair.degraded, pair.target) for pair in image_set.pairs]
    return pairs


def build_validation_set(
    de_types: Sequence[str],
    folders: dict[str, str | Path],
    max_images: int = 4,
    crop: int = 256,
) -> list[ValidationImage]:
    """The first ``max_images`` images of each type (0: all), centre-cropped to ``crop``,
    then to a multiple of 16 as test.py does; noise is added with a fixed seed per image, so
    every validation of a run sees the same inputs.

    ``folders`` maps "denoise", "derain" and "dehaze" to their test folders; ``clean`` takes
    the photos of "denoise" as their own input.
    """
    images = []
    for de_type in de_types:
        folder = Path(folders["denoise" if de_type in NOISE_SIGMA or de_type == CLEAN else de_type])
        pairs = _validation_pairs(de_type, folder)
        if max_images:
            pairs = pairs[:max_images]
        if not pairs:
            raise FileNotFoundError(f"{folder}: no validation image for {de_type}")
        for degraded_path, clean_path in pairs:
            clean = crop_to_multiple(_centre_crop(read_image(clean_path), crop), base=16)
            if de_type == CLEAN:
                degraded = clean
            elif degraded_path is None:
                sigma = NOISE_SIGMA[de_type]
                degraded = add_gaussian_noise(clean, sigma, noise_rng(clean_path.name, sigma))
            else:
                degraded = crop_to_multiple(_centre_crop(read_image(degraded_path), crop), 16)
            if degraded.shape != clean.shape:
                raise ValueError(f"{degraded_path} and {clean_path} differ in size")
            images.append(ValidationImage(de_type, clean_path.stem, degraded, clean))
    return images
