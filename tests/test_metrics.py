"""PSNR / SSIM of utils.metrics against scikit-image and hand-computed values."""

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from utils.metrics import psnr, rgb_to_y, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    target = rng.random((40, 33, 3))
    restored = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    return restored, target


def test_identical_images_give_inf_psnr_and_ssim_one():
    image = np.random.default_rng(1).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    assert psnr(image, image) == math.inf
    assert psnr(image / 255.0, image / 255.0, y_channel=True) == math.inf
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(image, image, y_channel=True) == pytest.approx(1.0)


def test_psnr_of_a_known_error():
    target = np.zeros((16, 16, 3))
    # MSE = 0.1 ** 2 = 0.01 -> PSNR = 10 * log10(1 / 0.01) = 20 dB.
    assert psnr(np.full_like(target, 0.1), target) == pytest.approx(20.0)


def test_matches_scikit_image(pair):
    restored, target = pair
    assert psnr(restored, target) == pytest.approx(
        peak_signal_noise_ratio(target, restored, data_range=1), abs=1e-9
    )
    assert ssim(restored, target) == pytest.approx(
        structural_similarity(target, restored, data_range=1, channel_axis=-1), abs=1e-9
    )


def test_uint8_inputs_are_scaled_to_unit_range(pair):
    restored, target = (np.round(a * 255).astype(np.uint8) for a in pair)
    assert psnr(restored, target) == pytest.approx(psnr(restored / 255.0, target / 255.0))
    assert ssim(restored, target) == pytest.approx(ssim(restored / 255.0, target / 255.0))


def test_restored_values_are_clipped_before_scoring(pair):
    _, target = pair
    overshoot = target.copy()
    overshoot[target > 0.9] = 1.5
    overshoot[target < 0.1] = -0.5
    assert psnr(overshoot, target) == pytest.approx(psnr(np.clip(overshoot, 0, 1), target))


def test_y_channel_uses_bt601_luma(pair):
    restored, target = pair
    weights = np.array([65.481, 128.553, 24.966])
    y_restored = (16 + restored @ weights) / 255
    y_target = (16 + target @ weights) / 255
    np.testing.assert_allclose(rgb_to_y(target), y_target)
    assert psnr(restored, target, y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(y_target, y_restored, data_range=1)
    )
    assert ssim(restored, target, y_channel=True) == pytest.approx(
        structural_similarity(y_target, y_restored, data_range=1)
    )


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
