"""The weights shipped in ckpt/: how they are chosen by default, and that they restore."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hubconf
from net import AirNet
from utils import checkpoint
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


@pytest.mark.skipif(
    not checkpoint.SHIPPED_WEIGHTS.is_file(), reason="no shipped weights in this checkout"
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
