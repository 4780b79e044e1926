"""Synthetic haze and rain: shapes, ranges, determinism, and the physics of the haze model."""

from __future__ import annotations

import numpy as np
import pytest

from utils.synthetic import (
    add_haze,
    add_rain_streaks,
    box_blur,
    depth_proxy,
    random_haze,
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
    light, dense = transmission(depth, 0.04), transmission(depth, 0.2)
    assert np.all(np.diff(light) < 0) and np.all(np.diff(dense) < 0)
    assert np.all(dense < light)
    assert light[0] == pytest.approx(np.exp(-0.04), rel=1e-6)  # nearest, thinnest: 0.96
    assert dense[-1] == pytest.approx(np.exp(-2.0), rel=1e-6)  # farthest, thickest: 0.14


def test_haze_moves_pixels_towards_the_atmospheric_light_more_where_far():
    photo = outdoor_photo()
    hazy = add_haze(photo, atmosphere=0.9, beta=0.2)
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
        np.abs(add_haze(photo, 0.9, 0.04) - photo.astype(float)).mean()
        < np.abs(hazy - photo.astype(float)).mean()
    )  # thicker haze changes more


def test_random_haze_and_rain_are_reproducible_from_the_seed():
    photo = outdoor_photo()
    for make in (random_haze, add_rain_streaks):
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
