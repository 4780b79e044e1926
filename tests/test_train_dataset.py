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
    TrainDataset,
    build_sources,
    find_dehaze_pairs,
    find_derain_pairs,
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
        sources = build_sources(ALL_TYPES, folders["denoise"], folders["derain"], folders["dehaze"])
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
    assert [p[0].name for p in find_derain_pairs(folders["derain"], lists)] == ["rain-2.png"]
    assert [p[1].name for p in find_dehaze_pairs(folders["dehaze"], lists)] == ["0003.jpg"]


def test_missing_partner_is_reported_with_its_path(tmp_path, caplog):
    folders = make_training_folders(tmp_path)
    missing = folders["derain"] / "gt" / "norain-2.png"
    missing.unlink()
    with caplog.at_level(logging.WARNING):
        pairs = find_derain_pairs(folders["derain"])
    assert len(pairs) == 2
    assert str(missing) in caplog.text
    for path in (folders["dehaze"] / "original").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match="no complete"):
        find_dehaze_pairs(folders["dehaze"])


def test_pairs_share_crop_and_transform(tmp_path):
    """A degraded image that is the negative of its clean image stays its negative per crop."""
    clean = read_image(sorted(SAMPLE_DENOISE.glob("*.jpg"))[0])
    _save(tmp_path / "rainy" / "rain-1.png", 255 - clean)
    _save(tmp_path / "gt" / "norain-1.png", clean)
    sources = build_sources(["derain"], tmp_path, tmp_path, tmp_path)
    sample = TrainDataset(sources, patch_size=32)[(0, 0, 123)]
    for i in (1, 2):
        assert torch.allclose(sample[f"degraded_{i}"], 1 - sample[f"clean_{i}"], atol=1e-6)
    assert not torch.equal(sample["clean_1"], sample["clean_2"])  # two different crops


def test_noise_has_the_sigma_of_its_type(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(["denoise_50"], folders["denoise"], tmp_path, tmp_path)
    sample = TrainDataset(sources, patch_size=48)[(0, 1, 7)]
    residual = (sample["degraded_1"] - sample["clean_1"]) * 255
    assert 40 < residual.std().item() < 52  # sigma 50, a little less after clipping
    assert sample["degraded_1"].shape == (3, 48, 48)


def test_small_images_are_padded_with_a_message(tmp_path, caplog):
    _save(tmp_path / "small.png", np.full((20, 24, 3), 100, np.uint8))
    sources = build_sources(["denoise_15"], tmp_path, tmp_path, tmp_path)
    with caplog.at_level(logging.WARNING):
        sample = TrainDataset(sources, patch_size=32)[(0, 0, 1)]
    assert sample["clean_1"].shape == (3, 32, 32)
    assert "small.png" in caplog.text and "padded" in caplog.text


def test_batches_hold_every_type_once_with_two_workers(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(ALL_TYPES, folders["denoise"], folders["derain"], folders["dehaze"])
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


def test_sampler_refuses_unbalanced_batches():
    with pytest.raises(ValueError, match="multiple"):
        BalancedBatchSampler([3, 3], batch_size=3, epoch_size=4)
    with pytest.raises(ValueError, match="epoch_size"):
        BalancedBatchSampler([3, 3], batch_size=2, epoch_size=1, world_size=2)


def test_sample_data_folder_is_usable():
    """The committed sample data in its standard layouts (train.py's defaults)."""
    root = REPO / "data" / "train"
    sources = build_sources(ALL_TYPES, root / "denoise", root / "derain", root / "dehaze")
    assert all(len(source.items) >= 1 for source in sources)


def test_synthetic_types_are_made_from_the_clean_photos(tmp_path):
    folders = make_training_folders(tmp_path)
    sources = build_sources(
        ["denoise_25", "derain", "dehaze"],
        folders["denoise"],
        derain_dir=None,
        dehaze_dir=None,
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
    sources = build_sources(
        ["dehaze"], folders["denoise"], None, folders["dehaze"], synthetic=["dehaze"]
    )
    assert not sources[0].synthetic
    assert sources[0].items[0][0].parent.name == "part1"


def test_a_type_without_pairs_or_synthesis_is_an_error(tmp_path):
    folders = make_training_folders(tmp_path)
    with pytest.raises(ValueError, match="derain: no folder"):
        build_sources(["derain"], folders["denoise"], None, None)
