"""Benchmark fingerprints (issue 30): an exact copy, a re-encoded and a turned copy of a test
image are found and an unrelated photo is not; which copy of a benchmark a folder is; the hash
cache; the committed fingerprints of data/benchmarks/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils import fingerprints
from utils.fingerprints import (
    PERCEPTUAL_THRESHOLD,
    HashCache,
    default_cache_path,
    find_test_content,
    fingerprint_folder,
    identify_copy,
    load_benchmarks,
    load_references,
    read_fingerprint,
    write_fingerprint,
)

REPO = Path(__file__).resolve().parents[1]


def photo(seed: int, height: int = 64, width: int = 96) -> np.ndarray:
    """A random colour image with detail at every frequency pHash reads, as a photo has: a
    16 x 24 grid of random colours, bicubic-upsampled. (A smoother image, with nothing above
    the lowest frequencies, has pHash bits that any change flips.)"""
    grid = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC))


def save(path: Path, image: np.ndarray, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, **options)
    return path


@pytest.fixture
def benchmark(tmp_path) -> Path:
    """A test set of three pairs: input/N.png + target/N.png, photos of seeds 1-3."""
    for index in (1, 2, 3):
        clean = photo(index)
        save(tmp_path / "bench/target" / f"{index}.png", clean)
        save(tmp_path / "bench/input" / f"{index}.png", clean // 2 + 60)
    return tmp_path / "bench"


def test_copies_are_found_and_an_unrelated_photo_is_not(tmp_path, benchmark):
    clean = photo(2)
    files = {
        "exact": save(tmp_path / "train/exact.bmp", clean),  # another container, same pixels
        "reencoded": save(tmp_path / "train/reencoded.jpg", clean, quality=75),
        "resized": save(
            tmp_path / "train/resized.png", np.asarray(Image.fromarray(clean).resize((48, 32)))
        ),
        "turned": save(tmp_path / "train/turned.png", np.rot90(clean)),
        "flipped": save(tmp_path / "train/flipped.jpg", clean[:, ::-1], quality=90),
        "unrelated": save(tmp_path / "train/unrelated.png", photo(9)),
    }
    found = find_test_content(files.values(), [fingerprint_folder(benchmark, "Bench", "here")])
    assert set(found) == set(files.values()) - {files["unrelated"]}
    exact = found[files["exact"]][0]
    assert (exact.benchmark, exact.image, exact.exact, exact.distance) == (
        "Bench",
        "target/2.png",
        True,
        0,
    )
    for name in ("reencoded", "resized", "turned", "flipped"):
        # the same photo: its target, and its degraded input (darker, less contrast) too
        assert {m.image for m in found[files[name]]} == {"input/2.png", "target/2.png"}
        assert not any(m.exact for m in found[files[name]])
        assert found[files[name]][0].distance <= PERCEPTUAL_THRESHOLD // 2, name


def test_a_fingerprint_file_holds_names_sizes_and_hashes_only(tmp_path, benchmark):
    made = fingerprint_folder(benchmark, "Bench", "made here from seeds 1-3")
    write_fingerprint(made, tmp_path / "bench.json")
    assert read_fingerprint(tmp_path / "bench.json") == made
    stored = json.loads((tmp_path / "bench.json").read_text())
    assert stored["benchmark"] == "Bench" and stored["source"] == "made here from seeds 1-3"
    assert [image["name"] for image in stored["list"]] == [
        "input/1.png", "input/2.png", "input/3.png",
        "target/1.png", "target/2.png", "target/3.png",
    ]  # fmt: skip
    assert set(stored["list"][0]) == {"name", "width", "height", "pixels", "phash"}
    assert (tmp_path / "bench.json").stat().st_size < 3000  # nothing of the pixels


def test_a_folder_is_identified_by_content_not_by_name(tmp_path, benchmark):
    benchmarks = [fingerprint_folder(benchmark, "Bench", "here")]
    same = {
        f"{side}/{i}.png": benchmark / side / f"{i}.png"
        for side in ("input", "target")
        for i in (1, 2, 3)
    }
    report = identify_copy(same, benchmarks)
    assert report.identical
    assert report.describe() == "identical to the fingerprint of Bench (6 images)"

    renamed = dict(same)
    renamed["rainy/rain-1.png"] = renamed.pop("input/1.png")
    report = identify_copy(renamed, benchmarks)
    assert report.identical and report.renamed == [("rainy/rain-1.png", "input/1.png")]

    differs = dict(same)
    del differs["input/3.png"]
    differs["target/2.jpg"] = save(tmp_path / "copy/target/2.jpg", photo(2), quality=70)
    del differs["target/2.png"]
    differs["extra.png"] = save(tmp_path / "copy/extra.png", photo(9))
    report = identify_copy(differs, benchmarks)
    assert not report.identical
    assert report.missing == ["input/3.png"] and report.extra == ["extra.png"]
    assert [(file, image) for file, image, _ in report.changed] == [
        ("target/2.jpg", "target/2.png")
    ]
    text = report.describe()
    assert text.startswith("Bench, differs: 5 of 6 present; missing 1: input/3.png; extra 1: ")
    assert "changed 1 (re-encoded, resized or turned): target/2.jpg (" in text
    assert " bits from target/2.png)" in text

    unknown = identify_copy({"a.png": save(tmp_path / "other/a.png", photo(11))}, benchmarks)
    assert unknown.benchmark is None and unknown.describe() == "no known benchmark (1 images)"


def test_the_nearest_of_several_benchmarks_is_named(tmp_path, benchmark):
    """A folder of targets only is its own benchmark's copy, not the pairs' that share them."""
    targets = fingerprint_folder(benchmark / "target", "Targets", "here")
    pairs = fingerprint_folder(benchmark, "Pairs", "here")
    files = {f"{i}.png": benchmark / "target" / f"{i}.png" for i in (1, 2, 3)}
    assert identify_copy(files, [pairs, targets]).describe() == (
        "identical to the fingerprint of Targets (3 images)"
    )


def test_hashes_are_cached_by_path_size_and_time(tmp_path, benchmark, monkeypatch):
    cache_path = tmp_path / "cache/hashes.json"
    image = benchmark / "target/1.png"
    first = HashCache(cache_path).hashes(image)  # not saved: nothing reused below
    cache = HashCache(cache_path)
    cache.hashes(image)
    cache.save()
    assert cache.hashed == 1 and cache_path.is_file()

    def refuse(image):
        raise AssertionError("hashed again")

    monkeypatch.setattr(fingerprints, "hash_image", refuse)
    again = HashCache(cache_path)
    assert again.hashes(image) == first and again.reused == 1
    save(image, photo(5))  # changed in place: size or time differs
    monkeypatch.undo()
    changed = HashCache(cache_path)
    assert changed.hashes(image) != first and changed.hashed == 1


def test_the_cache_lives_outside_the_clone(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "airnet" / "image_hashes.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_path() == Path.home() / ".cache" / "airnet" / "image_hashes.json"


def test_references_are_fingerprint_files_or_folders(tmp_path, benchmark):
    write_fingerprint(fingerprint_folder(benchmark, "Bench", "here"), tmp_path / "fp/bench.json")
    by_file = load_references([tmp_path / "fp/bench.json"])
    by_folder_of_files = load_references([tmp_path / "fp"])
    by_images = load_references([benchmark])
    assert by_file == by_folder_of_files
    assert [b.images for b in by_images] == [b.images for b in by_file]


# (file, benchmark name, images, where the copy came from)
COMMITTED = {
    "CBSD68.json": ("CBSD68", 68, "cszn/FFDNet"),
    "Rain100L_test.json": ("Rain100L test", 200, "KaneWANG0816/RGR"),
    "SOTS_outdoor.json": ("SOTS outdoor", 992, "YuZheng9/C2PNet commit 9c6d113"),
    "LOL_eval15.json": ("LOL eval15", 30, "Genie-Usman/ImageRestoration-Consistency"),
    "CBSD68_synthetic_blur.json": ("CBSD68 synthetic blur", 136, "make_deblur_testset.py"),
}


def test_the_committed_fingerprints():
    benchmarks = {b.name: b for b in load_benchmarks()}
    assert sorted(benchmarks) == sorted(name for name, _, _ in COMMITTED.values())
    for file, (name, count, source) in COMMITTED.items():
        assert read_fingerprint(REPO / "data/benchmarks" / file) == benchmarks[name]
        assert len(benchmarks[name].images) == count and source in benchmarks[name].source
    sots = {image.name.split("/")[0] for image in benchmarks["SOTS outdoor"].images}
    assert sots == {"input", "target"}
    # Two of our test sets share content: 25 Rain100L test targets are CBSD68 photos.
    cbsd68 = {image.pixels for image in benchmarks["CBSD68"].images}
    shared = [i.name for i in benchmarks["Rain100L test"].images if i.pixels in cbsd68]
    assert len(shared) == 25 and all(name.startswith("target/") for name in shared)


@pytest.mark.parametrize("numpy_2", [True, False])
def test_popcount_with_and_without_numpy_2(monkeypatch, numpy_2):
    words = np.random.default_rng(0).integers(0, 2**64, 1000, dtype=np.uint64)
    words[:3] = [0, 2**64 - 1, 2**63]
    if not numpy_2:
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    counts = fingerprints.popcount(words)
    assert counts.tolist() == [bin(int(word)).count("1") for word in words]
