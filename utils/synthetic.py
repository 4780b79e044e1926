"""Synthetic haze and rain from clean photos, for training without real degraded pairs.

Haze follows the atmospheric scattering model used to make RESIDE OTS (Li et al., "Benchmarking
Single-Image Dehazing and Beyond", TIP 2019):

    I = J * t + A * (1 - t),    t = exp(-beta * d)

with the atmospheric light A in [0.8, 1.0] and the scattering coefficient beta in [0.04, 0.2],
the grid of OTS. RESIDE took the depth d from a depth network; none can be had here, so
``depth_proxy`` derives a relative depth r in [0, 1] from two cues that hold for most outdoor
photos: the top of the frame is farther than the bottom (a ground plane seen from eye height),
and bright, unsaturated regions (sky, distant haze-lit surfaces) are far. r is mapped to
d = DEPTH_NEAR + (DEPTH_FAR - DEPTH_NEAR) * r, so that t spans exp(-0.04 * 1) = 0.96 (light haze
near the camera, thinnest grid point) to exp(-0.2 * 10) = 0.14 (dense haze far away, thickest),
the range of transmissions that OTS images show.

Rain follows the additive streak model of the Rain100L family (Yang et al., CVPR 2017):
O = clip(B + S), S a layer of thin, bright, nearly parallel streaks; ``add_rain_streaks`` draws
sparse seeds, smears them along one direction and adds them with a random brightness.

All randomness comes from the ``numpy.random.Generator`` passed in, so a sample is reproducible
from its seed. Images are uint8 (H, W, 3) in and out.
"""

from __future__ import annotations

import math

import numpy as np

ATMOSPHERE_RANGE = (0.8, 1.0)  # A, RESIDE OTS
BETA_RANGE = (0.04, 0.2)  # beta, RESIDE OTS
DEPTH_NEAR, DEPTH_FAR = 1.0, 10.0  # d at relative depth 0 and 1
VERTICAL_WEIGHT = 0.6  # share of the vertical-position cue in the relative depth


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of (H, W) float, edges replicated (summed-area table)."""
    if radius <= 0:
        return image
    padded = np.pad(image, radius + 1, mode="edge").astype(np.float64)
    table = padded.cumsum(axis=0).cumsum(axis=1)
    size = 2 * radius + 1
    height, width = image.shape
    # Window sum at (i, j) = T[i+s, j+s] - T[i, j+s] - T[i+s, j] + T[i, j], T the table.
    below_right = table[size : size + height, size : size + width]
    above_right = table[:height, size : size + width]
    below_left = table[size : size + height, :width]
    above_left = table[:height, :width]
    window_sum = below_right - above_right - below_left + above_left
    return (window_sum / (size * size)).astype(np.float32)


def depth_proxy(clean: np.ndarray) -> np.ndarray:
    """Relative depth r (H, W) float32 in [0, 1] of a clean uint8 (H, W, 3) outdoor photo.

    r = normalise(0.6 * height_in_frame + 0.4 * blur(brightness * (1 - saturation))), where
    height_in_frame runs from 0 (bottom row) to 1 (top row). The blur (radius 1/16 of the short
    side) keeps texture out of the depth, so haze varies smoothly as real depth mostly does.
    """
    rgb = clean.astype(np.float32) / 255.0
    height, width = rgb.shape[:2]
    brightest, darkest = rgb.max(axis=2), rgb.min(axis=2)
    saturation = (brightest - darkest) / np.maximum(brightest, 1e-3)
    skyness = box_blur(rgb.mean(axis=2) * (1.0 - saturation), max(1, min(height, width) // 16))
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]  # top 1, bottom 0
    relative = VERTICAL_WEIGHT * rows + (1.0 - VERTICAL_WEIGHT) * skyness
    low, high = float(relative.min()), float(relative.max())
    return ((relative - low) / max(high - low, 1e-6)).astype(np.float32)


def transmission(relative_depth: np.ndarray, beta: float) -> np.ndarray:
    """t = exp(-beta * d), d = DEPTH_NEAR + (DEPTH_FAR - DEPTH_NEAR) * relative depth."""
    depth = DEPTH_NEAR + (DEPTH_FAR - DEPTH_NEAR) * relative_depth
    return np.exp(-beta * depth).astype(np.float32)


def add_haze(clean: np.ndarray, atmosphere: float, beta: float) -> np.ndarray:
    """I = J * t + A * (1 - t) on a uint8 (H, W, 3) image, rounded back to uint8."""
    t = transmission(depth_proxy(clean), beta)[..., None]  # (H, W, 1)
    hazy = clean.astype(np.float32) / 255.0 * t + atmosphere * (1.0 - t)
    return np.clip(hazy * 255.0 + 0.5, 0, 255).astype(np.uint8)


def random_haze(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze with A and beta drawn uniformly from the RESIDE OTS ranges."""
    atmosphere = float(rng.uniform(*ATMOSPHERE_RANGE))
    beta = float(rng.uniform(*BETA_RANGE))
    return add_haze(clean, atmosphere, beta)


def streak_layer(
    shape: tuple[int, int],
    rng: np.random.Generator,
    density: float,
    length: int,
    angle_deg: float,
) -> np.ndarray:
    """(H, W) float32 streaks in [0, 1]: seeds with probability ``density`` smeared along a
    line of ``length`` pixels at ``angle_deg`` from vertical, brighter in the middle."""
    height, width = shape
    seeds = (rng.random(shape) < density).astype(np.float32) * rng.uniform(0.5, 1.0, shape)
    angle = math.radians(angle_deg)
    layer = np.zeros(shape, dtype=np.float32)
    for step in range(length):
        offset = step - length // 2
        dy, dx = round(offset * math.cos(angle)), round(offset * math.sin(angle))
        weight = 1.0 - abs(offset) / (length / 2 + 1)  # a streak fades at its ends
        shifted = np.roll(seeds, (dy, dx), axis=(0, 1))
        np.maximum(layer, weight * shifted, out=layer)
    return layer


def add_rain_streaks(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light rain in the style of Rain100L: one direction per image (within 25 degrees of
    vertical), 10-30 px streaks, density 0.2-0.8 % of pixels, brightness 0.6-0.9."""
    layer = streak_layer(
        clean.shape[:2],
        rng,
        density=float(rng.uniform(0.002, 0.008)),
        length=int(rng.integers(10, 31)),
        angle_deg=float(rng.uniform(-25.0, 25.0)),
    )
    brightness = float(rng.uniform(0.6, 0.9))
    rainy = clean.astype(np.float32) + 255.0 * brightness * layer[..., None]
    return np.clip(rainy + 0.5, 0, 255).astype(np.uint8)
