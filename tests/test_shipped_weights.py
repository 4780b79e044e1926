"""The weights shipped in ckpt/: how they are chosen by default, and that they restore."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

import hubconf
from net import AirNet
from utils import checkpoint
from utils.checkpoint import read_weights, trained_types
from utils.degradations import add_gaussian_noise, crop_to_multiple, noise_rng
from utils.image_io import read_image
from utils.metrics import psnr
from utils.restore import restore

REPO = Path(__file__).resolve().parents[1]


def test_hubconf_pretrained_loads_the_shipped_file(tmp_path, monkeypatch):
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    path = tmp_path / "shipped.pth"
    torch.save({"model": model.state_dict(), "args": model.config}, path)
    monkeypatch.setattr(hubconf, "SHIPPED_WEIGHTS", path)
    loaded = hubconf.airnet(pretrained=True)
    assert loaded.config == model.config and not loaded.training
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    assert hubconf.airnet().config == AirNet().config  # pretrained=False: random, paper size


def test_default_checkpoint_prefers_the_official_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checkpoint, "REPO_ROOT", tmp_path / "repo")
    assert checkpoint.default_checkpoint("ckpt/All.pth") == (
        checkpoint.SHIPPED_WEIGHTS,
        checkpoint.SHIPPED_DESCRIPTION,
    )
    (tmp_path / "repo" / "ckpt").mkdir(parents=True)
    (tmp_path / "repo" / "ckpt" / "All.pth").write_bytes(b"x")
    assert checkpoint.default_checkpoint("ckpt/All.pth")[0] == tmp_path / "repo/ckpt/All.pth"
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "All.pth").write_bytes(b"x")
    assert checkpoint.default_checkpoint("ckpt/All.pth") == (
        Path("ckpt/All.pth"),
        "official weights",
    )


def test_shipped_weights_denoise_a_real_photo():
    """The committed file loads strictly and removes sigma-25 noise from a committed photo."""
    torch.manual_seed(0)
    model = hubconf.airnet(pretrained=True)
    photo = sorted((REPO / "data/test/denoise/CBSD68").glob("*.png"))[0]
    clean = crop_to_multiple(read_image(photo), 16)[:96, :96]
    noisy = add_gaussian_noise(clean, 25, noise_rng(photo.name, 25))
    restored = restore(noisy, model)
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(noisy, clean) + 3.0  # a clear gain, not a copy


def test_the_shipped_file_is_safetensors_with_its_size_and_types():
    """Decision 4: one weight file under ckpt/, the safetensors conversion of version 3 of the
    .pth (commit ac565ad; its tensors are bit-identical), with its trained types (decision 5)."""
    weights = read_weights(checkpoint.SHIPPED_WEIGHTS)
    assert checkpoint.SHIPPED_WEIGHTS.name == "airnet-small-repo-trained.safetensors"
    assert weights.format == "safetensors"
    assert weights.size == {"n_feats": 32, "n_groups": 1, "n_blocks": 2}
    five = ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert weights.de_type == five and trained_types(checkpoint.SHIPPED_WEIGHTS) == five
    assert (weights.metadata["epoch"], weights.metadata["step"]) == (127, 6400)


def test_app_offers_the_shipped_file():
    pytest.importorskip("gradio")
    import app

    assert str(checkpoint.SHIPPED_WEIGHTS) in app.weight_choices(REPO / "ckpt")


def test_exactly_one_weight_file_is_committed_under_ckpt():
    tracked = subprocess.run(
        ["git", "ls-files", "ckpt"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    weights = [name for name in tracked if name.endswith((".pth", ".pt", ".safetensors"))]
    assert weights == ["ckpt/airnet-small-repo-trained.safetensors"]
