"""Reading odd image files, and the degradations of the official pipeline."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utils import image_files
from utils.degradations import (
    add_gaussian_noise,
    crop_to_multiple,
    dihedral,
    random_dihedral,
)
from utils.image_files import array_to_image, image_to_array
from utils.image_io import (
    MAX_PIXELS,
    ImageReadError,
    check_image,
    image_to_tensor,
    list_images,
    read_image,
    read_image_alpha,
    save_image,
    tensor_to_image,
)
from utils.pairing import reside_ids


def test_grayscale_palette_rgba_16bit_and_exif(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "gray.png")
    assert np.array_equal(read_image(tmp_path / "gray.png"), np.stack([gray] * 3, axis=-1))

    Image.fromarray(gray).convert("P").save(tmp_path / "palette.png")
    assert read_image(tmp_path / "palette.png").shape == (3, 4, 3)

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    rgb, alpha = read_image_alpha(tmp_path / "rgba.png")
    assert tuple(rgb[0, 0]) == (200, 0, 0) and tuple(rgb[1, 1]) == (255, 255, 255)
    assert alpha[0, 0] == 255 and alpha[1, 1] == 0

    deep = (np.arange(6, dtype=np.uint16).reshape(2, 3) * 13107).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    got = read_image(tmp_path / "deep.png")[..., 0]
    assert got[0, 0] == 0 and got[1, 2] == 255

    image = Image.fromarray(np.zeros((2, 5, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").shape == (5, 2, 3)


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(bad)


def test_list_images_skips_non_images(tmp_path):
    for name in ("b.png", "a.JPG", ".DS_Store", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]


def test_a_folder_lists_what_a_named_file_reads(tmp_path, caplog):
    """A GIF named on its own was restored while the same GIF in a folder was skipped as
    "not an image file": the folder listing and the reader now agree."""
    frames = [Image.fromarray(np.full((4, 5, 3), 40 * k, dtype=np.uint8)) for k in (1, 2, 3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "still.GIF")
    (tmp_path / "scan.xyz").write_bytes(b"")
    with caplog.at_level("INFO"):
        listed = [p.name for p in list_images(tmp_path)]
    assert listed == ["anim.gif", "still.GIF"]
    assert "scan.xyz" in caplog.text and "'.xyz'" in caplog.text and ".gif" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        first = read_image(tmp_path / "anim.gif")
    assert first.shape == (4, 5, 3) and abs(int(first.mean()) - 40) <= 2  # frame 1, not 2 or 3
    assert "anim.gif: 3 frames; only the first is read" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_image(tmp_path / "anim.gif")  # training reads a file at every sample: once is enough
    assert "frames" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_image(tmp_path / "still.GIF")
    assert "frames" not in caplog.text


def test_save_and_tensor_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    save_image(tmp_path / "sub" / "x.png", rgb)
    assert np.array_equal(read_image(tmp_path / "sub" / "x.png"), rgb)
    tensor = image_to_tensor(rgb)
    assert tensor.shape == (1, 3, 5, 7) and tensor.dtype == torch.float32
    assert np.array_equal(tensor_to_image(tensor), rgb)


def png_declaring(path, width: int, height: int) -> None:
    """A valid 1x1 PNG whose header claims width x height (nothing else is decoded)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # IHDR: length (4) + b"IHDR" (4) + width, height (4 + 4) ... + CRC over type and data.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    assert MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS
    bomb = tmp_path / "bomb.png"
    png_declaring(bomb, 20000, 20000)  # 400 MP > 179 MP
    for reader in (read_image, check_image):
        with pytest.raises(ImageReadError, match=r"bomb.png: too large"):
            reader(bomb)


def test_limit_applies_below_pils_own_refusal(tmp_path, monkeypatch):
    monkeypatch.setattr(image_files, "MAX_PIXELS", 100)
    save_image(tmp_path / "small.png", np.zeros((10, 11, 3), np.uint8))
    with pytest.raises(ImageReadError, match=r"small.png: too large \(11x10 "):
        read_image(tmp_path / "small.png")


def test_folder_named_like_an_image_and_empty_file(tmp_path):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "empty.jpg").write_bytes(b"")
    for reader in (read_image, check_image):
        with pytest.raises(ImageReadError, match="dir.png: is a folder"):
            reader(tmp_path / "dir.png")
        with pytest.raises(ImageReadError, match="empty.jpg: cannot read"):
            reader(tmp_path / "empty.jpg")


def test_numpy_conversions_equal_the_torch_ones():
    """image_files' numpy conversions (used by restore_onnx.py) match the tensor ones exactly."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (9, 6, 3), dtype=np.uint8)
    array = image_to_array(rgb)
    assert array.dtype == np.float32 and array.shape == (1, 3, 9, 6)
    assert np.array_equal(array, image_to_tensor(rgb).numpy())
    output = rng.uniform(-0.2, 1.2, (1, 3, 9, 6)).astype(np.float32)
    output[0, 0, 0, :3] = [0.5 / 255, 1.5 / 255, 2.5 / 255]  # halves round to even in both
    expected = torch.from_numpy(output).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0)
    assert np.array_equal(array_to_image(output), expected.numpy())
    assert np.array_equal(array_to_image(array), rgb)


def test_gaussian_noise_is_clipped_truncated_and_reproducible():
    clean = np.full((8, 8, 3), 250, dtype=np.uint8)
    a = add_gaussian_noise(clean, 50, np.random.default_rng(1))
    b = add_gaussian_noise(clean, 50, np.random.default_rng(1))
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    noise = np.random.default_rng(1).standard_normal(clean.shape)
    expected = np.clip(clean + noise * 50, 0, 255).astype(np.uint8)  # truncation, not rounding
    assert np.array_equal(a, expected)
    assert (a == 255).any()


def test_crop_to_multiple_is_centred_like_the_official_crop():
    image = np.arange(35 * 50).reshape(35, 50)
    cropped = crop_to_multiple(image, 16)
    assert cropped.shape == (32, 48)
    assert cropped[0, 0] == image[1, 1]  # crop_h = 3 -> top 1; crop_w = 2 -> left 1


def test_dihedral_modes_are_the_eight_distinct_transforms():
    image = np.arange(9).reshape(3, 3)
    outs = {dihedral(image, m).tobytes() for m in range(8)}
    assert len(outs) == 8
    assert np.array_equal(dihedral(image, 0), image)
    a, b = random_dihedral(np.random.default_rng(0), image, image + 100)
    assert np.array_equal(a + 100, b) and not np.array_equal(a, image)


def test_haze_names_follow_the_one_reside_rule_of_the_pairing_module():
    """One RESIDE rule (utils/pairing.reside_ids) for every reader: outdoor, ITS and SOTS
    indoor names give their clear id first (issue 33 removed a second, narrower rule)."""
    assert reside_ids(Path("synthetic/part1/0025_0.8_0.2.jpg").stem)[0] == "0025"
    assert reside_ids("1400_0.95_0.12")[0] == "1400"
    assert reside_ids("1400_10") == ["1400"]
    assert reside_ids("img_2020_x1") == []
