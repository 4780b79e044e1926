"""Colour profiles (issue 33, item 4): a photo with an embedded ICC profile (Adobe RGB, Display
P3) is converted to sRGB on reading, so every writer (demo.py whole and in tiles,
restore_onnx.py, app.py, test.py --save_images) writes the colours a colour-managed viewer
showed, in sRGB and without a profile. The profiles are written by tests/icc.py."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image, ImageCms

from tests.icc import matrix_trc_profile
from tests.stubs import IdentitySession
from tests.test_outputs import load
from utils.image_files import read_image, read_image_alpha

SRGB = ImageCms.createProfile("sRGB")
# Saturated and mid colours, 4 x 4 pixels each, on a 24 x 24 image.
COLOURS = [(200, 30, 30), (40, 90, 200), (30, 160, 60), (128, 128, 128)]


class Identity(nn.Module):
    """A "model" that returns its input, so a result shows exactly what the reader read."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.config = {"n_feats": 8}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def photo_values() -> np.ndarray:
    rgb = np.zeros((24, 24, 3), np.uint8)
    for i, colour in enumerate(COLOURS):
        rgb[(i // 2) * 12 : (i // 2 + 1) * 12, (i % 2) * 12 : (i % 2 + 1) * 12] = colour
    return rgb


def write_tagged(path, name: str = "Adobe RGB", alpha: bool = False) -> np.ndarray:
    """Write the photo with ``name``'s profile embedded; return its colours in sRGB as
    Pillow's ImageCms converts them (what a colour-managed viewer shows)."""
    profile = matrix_trc_profile(name)
    image = Image.fromarray(photo_values())
    if alpha:
        image.putalpha(Image.fromarray(np.full((24, 24), 200, np.uint8)))
    image.save(path, icc_profile=profile)
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    shown = ImageCms.profileToProfile(
        Image.fromarray(photo_values()), source, SRGB, outputMode="RGB"
    )
    expected = np.asarray(shown)
    assert np.abs(expected.astype(int) - photo_values()).max() >= 12  # the shift the issue saw
    return expected


def assert_shows(path, expected: np.ndarray) -> None:
    """The written file shows ``expected``: sRGB values, and no profile that says otherwise."""
    with Image.open(path) as image:
        assert "icc_profile" not in image.info, path
        values = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(values - expected).max() <= 1, path


@pytest.mark.parametrize("name", ["Adobe RGB", "Display P3"])
def test_reading_converts_to_srgb(tmp_path, name):
    expected = write_tagged(tmp_path / "p.png", name)
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)


def test_alpha_is_kept_and_a_jpeg_profile_is_read_too(tmp_path):
    expected = write_tagged(tmp_path / "p.png", alpha=True)
    rgb, alpha = read_image_alpha(tmp_path / "p.png")
    assert alpha is not None and int(alpha.min()) == 200
    # Composited on white after the conversion: 200/255 of the colour, 55/255 of white.
    np.testing.assert_allclose(rgb, expected.astype(float) * 200 / 255 + 55, atol=1)
    Image.fromarray(photo_values()).save(
        tmp_path / "p.jpg", quality=95, icc_profile=matrix_trc_profile()
    )
    with Image.open(tmp_path / "p.jpg") as image:
        source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        shown = np.asarray(ImageCms.profileToProfile(image, source, SRGB, outputMode="RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.jpg"), shown)


def test_srgb_tagged_files_are_read_as_they_are_and_a_bad_profile_is_named(tmp_path, caplog):
    srgb = ImageCms.ImageCmsProfile(SRGB).tobytes()
    Image.fromarray(photo_values()).save(tmp_path / "s.png", icc_profile=srgb)
    np.testing.assert_array_equal(read_image(tmp_path / "s.png"), photo_values())
    Image.fromarray(photo_values()).save(tmp_path / "bad.png", icc_profile=b"not a profile")
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(read_image(tmp_path / "bad.png"), photo_values())
    assert f"{tmp_path / 'bad.png'}: its colour profile is ignored" in caplog.text


@pytest.mark.parametrize("tile", [None, "16"], ids=["whole", "tiles"])
def test_demo_writes_the_colours_shown(tmp_path, tiny_ckpt, monkeypatch, tile):
    demo = load("demo.py")
    expected = write_tagged(tmp_path / "p.png")
    monkeypatch.setattr(demo, "load_airnet", lambda *a: Identity())
    argv = ["--test_path", str(tmp_path / "p.png"), "--ckpt", str(tiny_ckpt)]
    argv += ["--output_path", str(tmp_path / "out"), "--device", "cpu", "--compare"]
    if tile:
        argv += ["--tile", tile, "--tile_overlap", "4"]
    assert demo.main(demo.parse_args(argv)) == 0
    assert_shows(tmp_path / "out" / "p.png", expected)
    compare = np.asarray(Image.open(tmp_path / "out" / "compare" / "p.png").convert("RGB"))
    assert np.abs(compare[:, :24].astype(int) - expected).max() <= 1  # the input side too


def test_restore_onnx_writes_the_colours_shown(tmp_path, monkeypatch):
    restore_onnx = load("restore_onnx.py")
    expected = write_tagged(tmp_path / "p.png", "Display P3")
    monkeypatch.setattr(restore_onnx, "load_session", lambda *a: IdentitySession())
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    argv = ["--input", str(tmp_path / "p.png"), "--model", str(tmp_path / "m.onnx")]
    assert (
        restore_onnx.main(restore_onnx.parse_args([*argv, "--output", str(tmp_path / "out")])) == 0
    )
    assert_shows(tmp_path / "out" / "p.png", expected)


def test_app_writes_the_colours_shown(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    app = load("app.py")
    expected = write_tagged(tmp_path / "p.png")
    monkeypatch.setattr(app, "load_model", lambda *a: Identity())
    pairs, outputs, _ = app.restore_files(
        [str(tmp_path / "p.png")], "x", None, "cpu", 0, tmp_path / "out"
    )
    assert_shows(outputs[0], expected)
    assert np.abs(pairs[0][0].astype(int) - expected).max() <= 1  # the slider's input side


def test_evaluation_saves_the_colours_shown(tmp_path, tiny_ckpt, monkeypatch):
    evaluation = load("test.py")
    rain = tmp_path / "Rain"
    (rain / "input").mkdir(parents=True)
    (rain / "target").mkdir()
    expected = write_tagged(rain / "input" / "x.png")
    write_tagged(rain / "target" / "x.png")
    monkeypatch.setattr(evaluation, "load_airnet", lambda *a: Identity())
    argv = ["--mode", "1", "--derain_path", str(rain), "--ckpt", str(tiny_ckpt), "--full_size"]
    argv += ["--output_path", str(tmp_path / "out"), "--device", "cpu", "--save_images"]
    assert evaluation.main(evaluation.parse_args(argv)) == 0
    assert_shows(tmp_path / "out" / "images" / "Rain" / "derain" / "x.png", expected)
