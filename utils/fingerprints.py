"""Fingerprints of benchmark images: which copy of a test set a folder is, and test content in
training data.

Decision 13: a file shipped in ``ckpt/`` never trains or validates on an image whose content is
in a test set we report. The case that made the rule: 67 of the 432 CBSD432 photos (the clean
photos of our noise training) are, pixel for pixel, the backgrounds of 75 of the 100 Rain100L
test pairs (e.g. Rain100L test ``1.png``'s target is CBSD432 ``100075.jpg``).

Every image is known by two hashes (``ImageHashes``):

- **pixels**: the SHA-256 of its shape and decoded uint8 RGB values (``pixel_digest``), so the
  same image in another container (a JPEG's pixels saved as PNG) still matches exactly;
- **phash**: the perceptual hash of imagehash (``imagehash.phash``, the DCT hash of
  hackerfactor.com's "Looks Like It": the 16 x 16 lowest frequencies of the grey image resized
  to 64 x 64, each bit "above the median"; 256 bits), of each of the image's 8 orientations
  (``ORIENTATIONS``), so the same photo resized, re-encoded, flipped or turned by 90 degrees
  matches within ``PERCEPTUAL_THRESHOLD`` bits.

Not caught: a crop of a test image (a 95 % centre crop is already 18-56 bits away), and a
different photo of the same scene unless it was taken from the same place (LOL's training
shots of its test scenes are 2-28 bits away: caught). The distances were measured on CBSD432,
CBSD68, Rain100L, SOTS outdoor and LOL (docs/lab/2026-12-07-benchmark-fingerprints.md).

A benchmark's fingerprint (``Benchmark``: names, sizes and both hashes of its images, nothing
of the images themselves) is a JSON file in ``data/benchmarks/``, written by
``scripts/fingerprint_benchmarks.py`` from a local copy whose origin it records. Three users:
``test.py`` says which copy of a benchmark it scored (``identify_copy``); ``train.py`` and
``--check_data`` name the training and validation images that are test content
(``find_test_content``, through utils/test_content.py); ``scripts/make_split.py
--exclude_test`` leaves them out of a split. Hashes of files are cached between runs
(``HashCache``, keyed by real path, size and modification time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from utils.image_files import ImageReadError, images_under, read_image

logger = logging.getLogger(__name__)

HASH_SIZE = 16  # imagehash.phash(hash_size=16): 16 x 16 DCT coefficients, 256 bits
HASH_BITS = HASH_SIZE * HASH_SIZE
# The most bits in which a benchmark image's pHash and an image's nearest orientation may differ
# for the image to count as that benchmark image. Measured (docs/lab/2026-12-07-benchmark-
# fingerprints.md): re-encoded, resized, flipped and turned copies of the CBSD68 photos differ
# by at most 12 bits (JPEG quality 20), different photos by at least 84 (CBSD432, CBSD68, SOTS
# outdoor and LOL against each other: 771,376 pairs, every orientation); 40 leaves a margin of
# 28 bits above the copies and 44 below the different photos.
PERCEPTUAL_THRESHOLD = 40
# The 8 orientations of the dihedral group, the image as it is first.
ORIENTATIONS = (
    None,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
# Cached hashes are reused only when made the same way.
CACHE_VERSION = f"pixels sha256 v1, imagehash {imagehash.__version__} phash {HASH_SIZE}"
MAX_NAMED = 5  # file names written out in a one-line description before "and N more"


# ---------------------------------------------------------------------------------------------
# The hashes of one image
# ---------------------------------------------------------------------------------------------


def pixel_digest(image: np.ndarray) -> str:
    """SHA-256 (hex) of a uint8 (H, W, 3) image's shape and pixel values.

    Raises:
        ValueError: ``image`` is not uint8 (H, W, 3).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    digest = hashlib.sha256(np.asarray(image.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def perceptual_hashes(image: np.ndarray) -> tuple[str, ...]:
    """The pHash (``HASH_BITS`` bits as hex) of each of the 8 ``ORIENTATIONS`` of a uint8
    (H, W, 3) image, the image as it is first.

    The image is resized once to imagehash's 64 x 64 grey (LANCZOS, as ``imagehash.phash``
    does), and that is turned: a turned copy of a photo then hashes like the photo turned.
    """
    size = 4 * HASH_SIZE  # imagehash's highfreq_factor 4
    grey = Image.fromarray(image).convert("L").resize((size, size), Image.Resampling.LANCZOS)
    return tuple(
        str(imagehash.phash(grey if turn is None else grey.transpose(turn), hash_size=HASH_SIZE))
        for turn in ORIENTATIONS
    )


@dataclass(frozen=True)
class ImageHashes:
    """What is known of one image: its size in pixels, ``pixel_digest`` and the pHash of each
    orientation (``perceptual_hashes``; ``phashes[0]`` is the image as it is)."""

    width: int
    height: int
    pixels: str
    phashes: tuple[str, ...]


def hash_image(image: np.ndarray) -> ImageHashes:
    """``ImageHashes`` of a uint8 (H, W, 3) image (ValueError for anything else)."""
    return ImageHashes(
        image.shape[1], image.shape[0], pixel_digest(image), perceptual_hashes(image)
    )


def default_cache_path() -> Path:
    """Where train.py and test.py keep hashes of image files: ``$XDG_CACHE_HOME/airnet/
    image_hashes.json`` (``~/.cache/airnet/...`` when XDG_CACHE_HOME is not set), outside
    any clone."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "airnet" / "image_hashes.json"


class HashCache:
    """``ImageHashes`` of image files, kept between runs in a JSON file.

    An entry is keyed by the file's real path (a link and its target share it) and holds the
    file's size and modification time (ns): a file changed in place is hashed again. A file
    that cannot be read or written (a read-only home) only costs the time of hashing again,
    with a warning. ``path`` None keeps the hashes in memory only. ``hashed`` and ``reused``
    count the files hashed and the entries reused since the cache was opened.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.hashed = 0
        self.reused = 0
        self._changed = False
        self._entries: dict[str, list] = self._read()

    def _read(self) -> dict[str, list]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            logger.warning("%s: not read (%s); image hashes are made again", self.path, error)
            return {}
        if not isinstance(stored, dict) or stored.get("version") != CACHE_VERSION:
            return {}
        return stored.get("images", {})

    def hashes(self, path: Path) -> ImageHashes:
        """The hashes of the image file ``path``, from the cache when the file is unchanged.

        Raises:
            ImageReadError: the file is missing or cannot be read as an image.
        """
        real = os.path.realpath(path)
        try:
            stat = os.stat(real)
        except OSError as error:
            raise ImageReadError(f"{path}: {error.strerror}") from error
        entry = self._entries.get(real)
        if entry is not None and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            self.reused += 1
            width, height, pixels, phashes = entry[2:]
            return ImageHashes(width, height, pixels, tuple(phashes))
        found = hash_image(read_image(path))
        self._entries[real] = [stat.st_size, stat.st_mtime_ns, *_cache_entry(found)]
        self._changed = True
        self.hashed += 1
        return found

    def save(self) -> None:
        """Write the cache (atomically) when something was hashed; a failure is a warning."""
        if self.path is None or not self._changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"version": CACHE_VERSION, "images": self._entries})
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except OSError as error:
            logger.warning("%s: image hashes not cached (%s)", self.path, error)
            return
        self._changed = False


def _cache_entry(hashes: ImageHashes) -> list:
    """``hashes`` as the cache stores them: [width, height, pixels, [phashes]]."""
    return [hashes.width, hashes.height, hashes.pixels, list(hashes.phashes)]


# ---------------------------------------------------------------------------------------------
# Benchmarks and their fingerprint files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkImage:
    """One image of a benchmark: its name (path in the set, ``/``-separated, e.g.
    ``target/1.png``), size in pixels, ``pixel_digest`` and pHash as it is (hex)."""

    name: str
    width: int
    height: int
    pixels: str
    phash: str


@dataclass(frozen=True)
class Benchmark:
    """The fingerprint of one test set: its name (``Rain100L test``), where the local copy it
    was made from came from, and its images."""

    name: str
    source: str
    images: tuple[BenchmarkImage, ...]


def fingerprint_folder(
    folder: Path, name: str, source: str, cache: HashCache | None = None
) -> Benchmark:
    """The fingerprint of every image under ``folder`` (both sides of pairs), named by their
    paths relative to ``folder``.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ImageReadError: an image cannot be read (a test set must be whole to be known).
    """
    cache = cache or HashCache(None)
    images = []
    for path in sorted(images_under(folder)):
        found = cache.hashes(path)
        images.append(
            BenchmarkImage(
                Path(os.path.relpath(path, folder)).as_posix(),
                found.width,
                found.height,
                found.pixels,
                found.phashes[0],
            )
        )
    return Benchmark(name, source, tuple(images))


def write_fingerprint(benchmark: Benchmark, path: Path) -> None:
    """Write ``benchmark`` as JSON, one image per line (small, readable, diffable)."""
    head = {
        "benchmark": benchmark.name,
        "source": benchmark.source,
        "made_by": "scripts/fingerprint_benchmarks.py",
        "hashes": (
            "pixels: SHA-256 of the shape (int64) and the decoded uint8 RGB values; phash: "
            f"imagehash.phash, hash_size {HASH_SIZE} ({HASH_BITS} bits, hex), of the image as "
            "stored (utils/fingerprints.py)"
        ),
        "images": len(benchmark.images),
    }
    lines = [json.dumps(asdict(image)) for image in benchmark.images]
    text = json.dumps(head, indent=2)[:-2] + ',\n  "list": [\n    '
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + ",\n    ".join(lines) + "\n  ]\n}\n")


def read_fingerprint(path: Path) -> Benchmark:
    """The benchmark of a fingerprint file written by ``write_fingerprint``.

    Raises:
        ValueError: the file is not such a fingerprint (the message names it).
        OSError: the file cannot be read.
    """
    try:
        stored = json.loads(Path(path).read_text())
        images = tuple(BenchmarkImage(**image) for image in stored["list"])
        return Benchmark(stored["benchmark"], stored["source"], images)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a benchmark fingerprint ({error})") from error


def load_benchmarks(folder: Path = BENCHMARKS_DIR) -> list[Benchmark]:
    """Every fingerprint in ``folder`` (``*.json``), by file name; none when it is missing.

    Raises:
        ValueError: a file there is not a fingerprint.
    """
    return [read_fingerprint(path) for path in sorted(Path(folder).glob("*.json"))]


def load_references(paths: Iterable[Path], cache: HashCache | None = None) -> list[Benchmark]:
    """The benchmarks that ``paths`` name: a fingerprint file (``.json``), a folder of them
    (``data/benchmarks``), or a folder of test images, fingerprinted here and named by its
    path (``scripts/make_split.py --exclude_test``).

    Raises:
        FileNotFoundError: a path is missing.
        ValueError: a ``.json`` file is not a fingerprint.
        ImageReadError: a test image cannot be read.
    """
    benchmarks = []
    for path in map(Path, paths):
        if path.is_file() and path.suffix == ".json":
            benchmarks.append(read_fingerprint(path))
        elif path.is_dir() and any(path.glob("*.json")) and not images_under(path):
            benchmarks += load_benchmarks(path)
        else:
            benchmarks.append(fingerprint_folder(path, str(path), f"the folder {path}", cache))
    return benchmarks


# ---------------------------------------------------------------------------------------------
# Comparing images with benchmarks
# ---------------------------------------------------------------------------------------------


def popcount(words: np.ndarray) -> np.ndarray:
    """The number of set bits of each uint64 in ``words`` (``np.bitwise_count`` from numpy 2;
    the same by the SWAR steps of Hacker's Delight 5-1 on numpy 1, which torch < 2.3 needs)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    words = words - ((words >> np.uint64(1)) & np.uint64(0x5555555555555555))
    words = (words & np.uint64(0x3333333333333333)) + (
        (words >> np.uint64(2)) & np.uint64(0x3333333333333333)
    )
    words = (words + (words >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((words * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.uint8)


def _bits(phashes: Sequence[str]) -> np.ndarray:
    """Hex pHashes -> (len, HASH_BITS / 64) uint64 rows."""
    raw = b"".join(bytes.fromhex(phash) for phash in phashes)
    return np.frombuffer(raw, dtype=np.uint64).reshape(len(phashes), HASH_BITS // 64)


def perceptual_distances(queries: Sequence[ImageHashes], references: Sequence[str]) -> np.ndarray:
    """(len(queries), len(references)) int: the bits in which each reference pHash differs
    from the nearest of the query's 8 orientations (0 to ``HASH_BITS``)."""
    if not queries or not references:
        return np.zeros((len(queries), len(references)), dtype=np.int64)
    words = HASH_BITS // 64
    query = _bits([phash for q in queries for phash in q.phashes])
    query = query.reshape(len(queries), len(ORIENTATIONS), 1, words)  # (n, 8, 1, words)
    reference = _bits(references)[None, None]  # (1, 1, m, words)
    chunk = max(1, 2**22 // (len(ORIENTATIONS) * len(references) * words))
    parts = [
        popcount(query[i : i + chunk] ^ reference).sum(axis=-1).min(axis=1)
        for i in range(0, len(queries), chunk)
    ]
    return np.concatenate(parts).astype(np.int64)


@dataclass(frozen=True)
class Match:
    """An image found in a benchmark: the benchmark's name, its image's name, the pHash
    distance in bits (nearest orientation) and whether the decoded pixels are equal."""

    benchmark: str
    image: str
    distance: int
    exact: bool


def find_test_content(
    images: Iterable[Path],
    benchmarks: Sequence[Benchmark],
    cache: HashCache | None = None,
    threshold: int = PERCEPTUAL_THRESHOLD,
) -> dict[Path, list[Match]]:
    """Each of ``images`` that is a benchmark image -> its matches, nearest first: equal
    decoded pixels, or a pHash within ``threshold`` bits in some orientation (the same photo
    resized, re-encoded, flipped or turned). An unreadable image is not test content (training
    names it when it skips it). ``cache`` (default: in memory) is not saved here.
    """
    cache = cache or HashCache(None)
    readable = {}
    for path in dict.fromkeys(map(Path, images)):
        try:
            readable[path] = cache.hashes(path)
        except ImageReadError:
            continue
    references = [(b.name, image) for b in benchmarks for image in b.images]
    distances = perceptual_distances(
        list(readable.values()), [image.phash for _, image in references]
    )
    found = {}
    for row, (path, hashes) in zip(distances, readable.items(), strict=True):
        near = np.flatnonzero(row <= threshold)
        if near.size:
            found[path] = sorted(
                (
                    Match(name, image.name, int(row[j]), image.pixels == hashes.pixels)
                    for j in near
                    for name, image in [references[j]]
                ),
                key=lambda match: (not match.exact, match.distance, match.benchmark, match.image),
            )
    return found


# ---------------------------------------------------------------------------------------------
# Which copy of a benchmark a folder is
# ---------------------------------------------------------------------------------------------


def _named(names: Sequence[str]) -> str:
    """The first MAX_NAMED names, then how many more."""
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


@dataclass
class CopyReport:
    """How a folder of test images compares with the nearest benchmark fingerprint.

    ``images``: the files compared (names relative to the folder). ``benchmark``: the
    fingerprint that explains most of them, None when none does; ``total`` its images.
    ``missing``: its images not found; ``extra``: files that are none of its images;
    ``changed``: (file, its image, pHash distance) for a file that is one of its images
    re-encoded, resized or turned; ``renamed``: (file, its image) with equal pixels under
    another name; ``unreadable``: files that could not be compared.
    """

    images: int
    benchmark: str | None = None
    total: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, int]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def present(self) -> int:
        """The benchmark's images found in the folder."""
        return self.total - len(self.missing)

    @property
    def identical(self) -> bool:
        """Every image of the benchmark, pixel for pixel, and nothing else (names aside)."""
        differences = self.missing or self.extra or self.changed or self.unreadable
        return self.benchmark is not None and not differences

    def describe(self) -> str:
        """One line: ``identical to the fingerprint of CBSD68 (68 images)``, how the folder
        differs from its nearest fingerprint, or ``no known benchmark (N images)``."""
        if self.benchmark is None:
            return f"no known benchmark ({self.images} images)"
        if self.identical:
            text = f"identical to the fingerprint of {self.benchmark} ({self.total} images)"
        else:
            text = f"{self.benchmark}, differs: {self.present} of {self.total} present"
            if self.missing:
                text += f"; missing {len(self.missing)}: {_named(self.missing)}"
            if self.extra:
                text += f"; extra {len(self.extra)}: {_named(self.extra)}"
            if self.changed:
                changed = [
                    f"{file} ({distance} bits" + (f" from {image})" if image != file else ")")
                    for file, image, distance in self.changed
                ]
                text += (
                    f"; changed {len(self.changed)} (re-encoded, resized or turned): "
                    f"{_named(changed)}"
                )
            if self.unreadable:
                text += f"; unreadable {len(self.unreadable)}: {_named(self.unreadable)}"
        if self.renamed:
            renamed = [f"{file} = {image}" for file, image in self.renamed]
            text += f"; under other names {len(self.renamed)}: {_named(renamed)}"
        return text

    def as_json(self) -> dict:
        """The report as summary.json records it (every name listed)."""
        return {
            "description": self.describe(),
            "benchmark": self.benchmark,
            "identical": self.identical,
            "images": self.images,
            "present": self.present,
            "total": self.total,
            "missing": self.missing,
            "extra": self.extra,
            "changed": [
                {"file": file, "image": image, "distance": distance}
                for file, image, distance in self.changed
            ],
            "renamed": [{"file": file, "image": image} for file, image in self.renamed],
            "unreadable": self.unreadable,
        }


def _compare(files: Mapping[str, ImageHashes], benchmark: Benchmark, threshold: int) -> CopyReport:
    """Pair the files with the benchmark's images, each image at most once: equal pixels
    under the same name, then equal pixels under another name, then the nearest pHash within
    ``threshold`` (the same name first)."""
    report = CopyReport(len(files), benchmark.name, len(benchmark.images))
    by_name = {image.name: image for image in benchmark.images}
    by_pixels: dict[str, list[str]] = {}
    for image in benchmark.images:
        by_pixels.setdefault(image.pixels, []).append(image.name)
    free = dict.fromkeys(by_name)  # the images not yet paired, in order
    rest = []
    for name, hashes in files.items():
        if name in free and by_name[name].pixels == hashes.pixels:
            del free[name]
        else:
            rest.append(name)
    unpaired = []
    for name in rest:
        image = next((n for n in by_pixels.get(files[name].pixels, []) if n in free), None)
        if image is None:
            unpaired.append(name)
        else:
            del free[image]
            report.renamed.append((name, image))
    candidates = list(free)
    distances = perceptual_distances(
        [files[name] for name in unpaired], [by_name[n].phash for n in candidates]
    )
    for name, row in zip(unpaired, distances, strict=True):
        order = sorted(
            (candidates[j] != name, int(row[j]), candidates[j])
            for j in np.flatnonzero(row <= threshold)
        )
        image = next((n for _, _, n in order if n in free), None)
        if image is None:
            report.extra.append(name)
        else:
            del free[image]
            report.changed.append((name, image, int(row[candidates.index(image)])))
    report.missing = list(free)
    return report


def identify_copy(
    files: Mapping[str, Path],
    benchmarks: Sequence[Benchmark],
    cache: HashCache | None = None,
    threshold: int = PERCEPTUAL_THRESHOLD,
) -> CopyReport:
    """Which benchmark a folder of test images is, by content (never by its name).

    Args:
        files: every image of the folder, by its name relative to the folder.
        benchmarks: the fingerprints to compare with (``load_benchmarks``).
        cache: hashes of files from earlier runs (default: in memory).
        threshold: pHash bits within which a file is a benchmark image changed.

    Returns:
        The comparison with the benchmark that pairs the most files (ties: the fewest
        missing); ``benchmark`` None when no file is any benchmark's image.
    """
    cache = cache or HashCache(None)
    hashes, unreadable = {}, []
    for name, path in files.items():
        try:
            hashes[name] = cache.hashes(path)
        except ImageReadError:
            unreadable.append(name)
    best, best_score = None, (0, 0)
    for benchmark in benchmarks:
        report = _compare(hashes, benchmark, threshold)
        score = (len(hashes) - len(report.extra), -len(report.missing))  # paired, missing
        if score[0] and (best is None or score > best_score):
            best, best_score = report, score
    if best is None:
        return CopyReport(len(files), unreadable=unreadable)
    best.images, best.unreadable = len(files), unreadable
    return best
