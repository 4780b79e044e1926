"""Data of the five-task setting: the validation split's LOL and blur parts
(scripts/make_split.py), the synthetic-deblur test set (scripts/make_deblur_testset.py) and the
classical LOL baseline (scripts/lol_baseline.py), on tiny generated folders."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.fingerprints import fingerprint_folder, write_fingerprint
from utils.metrics import psnr
from utils.pairing import find_pairs

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"airnet_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make_split = load_script("make_split")
make_deblur_testset = load_script("make_deblur_testset")
lol_baseline = load_script("lol_baseline")


def write(path: Path, seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return image


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def clean_dir(tmp_path) -> Path:
    for index in range(6):
        write(tmp_path / "clean" / f"p{index}.png", 100 + index)
    return tmp_path / "clean"


@pytest.fixture
def lol(tmp_path) -> Path:
    """A LOL root: our485 with 10 pairs, of which 3 share one high image and 2 another
    (as LOL's byte-identical high images), and eval15."""
    root = tmp_path / "LOLdataset"
    high_seed = {0: 50, 1: 50, 2: 50, 3: 60, 4: 60}
    for index in range(10):
        write(root / "our485/low" / f"{index}.png", index)
        write(root / "our485/high" / f"{index}.png", high_seed.get(index, 70 + index))
    write(root / "eval15/low/1.png", 90)
    write(root / "eval15/high/1.png", 91)
    return root


def split(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    output = tmp_path / "split"
    argv = ["--clean_dir", str(tmp_path / "clean"), "--output", str(output), "--val_clean", "2"]
    return make_split.main([*argv, *extra]), output


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_identical_lol_targets_stay_on_one_side(tmp_path, clean_dir, lol, count):
    for seed in range(4):
        output = tmp_path / f"split{seed}"
        argv = ["--clean_dir", str(clean_dir), "--output", str(output), "--val_clean", "2"]
        argv += ["--lowlight_dir", str(lol), "--val_lowlight", str(count), "--seed", str(seed)]
        code = make_split.main(argv)
        assert code == 0
        val = find_pairs("lowlight", output / "val/lowlight", "val")
        train = find_pairs("lowlight", output / "train/lowlight")
        assert val.problems == [] and train.problems == []
        assert len(val.pairs) == count and len(train.pairs) == 10 - count
        val_targets = {digest(p.clean) for p in val.pairs}
        train_targets = {digest(p.clean) for p in train.pairs}
        assert val_targets.isdisjoint(train_targets)
        # our485 only: never eval15
        assert all("eval15" not in p.clean.resolve().parts for p in val.pairs + train.pairs)


def test_lol_test_set_is_refused(tmp_path, clean_dir, lol, capsys):
    for folder in (lol / "eval15", tmp_path / "test/LOL"):
        if not folder.exists():
            write(folder / "low/1.png", 1)
            write(folder / "high/1.png", 2)
        code, output = split(tmp_path, "--lowlight_dir", str(folder))
        assert code == 2
        message = capsys.readouterr().err.strip()
        assert len(message.splitlines()) == 1 and "--lowlight_dir" in message
        assert str(folder) in message and "test set" in message
        assert not output.exists()  # checked before anything is written


def test_val_deblur_writes_seeded_blur_on_the_held_out_photos(tmp_path, clean_dir):
    code, output = split(tmp_path, "--val_deblur")
    assert code == 0
    scan = find_pairs("deblur", output / "val/deblur", "val")
    held_out = sorted(p.name for p in (output / "val/denoise").iterdir())
    assert sorted(Path(p.name).stem for p in scan.pairs) == [Path(n).stem for n in held_out]
    first = {p.name: np.asarray(Image.open(p.degraded)) for p in scan.pairs}
    for pair in scan.pairs:
        clean = np.asarray(Image.open(pair.clean))
        assert first[pair.name].shape == clean.shape and not np.array_equal(first[pair.name], clean)
    assert split(tmp_path, "--val_deblur")[0] == 0  # again: the same images
    for pair in find_pairs("deblur", output / "val/deblur", "val").pairs:
        assert np.array_equal(np.asarray(Image.open(pair.degraded)), first[pair.name])
    plain = tmp_path / "plain"
    argv = ["--clean_dir", str(clean_dir), "--output", str(plain), "--val_clean", "2"]
    assert make_split.main(argv) == 0
    assert not (plain / "val/deblur").exists()


def test_derain_split_pairs_through_the_pairing_module(tmp_path, clean_dir):
    for index in range(5):
        write(tmp_path / "rain/rainy" / f"rain-{index}.png", index)
        write(tmp_path / "rain/gt" / f"norain-{index}.png", 10 + index)
    write(tmp_path / "rain/rainy/rain-9.png", 9)  # no partner: reported, skipped
    code, output = split(tmp_path, "--derain_dir", str(tmp_path / "rain"), "--val_derain", "2")
    assert code == 0
    train = find_pairs("derain", output / "train/derain")
    val = find_pairs("derain", output / "val/derain", "val")
    assert len(train.pairs) == 3 and len(val.pairs) == 2
    assert train.problems == [] and val.problems == []
    assert all(p.clean.resolve().name == "no" + p.degraded.resolve().name for p in val.pairs)


def test_exclude_test_leaves_out_test_images_and_their_changed_copies(tmp_path, clean_dir):
    """--exclude_test takes fingerprints (a file, or a folder of them) or a folder of test
    images: a photo with a test image's pixels, and one that is a test image flipped, are
    left out and listed (issue 30: the fingerprints and decision 13's exclusion are one)."""
    tests = tmp_path / "tests/Set"
    tests.mkdir(parents=True)
    Image.open(clean_dir / "p1.png").save(tests / "a.bmp")  # same pixels, another container
    Image.fromarray(np.asarray(Image.open(clean_dir / "p2.png"))[:, ::-1]).save(tests / "b.png")
    write(tmp_path / "rain/rainy/rain-1.png", 1)
    write(tmp_path / "rain/rainy/rain-2.png", 2)
    write(tmp_path / "rain/gt/norain-2.png", 3)
    Image.open(clean_dir / "p1.png").save(tmp_path / "rain/gt/norain-1.png")  # a test target
    write_fingerprint(fingerprint_folder(tmp_path / "tests", "Set", "here"), tmp_path / "fp/s.json")
    for index, reference in enumerate(
        [tmp_path / "tests", tmp_path / "fp", tmp_path / "fp/s.json"]
    ):
        output = tmp_path / f"split{index}"
        argv = ["--clean_dir", str(clean_dir), "--output", str(output), "--val_clean", "2"]
        argv += ["--derain_dir", str(tmp_path / "rain"), "--val_derain", "0"]
        assert make_split.main([*argv, "--exclude_test", str(reference)]) == 0
        kept = [p.name for part in ("train", "val") for p in (output / part / "denoise").iterdir()]
        assert sorted(kept) == ["p0.png", "p3.png", "p4.png", "p5.png"]
        assert [p.name for p in (output / "train/derain/rainy").iterdir()] == ["rain-2.png"]
        listed = (output / "excluded_test_content.txt").read_text().splitlines()
        assert [line.split("\t")[0] for line in listed] == [
            str(clean_dir / "p1.png"),
            str(clean_dir / "p2.png"),
            str(tmp_path / "rain/gt/norain-1.png"),
        ]


def test_deblur_testset_is_fixed_and_in_input_target_layout(tmp_path, clean_dir, capsys):
    write(clean_dir / "p0.jpg", 7)  # a second p0: its own output, not p0's
    first, again = tmp_path / "a/CBSD68_synthetic_blur", tmp_path / "b/CBSD68_synthetic_blur"
    assert make_deblur_testset.main(["--clean_dir", str(clean_dir), "--output", str(first)]) == 0
    assert make_deblur_testset.main(["--clean_dir", str(clean_dir), "--output", str(again)]) == 0
    scan = find_pairs("deblur", first, "test")
    assert scan.problems == [] and len(scan.pairs) == 7
    assert {p.name for p in scan.pairs} >= {"p0_png.png", "p0_jpg.png"}
    for pair in scan.pairs:
        assert (again / "input" / pair.name).read_bytes() == pair.degraded.read_bytes()
    blurred = [np.asarray(Image.open(p.degraded), dtype=float) for p in scan.pairs]
    clean = [np.asarray(Image.open(p.clean), dtype=float) for p in scan.pairs]
    assert all(b.std() < c.std() for b, c in zip(blurred, clean, strict=True))
    kernels = np.load(first / "kernels.npz")
    assert sorted(kernels.files) == sorted(Path(p.name).stem for p in scan.pairs)
    assert all(kernels[name].sum() == pytest.approx(1.0, abs=1e-5) for name in kernels.files)
    record = json.loads((first / "proxy.json").read_text())
    assert "not GoPro" in record["proxy"] and record["images"] == 7 and record["seed"] == 0
    other = tmp_path / "seed1"
    argv = ["--clean_dir", str(clean_dir), "--output", str(other), "--seed", "1"]
    assert make_deblur_testset.main(argv) == 0
    assert (other / "input/p1.png").read_bytes() != (first / "input/p1.png").read_bytes()
    capsys.readouterr()
    missing = tmp_path / "nowhere"
    assert make_deblur_testset.main(["--clean_dir", str(missing), "--output", str(other)]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and str(missing) in message


def test_lol_baseline_psnr_from_statistics_equals_the_metric():
    rng = np.random.default_rng(0)
    pairs = [
        (rng.integers(0, 60, (12, 14, 3), dtype=np.uint8), rng.integers(0, 256, (12, 14, 3)))
        for _ in range(3)
    ]
    pairs = [(low, high.astype(np.uint8)) for low, high in pairs]
    stats = np.stack([lol_baseline.pixel_statistics(low, high) for low, high in pairs])
    for gamma, gain in [(0.5, 2.0), (0.8, 3.5), (1.0, 1.0)]:
        expected = np.mean(
            [psnr(lol_baseline.enhance(low, gamma, gain), high) for low, high in pairs]
        )
        from_stats = lol_baseline.mean_psnr(lol_baseline.curve(gamma, np.array([gain])), stats)
        assert from_stats[0] == pytest.approx(expected, abs=1e-9)


def test_lol_baseline_recovers_a_known_curve(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for split, count in (("our485", 4), ("eval15", 2)):
        for index in range(count):
            low = rng.integers(0, 80, (16, 20, 3), dtype=np.uint8)
            low[0, 0] = 0
            high = lol_baseline.enhance(low, 0.6, 1.8)
            for folder, image in (("low", low), ("high", high)):
                path = tmp_path / "LOL" / split / folder / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
    stats = np.stack(
        [
            lol_baseline.pixel_statistics(
                np.asarray(Image.open(p.degraded)), np.asarray(Image.open(p.clean))
            )
            for p in find_pairs("lowlight", tmp_path / "LOL").pairs
        ]
    )
    gamma, gain, train_psnr = lol_baseline.fit_gamma_gain(stats)
    assert gamma == pytest.approx(0.6, abs=0.01) and gain == pytest.approx(1.8, rel=0.02)
    assert train_psnr > 45
    argv = ["--train_dir", str(tmp_path / "LOL"), "--test_dir", str(tmp_path / "LOL")]
    assert lol_baseline.main(argv) == 0
    printed = capsys.readouterr().out
    assert "fitted on 4 training pairs" in printed and "2, full size" in printed
    missing = tmp_path / "nowhere"
    assert (
        lol_baseline.main(["--train_dir", str(tmp_path / "LOL"), "--test_dir", str(missing)]) == 2
    )
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and str(missing) in message


def test_exclude_test_leaves_out_training_images_with_a_test_image_s_pixels(tmp_path, clean_dir):
    """Decision 13: a clean photo whose decoded pixels are a test target's (in another
    container: same pixels), a near copy (one value off: the same photo by its perceptual
    hash) and a rain pair whose background is a test image are left out of train and val, and
    listed."""
    photo = np.asarray(Image.open(clean_dir / "p3.png"))
    test = tmp_path / "Rain100L_test"
    (test / "target").mkdir(parents=True)
    Image.fromarray(photo).save(test / "target" / "1.bmp")
    write(test / "input" / "1.png", 200)
    near = photo.copy()
    near[0, 0, 0] ^= 1
    Image.fromarray(near).save(clean_dir / "near.png")
    for index in range(4):
        write(tmp_path / "rain/rainy" / f"rain-{index}.png", index)
        write(tmp_path / "rain/gt" / f"norain-{index}.png", 10 + index)
    Image.fromarray(photo).save(tmp_path / "rain/gt/norain-0.png")  # background = test image
    code, output = split(
        tmp_path,
        "--derain_dir", str(tmp_path / "rain"), "--val_derain", "1",
        "--exclude_test", str(test),
    )  # fmt: skip
    assert code == 0
    kept = {p.name for part in ("train", "val") for p in (output / part / "denoise").iterdir()}
    assert kept == {"p0.png", "p1.png", "p2.png", "p4.png", "p5.png"}
    rain = find_pairs("derain", output / "train/derain").pairs
    rain += find_pairs("derain", output / "val/derain", "val").pairs
    names = sorted(p.degraded.resolve().name for p in rain)
    assert names == ["rain-1.png", "rain-2.png", "rain-3.png"]
    listed = (output / "excluded_test_content.txt").read_text().splitlines()
    names = sorted(Path(line.split("\t")[0]).name for line in listed)
    assert names == ["near.png", "norain-0.png", "p3.png"]
    assert all("target/1.bmp" in line for line in listed)


def test_validation_haze_names_its_parameters_and_is_seeded(tmp_path, clean_dir):
    code, output = split(tmp_path)
    assert code == 0
    hazy = sorted((output / "val/dehaze/input").iterdir())
    assert len(hazy) == 2
    for path in hazy:  # <stem>_<A>_<beta>.png, RESIDE's naming, within OTS's grid
        stem, atmosphere, beta = path.stem.rsplit("_", 2)
        assert 0.8 <= float(atmosphere) <= 1.0 and 0.04 <= float(beta) <= 0.2
        assert (output / "val/dehaze/target" / f"{stem}.png").is_file()
    argv = ["--clean_dir", str(clean_dir), "--output", str(tmp_path / "again"), "--val_clean", "2"]
    assert make_split.main(argv) == 0
    again = sorted((tmp_path / "again/val/dehaze/input").iterdir())
    assert [p.name for p in again] == [p.name for p in hazy]
    assert all(digest(a) == digest(b) for a, b in zip(again, hazy, strict=True))
