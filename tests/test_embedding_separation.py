"""scripts/embedding_separation.py: does CBDE tell the degradation types apart?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from net import AirNet
from utils.run_state import export_model

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import embedding_separation  # noqa: E402

SIZE = {"n_feats": 8, "n_groups": 1, "n_blocks": 1, "queue_size": 16}
VAL = [
    "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
    "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
    "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
]  # fmt: skip


def test_nearest_centroid_accuracy_by_hand() -> None:
    # Two types on two axes, two images each: every vector is nearest its own type's centroid.
    vectors = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]])
    vectors = torch.nn.functional.normalize(vectors, dim=1)
    labels, groups = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3])
    accuracy = embedding_separation.nearest_centroid_accuracy(vectors, labels, groups)
    assert accuracy.tolist() == [1.0, 1.0]
    # Swap one label of each type: leaving its own image out, each vector now sees the other
    # axis as its own type's centroid, so every one is wrong.
    swapped = torch.tensor([0, 1, 0, 1])
    accuracy = embedding_separation.nearest_centroid_accuracy(vectors, swapped, groups)
    assert accuracy.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="at least two images"):
        embedding_separation.nearest_centroid_accuracy(vectors, labels, torch.tensor([0, 0, 1, 2]))


def test_patches_and_embeddings() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    patches = embedding_separation.random_patches(image, 32, 3, rng)
    assert patches.shape == (3, 32, 32, 3) and patches.dtype == np.uint8
    with pytest.raises(ValueError, match="smaller than --patch 64"):
        embedding_separation.random_patches(image, 64, 1, rng)
    torch.manual_seed(0)
    model = AirNet(**SIZE)
    fea = embedding_separation.embed(model, patches, "fea")
    inter = embedding_separation.embed(model, patches, "inter")
    assert fea.shape == (3, 32) and inter.shape == (3, 16)  # 4 n_feats; 2 n_feats
    assert torch.allclose(fea.norm(dim=1), torch.ones(3)) and not model.training


def test_prints_a_row_per_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for seed in (1, 2):
        torch.manual_seed(seed)
        export_model(AirNet(**SIZE), argparse.Namespace(**SIZE), tmp_path / f"m{seed}.pth")
    embedding_separation.main([
        str(tmp_path / "m1.pth"), str(tmp_path / "m2.pth"), *VAL,
        "--de_type", "denoise_25", "derain", "--clean", "--val_crop", "64", "--patch", "32",
    ])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| file | denoise_25 | derain | clean | chance |"
    rows = [[float(v) for v in line.strip("|").split("|")[1:]] for line in lines[2:]]
    assert len(rows) == 2
    assert all(len(row) == 4 and all(0 <= v <= 1 for v in row) for row in rows)
    assert rows[0][-1] == pytest.approx(1 / 3, abs=0.005)


def test_a_type_with_one_image_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    export_model(AirNet(**SIZE), argparse.Namespace(**SIZE), tmp_path / "m.pth")
    with pytest.raises(SystemExit) as stop:  # data/test's SOTS sample is one pair
        embedding_separation.main(
            [str(tmp_path / "m.pth"), *VAL, "--val_crop", "64", "--patch", "32"]
        )
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("error: dehaze: 1 validation image in --val_dehaze_dir")
