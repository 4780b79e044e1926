"""Validation on a held-out split, and the rule that decides which export may ship.

Used by ``train.py`` (the ``val`` records of log.jsonl, ``airnet_best.pth``) and by
``scripts/average_weights.py validate``, so both score an export identically.

The shipping rule (issue "Shipped weights, round two"): an export *qualifies* when every
degradation type's mean PSNR on the split is above the mean PSNR of its degraded inputs (it
removes what it was trained to remove, no type traded for another), and, when clean photos are
validated, it keeps them: PSNR of output vs input >= ``CLEAN_MIN_PSNR`` dB and a mean absolute
change of brightness <= ``CLEAN_MAX_BRIGHTNESS`` grey levels.
"""

from __future__ import annotations

import numpy as np
import torch

from utils.image_io import image_to_tensor, tensor_to_image
from utils.metrics import psnr, ssim
from utils.train_dataset import CLEAN, ValidationImage

CLEAN_MIN_PSNR = 30.0  # dB of output vs input for a clean photo (issue 19's target)
CLEAN_MAX_BRIGHTNESS = 3.0  # grey levels (0-255) of |mean(output) - mean(input)|


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
    model: torch.nn.Module, images: list[ValidationImage], device: torch.device
) -> tuple[dict[str, float | bool | None], dict[str, list[np.ndarray]]]:
    """PSNR/SSIM per type with test.py's metrics (RGB in [0, 1], clipped), and the rule.

    Returns (metrics, restored uint8 images per type). Metrics: ``psnr/TYPE``,
    ``ssim/TYPE`` and ``input_psnr/TYPE`` (the degraded input's own PSNR, so a log shows
    whether the model helps); for ``clean``, ``psnr/clean`` is output vs input,
    ``brightness/clean`` the mean over images of the brightness change (grey levels) and
    ``input_psnr/clean`` None; ``psnr/mean`` over the degradation types (``clean`` excluded)
    and ``qualifies`` (the shipping rule, ``qualifies``). The model is back in training mode
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
    results["qualifies"] = qualifies(results)
    return results, restored_images


def qualifies(metrics: dict[str, float | bool | None]) -> bool:
    """The shipping rule of the module docstring on ``validate``'s metrics.

    A type whose input PSNR is not recorded (an old log) cannot show a gain, so it fails.
    """
    ok = True
    for name, value in metrics.items():
        if not name.startswith("psnr/") or name == "psnr/mean":
            continue
        de_type = name.removeprefix("psnr/")
        if de_type == CLEAN:
            brightness = metrics.get(f"brightness/{CLEAN}")
            kept = brightness is not None and brightness <= CLEAN_MAX_BRIGHTNESS
            ok &= value >= CLEAN_MIN_PSNR and kept
        else:
            reference = metrics.get(f"input_psnr/{de_type}")
            ok &= reference is not None and value > reference
    return bool(ok)


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
