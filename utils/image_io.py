"""Image files in and out, and conversion to and from tensors.

Reading and writing live in ``utils.image_files`` (numpy and PIL only, shared with the torch-free
``restore_onnx.py``); this module re-exports them and adds the torch conversions.
"""

from __future__ import annotations

import numpy as np
import torch

from utils.image_files import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageReadError,
    array_to_image,
    check_image,
    image_to_array,
    list_images,
    read_image,
    read_image_alpha,
    save_image,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageReadError",
    "check_image",
    "image_to_tensor",
    "list_images",
    "read_image",
    "read_image_alpha",
    "save_image",
    "tensor_to_image",
]


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(image_to_array(rgb))


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> uint8 (H, W, 3), clamped and rounded."""
    return array_to_image(tensor.detach().float().cpu().numpy())
