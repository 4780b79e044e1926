"""Reading odd image files, and the degradations of the official pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from utils.degradations import (
    add_gaussian_noise,
    crop_to_multiple,
    dihedral,
    parse_haze_name,
    random_dihedral,
)
from utils.image_io import (
    ImageReadError,
    image_to_tensor,
    list_images,
    read_image,
    read_image_alpha,
    save_image,
    tensor_to_image,
)


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


def test_save_and_tensor_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    save_image(tmp_path / "sub" / "x.png", rgb)
    assert np.array_equal(read_image(tmp_path / "sub" / "x.png"), rgb)
    tensor = image_to_tensor(rgb)
    assert tensor.shape == (1, 3, 5, 7) and tensor.dtype == torch.float32
    assert np.array_equal(tensor_to_image(tensor), rgb)


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


def test_haze_names():
    assert parse_haze_name("synthetic/part1/0025_0.8_0.2.jpg") == "0025"
    assert parse_haze_name("1400_0.95_0.12.png") == "1400"
