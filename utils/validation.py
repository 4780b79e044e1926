"""Validation on a held-out split, and the rule that decides which export may ship.

Used by ``train.py`` (the ``val`` records of log.jsonl, ``airnet_best.pth``) and by
``scripts/average_weights.py validate``, so both score an export identically.

The shipping rule (decision 14; one function, ``qualifies``, for the all-in-one file and the
one-by-one files alike): an export *qualifies* when every degradation type's mean PSNR on the
split is above the mean PSNR of its degraded inputs (it removes what it was trained to remove),
no lower than the currently shipped file for the same role on the same images (``reference``,
``REFERENCE_TOLERANCE`` dB of slack, so that no type is traded for another), and, when clean
photos are validated, it keeps them: PSNR of output vs input >= ``CLEAN_MIN_PSNR`` dB and a mean
absolute change of brightness <= ``CLEAN_MAX_BRIGHTNESS`` grey levels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from utils.image_io import image_to_tensor, tensor_to_image
from utils.metrics import psnr, ssim
from utils.train_dataset import CLEAN, ValidationImage

CLEAN_MIN_PSNR = 30.0  # dB of output vs input for a clean photo (issue 19's target)
CLEAN_MAX_BRIGHTNESS = 3.0  # grey levels (0-255) of |mean(output) - mean(input)|
REFERENCE_TOLERANCE = 0.05  # dB below the shipped file's PSNR that still counts as no lower


def mean_brightness_change(output: np.ndarray, reference: np.ndarray) -> float:
    """|mean(output) - mean(reference)| in grey levels (0-255).

    Args:
        output: (H, W, 3) float in [0, 1] (clipped here) or uint8.
        reference: uint8 (H, W, 3) or float in [0, 1], same shape.
    """

    def grey_levels(image: np.ndarray) -> float:
        if image.dtype == np.uint8:
            return float(image.mean())
        return float(np.clip(image, 0.0, 1.0).mean() * 255.0)

    return abs(grey_levels(output) - grey_levels(reference))


@torch.inference_mode()
def validate(
    model: torch.nn.Module,
    images: list[ValidationImage],
    device: torch.device,
    reference: dict[str, float | bool | None] | None = None,
) -> tuple[dict[str, float | bool | None], dict[str, list[np.ndarray]]]:
    """PSNR/SSIM per type with test.py's metrics (RGB in [0, 1], clipped), and the rule.

    Returns (metrics, restored uint8 images per type). Metrics: ``psnr/TYPE``,
    ``ssim/TYPE`` and ``input_psnr/TYPE`` (the degraded input's own PSNR, so a log shows
    whether the model helps); for ``clean``, ``psnr/clean`` is output vs input,
    ``brightness/clean`` the mean over images of the brightness change (grey levels) and
    ``input_psnr/clean`` None; ``psnr/mean`` over the degradation types (``clean`` excluded)
    and ``qualifies`` (the shipping rule, ``qualifies``, against ``reference``: the shipped
    file's metrics on the same images, or None). The model is back in training mode
    afterwards.
    """
    model.eval()
    scores: dict[str, list[tuple[float, float, float, float]]] = {}
    restored_images: dict[str, list[np.ndarray]] = {}
    for image in images:
        x = image_to_tensor(image.degraded).to(device)  # (1, 3, H, W)
        restored = model(x).float().cpu()  # (1, 3, H, W), unclamped
        array = restored[0].permute(1, 2, 0).numpy()  # (H, W, 3); the metrics clip it
        scores.setdefault(image.de_type, []).append(
            (
                psnr(array, image.clean),
                ssim(array, image.clean),
                psnr(image.degraded, image.clean),
                mean_brightness_change(array, image.clean),
            )
        )
        restored_images.setdefault(image.de_type, []).append(tensor_to_image(restored))
    model.train()
    results: dict[str, float | bool | None] = {}
    for de_type, values in scores.items():
        columns = [float(np.mean(column)) for column in zip(*values, strict=True)]
        results[f"psnr/{de_type}"], results[f"ssim/{de_type}"] = columns[0], columns[1]
        if de_type == CLEAN:
            results[f"input_psnr/{de_type}"] = None  # the input is the target: infinite
            results[f"brightness/{de_type}"] = columns[3]
        else:
            results[f"input_psnr/{de_type}"] = columns[2]
    degradations = [t for t in scores if t != CLEAN]
    results["psnr/mean"] = float(np.mean([results[f"psnr/{t}"] for t in degradations]))
    results["qualifies"] = qualifies(results, reference)
    return results, restored_images


def qualifies(
    metrics: dict[str, float | bool | None],
    reference: dict[str, float | bool | None] | None = None,
) -> bool:
    """The shipping rule of the module docstring on ``validate``'s metrics.

    Args:
        metrics: ``validate``'s metrics of the export.
        reference: ``validate``'s metrics of the shipped file for the same role on the same
            images, or None where none is shipped (then only the inputs and clean photos
            count). A type the reference was not validated on is compared with its input only.

    A type whose input PSNR is not recorded (an old log) cannot show a gain, so it fails.
    """
    ok = True
    for de_type, value in psnr_by_type(metrics).items():
        if de_type == CLEAN:
            brightness = metrics.get(f"brightness/{CLEAN}")
            kept = brightness is not None and brightness <= CLEAN_MAX_BRIGHTNESS
            ok &= value >= CLEAN_MIN_PSNR and kept
            continue
        input_psnr = metrics.get(f"input_psnr/{de_type}")
        ok &= input_psnr is not None and value > input_psnr
        shipped = None if reference is None else reference.get(f"psnr/{de_type}")
        if shipped is not None:
            ok &= value >= shipped - REFERENCE_TOLERANCE
    return bool(ok)


def psnr_by_type(metrics: dict[str, float | bool | None]) -> dict[str, float]:
    """``{TYPE: psnr/TYPE}`` of ``validate``'s metrics (``psnr/mean`` left out)."""
    return {
        name.removeprefix("psnr/"): float(value)
        for name, value in metrics.items()
        if name.startswith("psnr/") and name != "psnr/mean" and value is not None
    }


def format_comparison(
    metrics: dict[str, float | bool | None],
    reference: dict[str, float | bool | None] | None,
) -> str:
    """Per type, the export, the shipped file and the input side by side, one line:
    ``derain 29.10 (shipped 25.70, input 25.52)``; clean photos with their brightness."""
    parts = []
    for de_type, value in psnr_by_type(metrics).items():
        shipped = None if reference is None else reference.get(f"psnr/{de_type}")
        beside = [] if shipped is None else [f"shipped {shipped:.2f}"]
        if de_type == CLEAN:
            beside.append(f"brightness {metrics.get(f'brightness/{CLEAN}', math.nan):.2f}")
        else:
            beside.append(f"input {metrics.get(f'input_psnr/{de_type}') or math.nan:.2f}")
        parts.append(f"{de_type} {value:.2f} ({', '.join(beside)})")
    return "; ".join(parts)


def is_better_export(
    metrics: dict[str, float | bool | None], best_psnr: float, best_qualifies: bool
) -> bool:
    """Whether an export with ``metrics`` replaces the best so far: a qualifying export beats
    any that does not; among equals (both qualifying, or none yet), the higher ``psnr/mean``.
    """
    candidate = bool(metrics["qualifies"])
    if candidate != best_qualifies:
        return candidate
    return float(metrics["psnr/mean"]) > best_psnr
