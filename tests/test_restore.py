"""utils.restore: size kept, tiling close to the whole-image result, automatic tiles, devices."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from net import AirNet
from utils import restore as restore_module
from utils.image_io import image_to_tensor
from utils.restore import auto_tile_size, resolve_device, restore, restore_tensor

# Measured with the tiny random-weight model below on a 150x130 image, tiles of 64 overlapping
# by 16: max |tiled - whole| = 6.3e-3, mean 2.1e-4 (float output); at most 1 uint8 level.
TILE_MAX_DIFF = 1e-2
TILE_MEAN_DIFF = 1e-3


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16).eval()


@pytest.fixture(scope="module")
def photo():
    """A smooth pattern plus noise, (150, 130, 3) uint8."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:150, 0:130]
    pattern = 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    image = 127 + pattern[..., None] + rng.normal(0, 20, (150, 130, 3))
    return image.clip(0, 255).astype(np.uint8)


class IdentityOOM(nn.Module):
    """Returns its input, but 'runs out of memory' on inputs larger than ``limit`` pixels."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.limit = limit
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return x * self.scale


@pytest.mark.parametrize("size", [(37, 23), (16, 16), (1, 5)])
def test_restore_keeps_size_and_type(tiny_model, size):
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    restored = restore(image, tiny_model)
    assert restored.shape == image.shape
    assert restored.dtype == np.uint8


def test_tiled_equals_whole_image_within_tolerance(tiny_model, photo):
    x = image_to_tensor(photo)
    whole = restore_tensor(x, tiny_model)
    tiled = restore_tensor(x, tiny_model, tile=64, tile_overlap=16)
    diff = (tiled - whole).abs()
    assert tiled.shape == whole.shape
    assert diff.max() < TILE_MAX_DIFF
    assert diff.mean() < TILE_MEAN_DIFF
    levels = np.abs(
        restore(photo, tiny_model, tile=64, tile_overlap=16).astype(int)
        - restore(photo, tiny_model).astype(int)
    )
    assert levels.max() <= 2


def test_tiles_blend_back_exactly_for_a_pointwise_model(photo):
    """With no spatial context, any tiling must give the input back: weights sum correctly."""
    model = IdentityOOM(limit=10**9)
    x = image_to_tensor(photo)
    for tile, overlap in [(32, 8), (50, 17), (64, 32)]:
        torch.testing.assert_close(restore_tensor(x, model, tile, overlap), x)


def test_tile_must_exceed_overlap(tiny_model, photo):
    with pytest.raises(ValueError, match="tile_overlap"):
        restore(photo, tiny_model, tile=16, tile_overlap=16)


def test_restore_rejects_non_rgb_uint8(tiny_model):
    with pytest.raises(ValueError, match="uint8"):
        restore(np.zeros((8, 8, 3), np.float32), tiny_model)
    with pytest.raises(ValueError, match="uint8"):
        restore(np.zeros((8, 8), np.uint8), tiny_model)


def test_auto_tile_size():
    assert auto_tile_size(100, 100, 64, free_bytes=None) is None
    assert auto_tile_size(100, 100, 64, free_bytes=10**12) is None
    tile = auto_tile_size(4000, 3000, 64, free_bytes=2 * 2**30)
    assert tile is not None and tile % 16 == 0 and 64 <= tile < 3000


def test_automatic_tiles_when_memory_would_not_suffice(monkeypatch, photo):
    monkeypatch.setattr(restore_module, "free_memory_bytes", lambda device: 64 * 64 * 128 * 8)
    model = IdentityOOM(limit=10**9)
    model.config = {"n_feats": 8}
    x = image_to_tensor(photo)
    torch.testing.assert_close(restore_tensor(x, model), x)
    assert max(h * w for h, w in model.sizes) < 150 * 130


def test_out_of_memory_falls_back_to_tiles(photo):
    model = IdentityOOM(limit=80 * 80)
    x = image_to_tensor(photo)
    torch.testing.assert_close(restore_tensor(x, model), x)
    assert model.sizes[0] == (150, 130)  # tried whole first
    assert all(h * w <= 80 * 80 for h, w in model.sizes[-4:])


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_bf16_precision_is_close_to_fp32(tiny_model, photo):
    """Autocast runs (the result differs) and stays close: the DCN keeps float32."""
    x = image_to_tensor(photo[:48, :40])
    fp32 = restore_tensor(x, tiny_model)
    bf16 = restore_tensor(x, tiny_model, precision="bf16")
    diff = (bf16 - fp32).abs()
    assert 0 < diff.max() < 0.05
    assert restore(photo[:20, :20], tiny_model, precision="bf16").shape == (20, 20, 3)
    with pytest.raises(ValueError, match="unknown precision"):
        restore_tensor(x, tiny_model, precision="fp8")
