"""Synthetic haze, rain, motion blur and low light: shapes, ranges, determinism, and the
physics of each model."""

from __future__ import annotations

import numpy as np
import pytest

from utils.synthetic import (
    BLUR_LENGTH_RANGE,
    add_haze,
    add_rain_streaks,
    add_signal_dependent_noise,
    blur_image,
    box_blur,
    darken,
    depth_proxy,
    low_light,
    motion_blur,
    motion_kernel,
    random_haze,
    random_haze_parameters,
    shake_trajectory,
    trajectory_kernel,
    transmission,
)


def outdoor_photo(height: int = 48, width: int = 64) -> np.ndarray:
    """A bright pale sky over darker, saturated ground with texture."""
    rng = np.random.default_rng(1)
    image = np.empty((height, width, 3), dtype=np.float64)
    image[: height // 3] = (200, 210, 225)
    image[height // 3 :] = (60, 110, 40)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_box_blur_equals_a_brute_force_window_mean():
    image = np.random.default_rng(0).random((9, 7)).astype(np.float32)
    radius = 2
    padded = np.pad(image, radius, mode="edge")
    expected = np.array(
        [
            [padded[i : i + 2 * radius + 1, j : j + 2 * radius + 1].mean() for j in range(7)]
            for i in range(9)
        ]
    )
    np.testing.assert_allclose(box_blur(image, radius), expected, rtol=1e-5, atol=1e-6)


def test_depth_proxy_spans_zero_to_one_and_puts_the_sky_far():
    photo = outdoor_photo()
    depth = depth_proxy(photo)
    assert depth.shape == photo.shape[:2] and depth.dtype == np.float32
    assert depth.min() == pytest.approx(0.0) and depth.max() == pytest.approx(1.0)
    assert depth[:16].mean() > depth[16:].mean() + 0.3  # sky rows farther than ground rows
    assert depth[0].mean() > depth[-1].mean()


def test_transmission_falls_with_depth_and_beta():
    depth = np.linspace(0, 1, 11, dtype=np.float32)
    light, dense = transmission(depth, 0.04, 1.5, 1.5), transmission(depth, 0.2, 4.5, 2.5)
    assert np.all(np.diff(light) < 0) and np.all(np.diff(dense) < 0)
    assert np.all(dense < light)
    assert light[0] == pytest.approx(np.exp(-0.04 * 1.5), rel=1e-6)  # nearest, thinnest: 0.94
    assert dense[-1] == pytest.approx(np.exp(-0.2 * 4.5 * 2.5), rel=1e-6)  # thickest: 0.11


def test_random_haze_has_reside_depth_statistics():
    """d = d_near (1 + (ratio - 1) r): within one photo the far depth is at most 2.5 times the
    near one, and the nearest depth lies in [1.5, 4.5] (RESIDE-beta outdoor depth maps)."""
    photo = outdoor_photo()
    relative = depth_proxy(photo)
    rng = np.random.default_rng(0)
    for _ in range(50):
        parameters = random_haze_parameters(rng)
        assert 0.8 <= parameters["atmosphere"] <= 1.0 and 0.04 <= parameters["beta"] <= 0.2
        t = transmission(
            relative, parameters["beta"], parameters["near_depth"], parameters["depth_ratio"]
        )
        depth = -np.log(t) / parameters["beta"]
        assert 1.5 - 1e-4 <= depth.min() <= 4.5 + 1e-4
        assert depth.max() / depth.min() <= 2.5 + 1e-4


def test_haze_moves_pixels_towards_the_atmospheric_light_more_where_far():
    photo = outdoor_photo()
    hazy = add_haze(photo, atmosphere=0.9, beta=0.2, near_depth=3.0, depth_ratio=2.5)
    assert hazy.shape == photo.shape and hazy.dtype == np.uint8
    airlight = 0.9 * 255
    gap_before = np.abs(photo.astype(float) - airlight)
    gap_after = np.abs(hazy.astype(float) - airlight)
    assert np.all(gap_after <= gap_before + 1)  # a convex mix with A, never away from it
    far = depth_proxy(photo) > 0.8
    near = depth_proxy(photo) < 0.2
    shrink = gap_after / np.maximum(gap_before, 1)
    assert shrink[far].mean() < shrink[near].mean()  # far pixels keep less of the scene
    assert (
        np.abs(add_haze(photo, 0.9, 0.04, 3.0, 2.5) - photo.astype(float)).mean()
        < np.abs(hazy - photo.astype(float)).mean()
    )  # thicker haze changes more


def test_every_synthesis_is_reproducible_from_the_seed():
    photo = outdoor_photo()
    for make in (random_haze, add_rain_streaks, motion_blur, low_light):
        first = make(photo, np.random.default_rng(7))
        again = make(photo, np.random.default_rng(7))
        other = make(photo, np.random.default_rng(8))
        assert np.array_equal(first, again)
        assert not np.array_equal(first, other)
        assert first.shape == photo.shape and first.dtype == np.uint8


def test_rain_streaks_only_brighten_and_cover_a_small_share_of_pixels():
    photo = outdoor_photo(96, 96)
    rainy = add_rain_streaks(photo, np.random.default_rng(3))
    difference = rainy.astype(int) - photo.astype(int)
    assert difference.min() >= 0
    changed = (difference.max(axis=2) > 20).mean()
    assert 0.01 < changed < 0.5
    # Streaks are long and thin: a rainy pixel's vertical neighbours are rainy more often
    # than its horizontal ones (streaks are within 25 degrees of vertical).
    streak = difference.max(axis=2) > 20
    vertical = (streak[1:] & streak[:-1]).sum()
    horizontal = (streak[:, 1:] & streak[:, :-1]).sum()
    assert vertical > horizontal


def test_shake_trajectory_has_the_drawn_length():
    for seed in range(5):
        positions = shake_trajectory(np.random.default_rng(seed), 17.0)
        assert positions[0] == 0
        assert np.abs(np.diff(positions)).sum() == pytest.approx(17.0, rel=1e-9)


def test_motion_kernels_sum_to_one_are_centred_and_fit_the_path():
    sides = []
    for seed in range(40):
        kernel = motion_kernel(np.random.default_rng(seed))
        side = kernel.shape[0]
        sides.append(side)
        assert kernel.shape == (side, side) and side % 2 == 1 and kernel.dtype == np.float32
        assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0, abs=1e-5)
        rows, cols = np.indices(kernel.shape)
        centre = side // 2
        # Bilinear splatting keeps the mean position: no shift of the blurred image.
        assert (rows * kernel).sum() == pytest.approx(centre, abs=1e-3)
        assert (cols * kernel).sum() == pytest.approx(centre, abs=1e-3)
        assert kernel[0].sum() == 0 and kernel[-1].sum() == 0  # a pixel of margin
        assert kernel[:, 0].sum() == 0 and kernel[:, -1].sum() == 0
    # A path of length L lies within L / 2 of its mean: k <= 2 * ceil(L / 2) + 3.
    assert max(sides) <= 2 * int(np.ceil(BLUR_LENGTH_RANGE[1] / 2)) + 3
    assert min(sides) >= 5 and len(set(sides)) > 3


def test_straight_path_gives_a_line_kernel():
    positions = np.linspace(0, 8, 256) + 0j  # 8 px to the right
    kernel = trajectory_kernel(positions)
    assert kernel.shape == (11, 11)  # 4 px either side of the mean, a pixel of margin
    assert np.array_equal(np.nonzero(kernel.sum(axis=1))[0], [5])  # one row
    assert np.count_nonzero(kernel.sum(axis=0) > 1e-6) == 9  # 8 px long: 9 columns
    np.testing.assert_allclose(kernel[5, 2:9], kernel[5, 5], rtol=0.02)  # uniform speed


def test_blur_image_is_a_convolution_with_mirrored_edges():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    kernel = rng.random((5, 5)).astype(np.float32)
    kernel /= kernel.sum()
    padded = np.pad(image.astype(np.float64), ((2, 2), (2, 2), (0, 0)), mode="symmetric")
    flipped = kernel[::-1, ::-1]  # convolution, not correlation
    expected = np.empty(image.shape)
    for i in range(9):
        for j in range(11):
            window = padded[i : i + 5, j : j + 5]
            expected[i, j] = (window * flipped[..., None]).sum(axis=(0, 1))
    blurred = blur_image(image, kernel)
    assert blurred.shape == image.shape and blurred.dtype == np.uint8
    assert np.abs(blurred.astype(float) - expected).max() <= 0.5 + 1e-3
    delta = np.zeros((3, 3), dtype=np.float32)
    delta[1, 1] = 1
    assert np.array_equal(blur_image(image, delta), image)


def test_motion_blur_keeps_flat_images_and_smooths_texture():
    flat = np.full((24, 30, 3), 93, dtype=np.uint8)
    assert np.array_equal(motion_blur(flat, np.random.default_rng(0)), flat)
    texture = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    blurred = motion_blur(texture, np.random.default_rng(2))
    assert blurred.shape == texture.shape and blurred.dtype == np.uint8
    assert blurred.astype(float).std() < 0.7 * texture.astype(float).std()
    assert abs(blurred.astype(float).mean() - texture.astype(float).mean()) < 2


def test_darken_follows_the_curve():
    x = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(darken(x, 0.9, 0.5, 2.0), 0.5 * (0.9 * x) ** 2)


def test_noise_variance_grows_with_the_signal():
    rng = np.random.default_rng(0)
    for level in (0.02, 0.2):
        signal = np.full(200_000, level)
        noise = add_signal_dependent_noise(signal, shot=0.01, read=1e-4, rng=rng) - signal
        assert noise.mean() == pytest.approx(0.0, abs=1e-3)
        assert noise.var() == pytest.approx(0.01 * level + 1e-4, rel=0.03)


def test_low_light_darkens_every_photo():
    photo = outdoor_photo(64, 64)
    for seed in range(10):
        dark = low_light(photo, np.random.default_rng(seed))
        assert dark.shape == photo.shape and dark.dtype == np.uint8
        assert dark.astype(float).mean() < 0.75 * photo.astype(float).mean()
