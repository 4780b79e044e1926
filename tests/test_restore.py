"""utils.restore: size kept, tiling close to the whole-image result, automatic tiles, devices."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from net import AirNet
from utils import restore as restore_module
from utils.image_io import image_to_tensor
from utils.restore import auto_tile_size, resolve_device, restore, restore_tensor
from utils.tiling import available_memory_bytes, blend_window, ramp, tile_boxes

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


def test_report_tells_the_tile_and_why(monkeypatch, photo):
    model = IdentityOOM(limit=10**9)
    model.config = {"n_feats": 8}
    x = image_to_tensor(photo)
    report = {}
    restore_tensor(x, model, report=report)
    assert report == {"tile": None, "tile_reason": None}
    restore_tensor(x, model, tile=64, tile_overlap=16, report=report)
    assert report == {"tile": 64, "tile_reason": "asked"}
    restore_tensor(x, model, tile=256, report=report)  # one tile covers the image: whole
    assert report == {"tile": None, "tile_reason": None}

    oom = IdentityOOM(limit=80 * 80)
    restore(photo, oom, report=report)
    assert report == {"tile": 64, "tile_reason": "out_of_memory"}

    monkeypatch.setattr(restore_module, "free_memory_bytes", lambda device: 64 * 64 * 128 * 8)
    restore_tensor(x, model, report=report)
    assert report["tile_reason"] == "memory" and report["tile"] < 150


def test_auto_tile_false_tries_the_whole_image_first(monkeypatch, photo):
    monkeypatch.setattr(restore_module, "free_memory_bytes", lambda device: 64 * 64 * 128 * 8)
    model = IdentityOOM(limit=10**9)
    model.config = {"n_feats": 8}
    x = image_to_tensor(photo)
    report = {}
    torch.testing.assert_close(restore_tensor(x, model, auto_tile=False, report=report), x)
    assert model.sizes == [(150, 130)]
    assert report == {"tile": None, "tile_reason": None}

    oom = IdentityOOM(limit=80 * 80)
    oom.config = {"n_feats": 8}
    torch.testing.assert_close(restore_tensor(x, oom, auto_tile=False, report=report), x)
    assert oom.sizes[0] == (150, 130)
    assert report["tile_reason"] == "out_of_memory"


def _fake_system(root, meminfo_kb, cgroup_line, files):
    """A /proc and /sys/fs/cgroup under ``root``; ``files`` maps cgroup paths to contents."""
    proc, cgroup = root / "proc", root / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {meminfo_kb} kB\n")
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    for name, text in files.items():
        (cgroup / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroup / name).write_text(text + "\n")
    return proc, cgroup


def test_available_memory_reads_meminfo_and_cgroups(tmp_path):
    gib = 2**30
    # No cgroup limit (v2 "max"): MemAvailable.
    proc, cgroup = _fake_system(
        tmp_path / "a", 8 * 2**20, "0::/job", {"job/memory.max": "max", "job/memory.current": "5"}
    )
    assert available_memory_bytes(proc, cgroup) == 8 * gib
    # v2 limit of 4 GiB with 1 GiB used: 3 GiB, below MemAvailable.
    proc, cgroup = _fake_system(
        tmp_path / "b",
        8 * 2**20,
        "0::/job",
        {"job/memory.max": str(4 * gib), "job/memory.current": str(gib)},
    )
    assert available_memory_bytes(proc, cgroup) == 3 * gib
    # v1, nested group, limit 2 GiB with 1.5 GiB used; the unlimited root is not used.
    proc, cgroup = _fake_system(
        tmp_path / "c",
        8 * 2**20,
        "4:memory:/box/one\n0::/",
        {
            "memory/box/one/memory.limit_in_bytes": str(2 * gib),
            "memory/box/one/memory.usage_in_bytes": str(gib + gib // 2),
            "memory/memory.limit_in_bytes": "9223372036854771712",
            "memory/memory.usage_in_bytes": "1",
        },
    )
    assert available_memory_bytes(proc, cgroup) == gib // 2
    # v1 without a limit (the huge number): MemAvailable.
    proc, cgroup = _fake_system(
        tmp_path / "d",
        2**20,
        "4:memory:/",
        {
            "memory/memory.limit_in_bytes": "9223372036854771712",
            "memory/memory.usage_in_bytes": "7",
        },
    )
    assert available_memory_bytes(proc, cgroup) == gib
    # Nothing readable.
    assert available_memory_bytes(tmp_path / "none", tmp_path / "none") is None


def test_free_memory_on_cpu_is_this_machines_available_memory():
    free = restore_module.free_memory_bytes(torch.device("cpu"))
    assert free is not None and 0 < free <= available_memory_bytes(cgroup=Path("/nonexistent"))


def test_tile_boxes_cover_the_image_and_windows_sum_to_positive():
    for height, width, tile, overlap in [(150, 130, 64, 16), (5, 200, 32, 8), (64, 64, 64, 32)]:
        covered = np.zeros((height, width), np.float32)
        for box in tile_boxes(height, width, tile, overlap):
            top, bottom, left, right = box
            assert bottom - top <= tile and right - left <= tile
            covered[top:bottom, left:right] += blend_window(box, height, width, overlap)
        assert covered.min() > 0
    with pytest.raises(ValueError, match="tile_overlap"):
        tile_boxes(10, 10, 8, 8)
    # A fading-in and a fading-out ramp over the same pixels sum to 1 (sin^2 + cos^2).
    weights = ramp(16, 6, True, True)
    np.testing.assert_allclose(weights[:6] + weights[-6:], 1.0, rtol=1e-6)
    assert weights[6:-6].tolist() == [1.0] * 4 and 0 < weights.min() < 0.1


def test_auto_tile_size_follows_the_runtimes_appetite():
    """restore_onnx.py plans with ONNX Runtime's larger bytes per pixel: smaller tiles."""
    free = 2 * 2**30
    torch_tile = auto_tile_size(4000, 3000, 64, free)
    ort_tile = auto_tile_size(4000, 3000, 64, free, bytes_per_pixel_per_feat=256)
    assert ort_tile < torch_tile
    assert auto_tile_size(200, 200, 64, free) is None  # fits either way
    assert auto_tile_size(200, 200, 64, free, bytes_per_pixel_per_feat=256) is None
