"""Training data: finding pairs, patches, and batches balanced whatever the worker count."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from utils.image_io import read_image
from utils.train_dataset import (
    BalancedBatchSampler,
    DataError,
    TrainDataset,
    build_sources,
    build_validation_set,
    scan_training_data,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DENOISE = REPO / "data" / "train" / "denoise"
ALL_TYPES = ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95)


def make_training_folders(root: Path, size: int = 64) -> dict[str, Path]:
    """Small training folders in the standard layouts, made from the committed sample photos:
    denoise/ (clean photos and a .DS_Store), derain/{rainy,gt}/ with synthetic streaks,
    dehaze/{synthetic/part1,original}/ with synthetic haze I * t + A * (1 - t)."""
    photos = sorted(SAMPLE_DENOISE.glob("*.jpg"))[:3]
    rng = np.random.default_rng(0)
    for index, photo in enumerate(photos, start=1):
        clean = read_image(photo)[:size, :size]
        _save(root / "denoise" / f"{photo.stem}.png", clean)
        streaks = np.zeros(clean.shape[:2])
        streaks[:, rng.choice(size, size // 8, replace=False)] = 80.0
        rainy = np.clip(clean + streaks[..., None], 0, 255).astype(np.uint8)
        _save(root / "derain" / "rainy" / f"rain-{index}.png", rainy)
        _save(root / "derain" / "gt" / f"norain-{index}.png", clean)
        hazy = (clean * 0.6 + 0.4 * 0.8 * 255).astype(np.uint8)
        _save(root / "dehaze" / "synthetic" / "part1" / f"000{index}_0.8_0.2.jpg", hazy)
        _save(root / "dehaze" / "original" / f"000{index}.jpg", clean)
    (root / "denoise" / ".DS_Store").write_bytes(b"\x00\x01")
    return {name: root / name for name in ("denoise", "derain", "dehaze")}


def test_scans_standard_layouts_and_skips_non_images(tmp_path, caplog):
    folders = make_training_folders(tmp_path)
    with caplog.at_level(logging.INFO):
        sources = build_sources(ALL_TYPES, folders)
    assert [len(source.items) for source in sources] == [3, 3, 3, 3, 3]
    assert ".DS_Store" in caplog.text
    rainy, clean = sources[3].items[0]
    assert (rainy.name, clean.name) == ("rain-1.png", "norain-1.png")
    hazy, clean = sources[4].items[0]
    assert (hazy.name, clean.parent.name, clean.name) == (
        "0001_0.8_0.2.jpg",
        "original",
        "0001.jpg",
    )


def test_official_list_files_are_used_when_present(tmp_path):
    folders = make_training_folders(tmp_path)
    lists = tmp_path / "data_dir"
    (lists / "rainy").mkdir(parents=True)
    (lists / "rainy" / "rainTrain.txt").write_text("rainy/rain-2.png\n")
    (folders["dehaze"] / "hazy").mkdir()
    (folders["dehaze"] / "hazy" / "hazy_outside.txt").write_text(
        "synthetic/part1/0003_0.8_0.2.jpg\n\n"
    )
    derain, dehaze = build_sources(["derain", "dehaze"], folders, lists)
    assert [rainy.name for rainy, _ in derain.items] == ["rain-2.png"]
    assert [clean.name for _, clean in dehaze.items] == ["0003.jpg"]


def test_missing_partner_is_reported_with_its_path(tmp_path, caplog):
    folders = make_training_folders(tmp_path)
    (folders["derain"] / "gt" / "norain-2.png").unlink()
    with caplog.at_level(logging.WARNING):
        (source,) = build_sources(["derain"], folders)
    assert len(source.items) == 2
    rainy = folders["derain"] / "rainy" / "rain-2.png"
    assert f"skipping {rainy}: no clean partner" in caplog.text
    assert str(folders["derain"] / "gt" / "norain-2.*") in caplog.text  # the candidates tried
    for path in (folders["dehaze"] / "original").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"^--dehaze_dir .*no usable image for dehaze \(3 skipped"):
        build_sources(["dehaze"], folders)


def test_pairs_share_crop_and_transform(tmp_path):
    """A degraded image that is the negative of its clean image stays its negative per crop."""
    clean = read_image(sorted(SAMPLE_DENOISE.glob("*.jpg"))[0])
    _save(tmp_path / "rainy" / "rain-1.png", 255 - clean)
    _save(tmp_path / "gt" / "norain-1.png", clean)
    sources = build_sources(["derain"], {"derain": tmp_path})
    sample = TrainDataset(sources, patch_size=32)[(0, 0, 123)]
    for i in (1, 2):
        assert torch.allclose(sample[f"degraded_{i}"], 1 - sample[f"clean_{i}"], atol=1e-6)
    assert not torch.equal(sample["clean_1"], sample["clean_2"])  # two different crops


def test_noise_has_the_sigma_of_its_type(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(["denoise_50"], folders)
    sample = TrainDataset(sources, patch_size=48)[(0, 1, 7)]
    residual = (sample["degraded_1"] - sample["clean_1"]) * 255
    assert 40 < residual.std().item() < 52  # sigma 50, a little less after clipping
    assert sample["degraded_1"].shape == (3, 48, 48)


def test_small_images_are_padded_with_a_message(tmp_path, caplog):
    _save(tmp_path / "small.png", np.full((20, 24, 3), 100, np.uint8))
    sources = build_sources(["denoise_15"], {"denoise": tmp_path})
    with caplog.at_level(logging.WARNING):
        sample = TrainDataset(sources, patch_size=32)[(0, 0, 1)]
    assert sample["clean_1"].shape == (3, 32, 32)
    assert "small.png" in caplog.text and "padded" in caplog.text


def test_batches_hold_every_type_once_with_two_workers(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(ALL_TYPES, folders)
    dataset = TrainDataset(sources, patch_size=24)
    counts = [len(source.items) for source in sources]

    def batches(num_workers: int) -> list[dict]:
        sampler = BalancedBatchSampler(counts, batch_size=5, epoch_size=6, seed=3)
        sampler.set_epoch(1)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)
        return list(loader)

    parallel, serial = batches(2), batches(0)
    assert len(parallel) == 6
    for batch, reference in zip(parallel, serial, strict=True):
        assert batch["de_type"].tolist() == [0, 1, 2, 3, 4]
        assert torch.equal(batch["degraded_1"], reference["degraded_1"])


def test_sampler_is_reproducible_balanced_and_sharded():
    counts = [4, 4, 3]
    sampler = BalancedBatchSampler(counts, batch_size=6, epoch_size=8, seed=5)
    first = list(sampler)
    assert first == list(BalancedBatchSampler(counts, batch_size=6, epoch_size=8, seed=5))
    assert len(first) == 4 and all(len(batch) == 6 for batch in first)
    assert all(sorted(t for t, _, _ in batch) == [0, 0, 1, 1, 2, 2] for batch in first)
    # Every image of a type is used before any is used again.
    type_2 = [i for batch in first for t, i, _ in batch if t == 2]
    assert sorted(type_2[:3]) == [0, 1, 2]
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0, start_batch=3)
    assert list(sampler) == first[3:]
    ranks = [list(BalancedBatchSampler(counts, 6, 8, seed=5, rank=r, world_size=2)) for r in (0, 1)]
    assert ranks[0] == first[0::2] and ranks[1] == first[1::2]


def test_sampling_weights_set_each_types_share_and_all_ones_is_the_paper_stream():
    """--sampling_weights (issue 32): a type of weight 2 fills twice the places of one of
    weight 1 in every batch, with fresh images; weights of 1 draw the stream of the sampler
    without weights, so runs and checkpoints from before the option are unchanged."""
    counts = [4, 5, 3]
    plain = list(BalancedBatchSampler(counts, batch_size=6, epoch_size=8, seed=5))
    assert plain == list(BalancedBatchSampler(counts, 6, 8, seed=5, weights=[1, 1, 1]))
    weighted = list(BalancedBatchSampler(counts, batch_size=8, epoch_size=8, seed=5,
                                         weights=[1, 2, 1]))  # fmt: skip
    assert len(weighted) == 4 and all(len(batch) == 8 for batch in weighted)
    assert all(sorted(t for t, _, _ in batch) == [0, 0, 1, 1, 1, 1, 2, 2] for batch in weighted)
    # Type 1's 16 places of the epoch use each of its 5 images before repeating one.
    type_1 = [i for batch in weighted for t, i, _ in batch if t == 1]
    assert len(type_1) == 16 and sorted(type_1[:5]) == [0, 1, 2, 3, 4]
    seeds = [seed for batch in weighted for _, _, seed in batch]
    assert len(set(seeds)) == len(seeds)


def test_sampler_refuses_unbalanced_batches():
    with pytest.raises(ValueError, match="multiple"):
        BalancedBatchSampler([3, 3], batch_size=3, epoch_size=4)
    with pytest.raises(ValueError, match="epoch_size"):
        BalancedBatchSampler([3, 3], batch_size=2, epoch_size=1, world_size=2)
    with pytest.raises(ValueError, match="summing to 3"):
        BalancedBatchSampler([3, 3], batch_size=4, epoch_size=4, weights=[1, 2])
    with pytest.raises(ValueError, match="one positive weight per type"):
        BalancedBatchSampler([3, 3], batch_size=4, epoch_size=4, weights=[1, 0])


def test_sample_data_folder_is_usable():
    """The committed sample data in its standard layouts (train.py's defaults)."""
    root = REPO / "data" / "train"
    sources = build_sources(
        ALL_TYPES, {name: root / name for name in ("denoise", "derain", "dehaze")}
    )
    assert all(len(source.items) >= 1 for source in sources)


def test_synthetic_types_are_made_from_the_clean_photos(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(
        ["denoise_25", "derain", "dehaze"],
        {"denoise": folders["denoise"]},
        synthetic=["derain", "dehaze"],
    )
    assert [source.synthetic for source in sources] == [False, True, True]
    assert sources[2].items == sources[0].items  # (None, clean photo) for every photo
    dataset = TrainDataset(sources, patch_size=32)
    hazy, again = dataset[(2, 0, 5)], dataset[(2, 0, 5)]
    assert all(torch.equal(hazy[k], again[k]) for k in hazy if k != "de_type")  # seeded
    assert not torch.equal(hazy["degraded_1"], hazy["clean_1"])
    # Haze brightens towards A >= 0.8: the hazy crop is on average lighter than the clean one.
    assert hazy["degraded_1"].mean() > hazy["clean_1"].mean()
    rainy = dataset[(1, 1, 5)]
    assert (rainy["degraded_1"] >= rainy["clean_1"] - 1 / 255).all()  # streaks only add light


def test_real_pairs_win_over_synthetic(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(["dehaze"], folders, synthetic=["dehaze"])
    assert not sources[0].synthetic
    assert sources[0].items[0][0].parent.name == "part1"


def test_a_type_without_pairs_or_synthesis_is_an_error(tmp_path):
    folders = make_training_folders(tmp_path)
    with pytest.raises(DataError, match="derain: no folder of real pairs .--derain_dir."):
        build_sources(["derain"], {"denoise": folders["denoise"]})


# ---------------------------------------------------------------------------------------------
# Five-task layouts, the size rule, pairing by name (decisions 7 and 8, issues 20 and 22)
# ---------------------------------------------------------------------------------------------


def make_five_task_folders(root: Path, size: int = 48) -> dict[str, Path]:
    """make_training_folders plus the five-task layouts as the datasets ship them, small:
    deblur/ as GoPro_Large/train (two sequences of blur/ + sharp/ with equal names, and a
    blur_gamma/ that must be ignored), lowlight/ as a LOL root (our485/low + our485/high,
    eval15/ for testing), and held-out val/deblur (input/ + target/) and val/lowlight
    (low/ + high/)."""
    folders = make_training_folders(root, size)
    photos = [read_image(p)[:size, :size] for p in sorted(folders["denoise"].glob("*.png"))]
    blur = np.ones((1, 5, 1), np.float32) / 5  # a horizontal 5 px box: a crude motion blur
    for index, clean in enumerate(photos):
        padded = np.pad(clean.astype(np.float32), ((0, 0), (2, 2), (0, 0)), mode="edge")
        blurred = sum(padded[:, k : k + size] * blur[0, k] for k in range(5)).astype(np.uint8)
        dark = (clean // 8).astype(np.uint8)
        sequence = root / "deblur" / f"GOPR000{index % 2}_11_00"
        _save(sequence / "blur" / f"00000{index}.png", blurred)
        _save(sequence / "blur_gamma" / f"00000{index}.png", blurred // 2)
        _save(sequence / "sharp" / f"00000{index}.png", clean)
        _save(root / "lowlight" / "our485" / "low" / f"{index}.png", dark)
        _save(root / "lowlight" / "our485" / "high" / f"{index}.png", clean)
        _save(root / "val" / "deblur" / "input" / f"{index}.png", blurred)
        _save(root / "val" / "deblur" / "target" / f"{index}.png", clean)
        _save(root / "val" / "lowlight" / "low" / f"{index}.png", dark)
        _save(root / "val" / "lowlight" / "high" / f"{index}.png", clean)
    _save(root / "lowlight" / "eval15" / "low" / "1.png", photos[0] // 8)
    _save(root / "lowlight" / "eval15" / "high" / "1.png", photos[0])
    return {
        **folders,
        "deblur": root / "deblur",
        "lowlight": root / "lowlight",
        "val_deblur": root / "val" / "deblur",
        "val_lowlight": root / "val" / "lowlight",
    }


def test_gopro_and_lol_layouts_train_as_they_ship(tmp_path):
    folders = make_five_task_folders(tmp_path)
    deblur, lowlight = build_sources(["deblur", "lowlight"], folders)
    blurred = [(d.relative_to(folders["deblur"]), c.parent.name) for d, c in deblur.items]
    assert blurred == [  # sequences in name order; blur_gamma/ is not read
        (Path("GOPR0000_11_00/blur/000000.png"), "sharp"),
        (Path("GOPR0000_11_00/blur/000002.png"), "sharp"),
        (Path("GOPR0001_11_00/blur/000001.png"), "sharp"),
    ]
    assert [(d.parts[-3:], c.parts[-3:]) for d, c in lowlight.items][0] == (
        ("our485", "low", "0.png"),
        ("our485", "high", "0.png"),
    )  # a LOL root trains on our485/, never on eval15/
    assert len(lowlight.items) == 3 and not deblur.synthetic


def test_own_dehaze_pairs_with_equal_names(tmp_path):
    """Issue 20 item 4: synthetic/my_photo_01.png + original/my_photo_01.png pair by the
    same stem, in training and in validation; the RESIDE rule only for <id>_<A>_<B>."""
    photo = read_image(sorted(SAMPLE_DENOISE.glob("*.jpg"))[0])[:40, :40]
    _save(tmp_path / "train" / "synthetic" / "my_photo_01.png", photo // 2)
    _save(tmp_path / "train" / "original" / "my_photo_01.png", photo)
    _save(tmp_path / "train" / "synthetic" / "0007_0.8_0.2.png", photo // 2)
    _save(tmp_path / "train" / "original" / "0007.png", photo)
    (source,) = build_sources(["dehaze"], {"dehaze": tmp_path / "train"})
    assert [(d.name, c.name) for d, c in source.items] == [
        ("0007_0.8_0.2.png", "0007.png"),
        ("my_photo_01.png", "my_photo_01.png"),
    ]
    images = build_validation_set(["dehaze"], {"dehaze": tmp_path / "train"}, 0, crop=32)
    assert [image.name for image in images] == ["0007_0.8_0.2", "my_photo_01"]


@pytest.mark.parametrize("patch_size", [32, 128])
def test_tiny_images_are_named_and_skipped_at_the_scan(tmp_path, caplog, patch_size):
    """Issue 20 item 3 / decision 7: a 12x12 photo is skipped by name before training; a
    20x24 one (not under 16 px) is still mirror-padded up to the patch."""
    _save(tmp_path / "tiny.png", np.full((12, 12, 3), 50, np.uint8))
    _save(tmp_path / "small.png", np.full((20, 24, 3), 100, np.uint8))
    with caplog.at_level(logging.WARNING):
        (source,) = build_sources(["denoise_25"], {"denoise": tmp_path})
    assert f"skipping {tmp_path / 'tiny.png'}: too small to use: 12x12" in caplog.text
    assert [clean.name for _, clean in source.items] == ["small.png"]
    sample = TrainDataset([source], patch_size)[(0, 0, 3)]
    assert sample["clean_1"].shape == (3, patch_size, patch_size)


def test_tiny_or_mismatched_pairs_are_skipped_and_a_type_left_empty_is_an_error(tmp_path):
    _save(tmp_path / "low" / "a.png", np.zeros((12, 40, 3), np.uint8))
    _save(tmp_path / "high" / "a.png", np.zeros((12, 40, 3), np.uint8))
    _save(tmp_path / "low" / "b.png", np.zeros((32, 40, 3), np.uint8))
    _save(tmp_path / "high" / "b.png", np.zeros((32, 48, 3), np.uint8))
    (scan,) = scan_training_data(["lowlight"], {"lowlight": tmp_path})
    reasons = {path.name: reason for path, reason in scan.skipped}
    assert reasons["a.png"].startswith("too small to use: 40x12")
    assert "its partner" in reasons["b.png"] and "40x32" in reasons["b.png"]
    assert (scan.found, scan.items, scan.usable) == (2, (), False)
    assert scan.error.startswith(f"--lowlight_dir {tmp_path}: no usable image for lowlight")
    with pytest.raises(DataError, match="2 skipped"):
        build_sources(["lowlight"], {"lowlight": tmp_path})
    for photo in ("x.png", "y.png"):
        _save(tmp_path / "photos" / photo, np.zeros((15, 40, 3), np.uint8))
    with pytest.raises(DataError, match="--denoise_dir .*no usable image for denoise_15"):
        build_sources(["denoise_15"], {"denoise": tmp_path / "photos"})


def test_synthetic_blur_and_low_light_are_seeded_per_sample(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(
        ["deblur", "lowlight"], {"denoise": folders["denoise"]}, synthetic=["deblur", "lowlight"]
    )
    assert [source.synthetic for source in sources] == [True, True]
    dataset = TrainDataset(sources, patch_size=32)
    blurred, again, other = dataset[(0, 1, 5)], dataset[(0, 1, 5)], dataset[(0, 1, 6)]
    assert all(torch.equal(blurred[k], again[k]) for k in blurred if k != "de_type")
    assert not torch.equal(blurred["degraded_1"], other["degraded_1"])

    # Blur smooths: neighbouring pixels differ less than in the sharp crop.
    def roughness(x):
        return (x[:, 1:, 1:] - x[:, :-1, :-1]).abs().mean()

    assert roughness(blurred["degraded_1"]) < roughness(blurred["clean_1"])
    dark = dataset[(1, 0, 5)]
    assert dark["degraded_1"].mean() < 0.6 * dark["clean_1"].mean()


def test_real_pairs_on_the_command_line_win_over_synthetic_blur(tmp_path):
    folders = make_five_task_folders(tmp_path)
    (source,) = build_sources(["deblur"], folders, synthetic=["deblur"])
    assert not source.synthetic and source.items[0][0].parent.name == "blur"


def test_validation_of_the_five_task_types(tmp_path, caplog):
    folders = make_five_task_folders(tmp_path)
    val = {"deblur": folders["val_deblur"], "lowlight": folders["val_lowlight"]}
    _save(folders["val_lowlight"] / "low" / "9.png", np.zeros((12, 12, 3), np.uint8))
    _save(folders["val_lowlight"] / "high" / "9.png", np.zeros((12, 12, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        images = build_validation_set(["deblur", "lowlight"], val, max_images=2, crop=32)
    assert [(i.de_type, i.name) for i in images] == [
        ("deblur", "0"),
        ("deblur", "1"),
        ("lowlight", "0"),
        ("lowlight", "1"),
    ]
    assert "9.png: too small to use: 12x12" in caplog.text
    assert all(i.degraded.shape == i.clean.shape == (32, 32, 3) for i in images)
    with pytest.raises(DataError, match="^deblur: no validation folder: give --val_deblur_dir"):
        build_validation_set(["deblur"], {"lowlight": folders["val_lowlight"]})
    with pytest.raises(DataError, match="^--val_lowlight_dir .*validation takes a held-out"):
        build_validation_set(["lowlight"], {"lowlight": folders["lowlight"]})  # a LOL root


def test_validation_names_never_collide(tmp_path):
    """Decision 9: two hazy images of one clean photo, or one frame name in two GoPro
    sequences, give two validation images with two names."""
    photo = read_image(sorted(SAMPLE_DENOISE.glob("*.jpg"))[0])[:32, :32]
    _save(tmp_path / "haze" / "input" / "0001_0.8_0.2.png", photo // 2)
    _save(tmp_path / "haze" / "input" / "0001_0.9_0.1.png", photo // 3)
    _save(tmp_path / "haze" / "target" / "0001.png", photo)
    for sequence in ("GOPR1", "GOPR2"):
        _save(tmp_path / "blur" / sequence / "blur" / "000001.png", photo // 2)
        _save(tmp_path / "blur" / sequence / "sharp" / "000001.png", photo)
    folders = {"dehaze": tmp_path / "haze", "deblur": tmp_path / "blur"}
    images = build_validation_set(["dehaze", "deblur"], folders, 0, crop=0)
    assert [image.name for image in images] == [
        "0001_0.8_0.2",
        "0001_0.9_0.1",
        "GOPR1_000001",
        "GOPR2_000001",
    ]
