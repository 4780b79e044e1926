"""Synthetic haze and rain from clean photos, for training without real degraded pairs.

Haze follows the atmospheric scattering model used to make RESIDE OTS (Li et al., "Benchmarking
Single-Image Dehazing and Beyond", TIP 2019):

    I = J * t + A * (1 - t),    t = exp(-beta * d)

with the atmospheric light A in [0.8, 1.0] (grey) and the scattering coefficient beta in
[0.04, 0.2]: the grid of OTS, whose file names (``<id>_<A>_<beta>``) the official AirNet
repository's ``data_dir/hazy/hazy_outside.txt`` lists. RESIDE took the depth d from a depth
network; none can be had here, so ``depth_proxy`` derives a relative depth r in [0, 1] from two
cues that hold for most outdoor photos: the top of the frame is farther than the bottom (a
ground plane seen from eye height), and bright, unsaturated regions (sky, distant haze-lit
surfaces) are far. r becomes a depth with RESIDE's statistics:

    d = d_near * (1 + (ratio - 1) * r),  d_near ~ U[1.5, 4.5],  ratio ~ U[1.5, 2.5]

RESIDE's outdoor depth maps are flat: in the five RESIDE-beta outdoor training depth maps that
SungyunKim-AI/RUS_Dehazing publishes (commit 80691b1,
``DMDNet/data_sample/RESIDE-beta/train/depth/``), d lies between about 1.5 and 8.7 and, within
one image, its 95th percentile is only 1.5-2.5 times its 5th. So one photo's haze varies by a
factor of at most 2.5 in optical depth, and a photo's nearest haze is already
exp(-beta * d_near): 0.94 to 0.41 over the grid. (Until this change the depth ran from 1 to 10
in every photo, a far steeper veil than RESIDE's; a model trained on it left blotches where it
guessed the depth wrong.)

Rain follows the additive streak model of the Rain100L family (Yang et al., CVPR 2017):
O = clip(B + S), S a layer of thin, bright, nearly parallel streaks; ``add_rain_streaks`` draws
sparse seeds, smears them along one direction and adds them with a random brightness.

Motion blur (``motion_blur``) is camera shake in the spirit of Boracchi & Foi ("Modeling the
Performance of Image Restoration From Motion Blur", TIP 2012): a random trajectory of the
camera during the exposure, rasterised into a blur kernel that is convolved with the photo.
It stands in for GoPro (Nah et al., CVPR 2017), which is not available here; see
``motion_blur`` for where the two differ.

Low light (``low_light``) darkens with the global curve of Lv et al. ("Attention Guided
Low-light Image Enhancement with a Large Scale Low-light Simulation Dataset", IJCV 2021) and
adds the signal-dependent (Poisson-Gaussian, heteroscedastic) noise of Brooks et al.
("Unprocessing Images for Learned Raw Denoising", CVPR 2019). It stands in for LOL (Wei et
al., BMVC 2018) where LOL is not used; see ``low_light`` for where the two differ.

All randomness comes from the ``numpy.random.Generator`` passed in, so a sample is reproducible
from its seed. Images are uint8 (H, W, 3) in and out.
"""

from __future__ import annotations

import math

import numpy as np

ATMOSPHERE_RANGE = (0.8, 1.0)  # A, RESIDE OTS (hazy_outside.txt of the official repository)
BETA_RANGE = (0.04, 0.2)  # beta, RESIDE OTS (same list)
NEAR_DEPTH_RANGE = (1.5, 4.5)  # d at relative depth 0: RESIDE-beta outdoor depth maps (above)
DEPTH_RATIO_RANGE = (1.5, 2.5)  # far / near depth in one photo (their 95th / 5th percentiles)
VERTICAL_WEIGHT = 0.6  # share of the vertical-position cue in the relative depth

BLUR_LENGTH_RANGE = (6.0, 24.0)  # px: path length of the camera shake over one exposure
TRAJECTORY_SAMPLES = 256  # positions per trajectory (equal exposure time each)
DIFFUSION_RANGE = (0.5, 3.0)  # rad: std of the heading's random walk per exposure, anxiety 1
CENTRIPETAL_RANGE = (0.0, 1.0)  # pull back towards the starting point (hand tremor returns)
CENTRIPETAL_GAIN = 10.0
MAX_SHAKES = 3.0  # expected impulsive shakes per exposure at most (at anxiety 1)
SHAKE_TURN = 0.5  # rad: a shake reverses the heading to within this angle

LOWLIGHT_ALPHA = (0.9, 1.0)  # Lv et al. 2021: out = beta * (alpha * in) ** gamma
LOWLIGHT_BETA = (0.5, 1.0)
LOWLIGHT_GAMMA = (1.5, 5.0)
SHOT_NOISE_RANGE = (1e-4, 1.2e-2)  # Brooks et al. 2019, log-uniform (variance per unit signal)
READ_NOISE_LINE = (2.18, 1.20, 0.26)  # log read = 2.18 * log shot + 1.20 + N(0, 0.26^2)


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


def transmission(
    relative_depth: np.ndarray, beta: float, near_depth: float, depth_ratio: float
) -> np.ndarray:
    """t = exp(-beta * d), d = near_depth * (1 + (depth_ratio - 1) * relative_depth).

    Args:
        relative_depth: (H, W) float in [0, 1], 0 nearest (``depth_proxy``).
        beta: scattering coefficient, RESIDE OTS's [0.04, 0.2].
        near_depth: d at relative depth 0, RESIDE-beta's [1.5, 4.5] (module docstring).
        depth_ratio: d at relative depth 1 over d at 0, RESIDE-beta's [1.5, 2.5].

    Returns:
        (H, W) float32 in (0, 1].
    """
    depth = near_depth * (1.0 + (depth_ratio - 1.0) * relative_depth)
    return np.exp(-beta * depth).astype(np.float32)


def add_haze(
    clean: np.ndarray, atmosphere: float, beta: float, near_depth: float, depth_ratio: float
) -> np.ndarray:
    """I = J * t + A * (1 - t) on a uint8 (H, W, 3) image, rounded back to uint8; t from
    ``transmission`` on the photo's ``depth_proxy``. ``atmosphere`` is A in [0, 1]."""
    t = transmission(depth_proxy(clean), beta, near_depth, depth_ratio)[..., None]  # (H, W, 1)
    hazy = clean.astype(np.float32) / 255.0 * t + atmosphere * (1.0 - t)
    return np.clip(hazy * 255.0 + 0.5, 0, 255).astype(np.uint8)


def random_haze_parameters(rng: np.random.Generator) -> dict[str, float]:
    """A, beta, the near depth and the depth ratio, each uniform in its range (module
    docstring), as the keyword arguments of ``add_haze``."""
    return {
        "atmosphere": float(rng.uniform(*ATMOSPHERE_RANGE)),
        "beta": float(rng.uniform(*BETA_RANGE)),
        "near_depth": float(rng.uniform(*NEAR_DEPTH_RANGE)),
        "depth_ratio": float(rng.uniform(*DEPTH_RATIO_RANGE)),
    }


def random_haze(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze on a uint8 (H, W, 3) photo with parameters from ``random_haze_parameters``."""
    return add_haze(clean, **random_haze_parameters(rng))


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


def shake_trajectory(rng: np.random.Generator, length: float) -> np.ndarray:
    """Camera positions (TRAJECTORY_SAMPLES,) complex (x + iy, px) during one exposure.

    A particle starts at 0 with speed s = length / (samples - 1) per step in a random
    direction; the speed stays s (so every position gets equal exposure time) while the
    velocity v changes at each step by

        dv = a * s * (g / sqrt(n) * (xi_1 + i xi_2) - CENTRIPETAL_GAIN * c / n * x / length)

    (xi standard normal: inertia plus a random turn; the second term pulls back towards the
    start, as a hand's tremor returns), and with probability a * p per step an impulsive shake
    reverses the heading to within SHAKE_TURN rad. The "anxiety" a ~ U(0, 1) sets how
    erratic the exposure is (a = 0: a straight line), g ~ DIFFUSION_RANGE, c ~
    CENTRIPETAL_RANGE, p ~ U(0, MAX_SHAKES / n). This follows the model of Boracchi & Foi
    (TIP 2012): inertia, Gaussian perturbation, a centripetal term and abrupt shakes; the
    scaling by n keeps the shapes independent of the number of samples.
    """
    n = TRAJECTORY_SAMPLES
    speed = length / (n - 1)
    anxiety = rng.uniform(0.0, 1.0)
    diffusion = rng.uniform(*DIFFUSION_RANGE)
    centripetal = rng.uniform(*CENTRIPETAL_RANGE)
    shake_probability = anxiety * rng.uniform(0.0, MAX_SHAKES / n)
    velocity = speed * np.exp(1j * rng.uniform(0.0, 2 * math.pi))
    turns = rng.standard_normal((n - 1, 2)) @ np.array([1.0, 1.0j])  # (n-1,) complex
    shakes = rng.random(n - 1) < shake_probability
    shake_angles = math.pi + rng.uniform(-SHAKE_TURN, SHAKE_TURN, n - 1)
    positions = np.zeros(n, dtype=np.complex128)
    for t in range(n - 1):
        pull = CENTRIPETAL_GAIN * centripetal / n * positions[t] / length
        velocity = velocity + anxiety * speed * (diffusion / math.sqrt(n) * turns[t] - pull)
        if shakes[t]:
            velocity = velocity * np.exp(1j * shake_angles[t])
        velocity = velocity / abs(velocity) * speed
        positions[t + 1] = positions[t] + velocity
    return positions


def trajectory_kernel(positions: np.ndarray) -> np.ndarray:
    """Rasterise camera positions into a blur kernel (k, k) float32 that sums to 1.

    Each position deposits an equal share of the exposure on its four neighbouring pixels
    (bilinear weights). The kernel is centred on the positions' mean, so blurring does not
    shift the image (GoPro's sharp frame is the middle one of the frames averaged); its odd
    side k = 2 * ceil(max |offset|) + 3 fits the whole path with a pixel of margin. For
    BLUR_LENGTH_RANGE, k <= 27 (a straight 24 px path); over 2,000 draws of ``motion_kernel``
    k ran from 7 to 27, median 15.
    """
    offsets = positions - positions.mean()
    radius = math.ceil(max(np.abs(offsets.real).max(), np.abs(offsets.imag).max())) + 1
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1), dtype=np.float64)
    cols, rows = offsets.real + radius, offsets.imag + radius
    col0, row0 = np.floor(cols).astype(int), np.floor(rows).astype(int)
    frac_col, frac_row = cols - col0, rows - row0
    for drow, row_weight in ((0, 1 - frac_row), (1, frac_row)):
        for dcol, col_weight in ((0, 1 - frac_col), (1, frac_col)):
            np.add.at(kernel, (row0 + drow, col0 + dcol), row_weight * col_weight)
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(rng: np.random.Generator) -> np.ndarray:
    """A random camera-shake kernel: path length ~ U(BLUR_LENGTH_RANGE) px, then
    ``shake_trajectory`` and ``trajectory_kernel``."""
    return trajectory_kernel(shake_trajectory(rng, float(rng.uniform(*BLUR_LENGTH_RANGE))))


def _fft_length(n: int) -> int:
    """The smallest m >= n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 1


def blur_image(clean: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve uint8 (H, W, 3) with an odd (k, k) kernel, edges mirrored, rounded to uint8.

    Computed with FFTs (float32) over the mirror-padded image; the padding (k // 2 on each
    side) is wide enough that the circular wrap never reaches the kept region.
    """
    radius = kernel.shape[0] // 2
    height, width = clean.shape[:2]
    channels = clean.transpose(2, 0, 1).astype(np.float32)  # (3, H, W)
    padded = np.pad(channels, ((0, 0), (radius, radius), (radius, radius)), "symmetric")
    shape = (_fft_length(padded.shape[1]), _fft_length(padded.shape[2]))
    spectrum = np.fft.rfft2(padded, s=shape) * np.fft.rfft2(kernel.astype(np.float32), s=shape)
    full = np.fft.irfft2(spectrum, s=shape)  # (3, >= H + 2r, >= W + 2r)
    # Circular convolution with the kernel's centre at index r: image pixel (i, j) comes out
    # at (i + 2r, j + 2r), computed from padded rows i..i+2r and columns j..j+2r only.
    blurred = full[:, 2 * radius : 2 * radius + height, 2 * radius : 2 * radius + width]
    return np.clip(blurred.transpose(1, 2, 0) + 0.5, 0, 255).astype(np.uint8)


def motion_blur(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-shake blur of a uint8 (H, W, 3) photo with a random ``motion_kernel``.

    Where it differs from GoPro: GoPro's blurred frames average 7 to 13 consecutive sharp
    frames of a 240 fps video (1280 x 720), so their blur follows real camera and object
    motion and varies over the image (rotation, depth, moving people and cars), and averaging
    discrete frames can leave ghosts; here one spatially uniform kernel of a synthetic
    continuous path blurs the whole photo, with no moving objects, no noise and no
    saturated highlights. Blur lengths are in pixels of the photo given (6 to 24 px on
    481 x 321 BSD photos; GoPro's blur extends tens of pixels at 1280 x 720).
    """
    return blur_image(clean, motion_kernel(rng))


def darken(image: np.ndarray, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """beta * (alpha * x) ** gamma on float x in [0, 1] (Lv et al., IJCV 2021)."""
    return beta * (alpha * image) ** gamma


def add_signal_dependent_noise(
    signal: np.ndarray, shot: float, read: float, rng: np.random.Generator
) -> np.ndarray:
    """signal + sqrt(shot * signal + read) * N(0, 1): the heteroscedastic Gaussian
    approximation of Poisson (shot) plus Gaussian (read) noise, on float in [0, 1]."""
    return signal + np.sqrt(shot * signal + read) * rng.standard_normal(signal.shape)


def low_light(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark, noisy version of a well-exposed uint8 (H, W, 3) photo.

    Darkening (Lv et al., IJCV 2021): y = beta * (alpha * x) ** gamma on x in [0, 1], with
    alpha ~ U(0.9, 1), beta ~ U(0.5, 1), gamma ~ U(1.5, 5): a mid-grey 0.5 falls to 0.009-0.35.
    Noise (Brooks et al., CVPR 2019): z = y + sqrt(shot * y + read) * N(0, 1) per pixel and
    channel, shot log-uniform in [1e-4, 1.2e-2], log read = 2.18 log shot + 1.20 + N(0, 0.26^2):
    shot noise grows with the signal, read noise sets a floor. Clipped and rounded to uint8.

    Where it differs from LOL: LOL's low images are real short exposures of the same scene,
    processed by the camera, so their noise is spatially correlated and partly chromatic,
    they carry colour casts, and the step from low to normal light is not one global curve;
    here the curve is global, the noise independent per pixel and channel, and colours keep
    their balance. LOL is also darker: on 60 LOL training pairs the low images average 11.8
    grey levels against 129.8 for the normal-light ones, where these ranges take 20 of those
    normal-light images to 36 on average (4.5 to 81).
    """
    alpha = rng.uniform(*LOWLIGHT_ALPHA)
    beta = rng.uniform(*LOWLIGHT_BETA)
    gamma = rng.uniform(*LOWLIGHT_GAMMA)
    shot = math.exp(rng.uniform(math.log(SHOT_NOISE_RANGE[0]), math.log(SHOT_NOISE_RANGE[1])))
    slope, intercept, spread = READ_NOISE_LINE
    read = math.exp(slope * math.log(shot) + intercept + spread * rng.standard_normal())
    dark = darken(clean.astype(np.float64) / 255.0, alpha, beta, gamma)
    noisy = add_signal_dependent_noise(dark, shot, read, rng)
    return np.clip(noisy * 255.0 + 0.5, 0, 255).astype(np.uint8)
