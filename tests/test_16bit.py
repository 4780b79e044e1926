"""Deep images (issue 20, item 2): the bit depth comes from the file's header, never from the
pixel values, and every reader (demo, test, train, restore_onnx, app) reads through
``utils.image_files.read_image_alpha``."""

from __future__ import annotations

import argparse
import importlib.util
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import restore_onnx
from tests.stubs import IdentitySession
from utils import image_files, train_dataset
from utils.eval_dataset import ImagePair
from utils.image_files import ImageReadError, read_image, read_image_alpha

ROOT = Path(__file__).resolve().parents[1]
PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, LA, RGB, RGBA)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"airnet_16bit_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def png16(path: Path, values: np.ndarray) -> Path:
    """Write uint16 (H, W) or (H, W, C) as a 16-bit PNG; PIL cannot write 16-bit colour."""
    height, width = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    rows = values.astype(">u2").reshape(height, width * channels)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, PNG_COLOR_TYPES[channels], 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def pil16(path: Path, values: np.ndarray) -> Path:
    """Write uint16 (H, W) with PIL (mode I;16): a 16-bit PNG or TIFF by the suffix."""
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def grey_writers(folder: Path) -> dict:
    return {
        "png (ours)": lambda v: png16(folder / "ours.png", v),
        "png (PIL)": lambda v: pil16(folder / "pil.png", v),
        "tiff (PIL)": lambda v: pil16(folder / "pil.tif", v),
    }


def test_a_dark_16bit_scan_stays_dark_whatever_its_brightest_pixel(tmp_path):
    """The issue's example: values <= 255 are dark (not 8-bit), and one pixel at 256 changes
    nothing else."""
    dark = np.full((6, 7), 200, dtype=np.uint16)
    one_bright = dark.copy()
    one_bright[2, 3] = 256
    for kind, write in grey_writers(tmp_path).items():
        for values in (dark, one_bright):
            got = read_image(write(values))
            assert got.shape == (6, 7, 3), kind
            expected = (values >> 8).astype(np.uint8)
            np.testing.assert_array_equal(got[..., 0], expected, err_msg=kind)
            assert np.abs(got[..., 0] - values / 257.0).max() < 1, kind  # v/257: the true level
        read_dark, read_bright = read_image(write(dark)), read_image(write(one_bright))
        mask = np.ones((6, 7), bool)
        mask[2, 3] = False
        np.testing.assert_array_equal(read_dark[mask], read_bright[mask], err_msg=kind)


def test_8bit_images_stored_in_16_bits_come_back_exactly(tmp_path):
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    for kind, write in grey_writers(tmp_path).items():
        for stored in (levels * 257, levels << 8):
            np.testing.assert_array_equal(read_image(write(stored))[..., 1], levels, err_msg=kind)


def test_grey_and_colour_16bit_twins_read_within_one_level(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, (9, 11), dtype=np.uint16)
    opaque = np.full_like(values, 65535)
    grey = read_image(png16(tmp_path / "grey.png", values))
    twins = {
        "rgb": png16(tmp_path / "rgb.png", np.stack([values] * 3, axis=-1)),
        "rgba": png16(tmp_path / "rgba.png", np.stack([values] * 3 + [opaque], axis=-1)),
        "la": png16(tmp_path / "la.png", np.stack([values, opaque], axis=-1)),
        "grey tiff": pil16(tmp_path / "grey.tif", values),
    }
    tifffile = pytest.importorskip("tifffile")  # scikit-image's dependency; writes 16-bit RGB
    twins["rgb tiff"] = tmp_path / "rgb.tif"
    tifffile.imwrite(twins["rgb tiff"], np.stack([values] * 3, axis=-1), photometric="rgb")
    for kind, path in twins.items():
        rgb, alpha = read_image_alpha(path)
        assert np.abs(rgb.astype(int) - grey.astype(int)).max() <= 1, kind
        assert alpha is None or (alpha == 255).all(), kind
    assert np.abs(grey[..., 0] - values / 257.0).max() < 1


def test_float_tiff_is_read_as_0_to_1(tmp_path):
    values = np.array([[-0.5, 0.0, 0.25, 0.5, 1.0, 2.0, np.nan]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "float.tif")
    got = read_image(tmp_path / "float.tif")[0, :, 0]
    np.testing.assert_array_equal(got, [0, 0, 64, 128, 255, 255, 0])
    # A dark float image stays dark: no rescaling by its brightest value.
    Image.fromarray(np.full((3, 3), 0.01, dtype=np.float32)).save(tmp_path / "dark.tif")
    assert read_image(tmp_path / "dark.tif").max() == 3


@pytest.mark.parametrize("dtype", [np.int32, np.uint32])
def test_32bit_integer_tiff_is_refused_naming_the_file(tmp_path, dtype):
    path = tmp_path / f"deep_{np.dtype(dtype).name}.tif"
    values = np.full((4, 4), 200, dtype=dtype)
    try:
        Image.fromarray(values).save(path)
    except (TypeError, KeyError, OSError):
        tifffile = pytest.importorskip("tifffile")
        tifffile.imwrite(path, values)
    with pytest.raises(ImageReadError, match=rf"{path.name}: .*32-bit"):
        read_image(path)


def test_every_reader_reads_through_read_image_alpha():
    readers = {
        "demo": load_script("demo").read_image_alpha,
        "test": load_script("test").read_image,
        "restore_onnx": restore_onnx.read_image_alpha,
        "train": train_dataset.read_image,
    }
    app = pytest.importorskip("app")
    readers["app"] = app.read_image_alpha
    for name, reader in readers.items():
        assert reader in (image_files.read_image, image_files.read_image_alpha), name


def test_entry_points_read_a_dark_16bit_scan_dark(tmp_path, monkeypatch):
    """With the network replaced by the identity, each entry point's input is what it read."""
    values = np.full((8, 10), 200, dtype=np.uint16)
    values[0, 0] = 256
    scan = png16(tmp_path / "scan.png", values)
    expected = (values >> 8).astype(np.uint8)

    demo = load_script("demo")
    monkeypatch.setattr(demo, "load_airnet", lambda *args: None)
    monkeypatch.setattr(demo, "trained_types", lambda *args: None)
    monkeypatch.setattr(demo, "restore", lambda rgb, *args, **kwargs: rgb)
    argv = ["--test_path", str(scan), "--output_path", str(tmp_path / "demo")]
    argv += ["--ckpt", str(scan), "--device", "cpu"]  # any existing file: not loaded
    assert demo.main(demo.parse_args(argv)) == 0
    with Image.open(tmp_path / "demo/scan.png") as result:
        np.testing.assert_array_equal(np.asarray(result.convert("L")), expected)

    monkeypatch.setattr(restore_onnx, "load_session", lambda *args: IdentitySession())
    argv = ["--input", str(scan), "--output", str(tmp_path / "onnx"), "--model", str(scan)]
    assert restore_onnx.main(restore_onnx.parse_args(argv)) == 0
    with Image.open(tmp_path / "onnx/scan.png") as result:
        np.testing.assert_array_equal(np.asarray(result)[..., 0], expected)

    evaluation = load_script("test")
    args = argparse.Namespace(full_size=True)
    degraded, target = evaluation.load_pair(ImagePair("scan.png", scan, scan), None, args)
    np.testing.assert_array_equal(degraded[..., 2], expected)
    np.testing.assert_array_equal(target[..., 2], expected)

    app = pytest.importorskip("app")
    rgb, alpha = app.read_checked(scan)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert alpha is None
