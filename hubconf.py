"""torch.hub entry point.

model = torch.hub.load("path/to/AirNet", "airnet", source="local", pretrained=True)  # shipped
model = torch.hub.load("path/to/AirNet", "airnet", source="local", checkpoint="ckpt/All.pth")
model = torch.hub.load("path/to/AirNet", "airnet", source="local", checkpoint="hf://owner/name")
from utils.restore import restore  # importable once torch.hub has loaded this repository
restored = restore(rgb_uint8, model)
"""

from __future__ import annotations

from pathlib import Path

import torch

from net import AirNet, load_airnet
from utils.checkpoint import SHIPPED_WEIGHTS

dependencies = ["torch", "torchvision", "numpy", "PIL", "safetensors"]


def airnet(
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = False,
    **model_kwargs,
) -> AirNet:
    """AirNet in eval mode.

    Args:
        checkpoint: an official file (All.pth, Denoise.pth, ...) or a checkpoint of this
            repository, ``.pth`` or ``.safetensors`` (told apart by content), a Hugging Face
            Hub folder (scripts/make_hub_folder.py) or ``hf://owner/name`` (needs
            requirements-hub.txt); a relative path is taken from the current directory. None
            (and not ``pretrained``) gives random weights (for tests, or to train from).
        device: where to put the model.
        pretrained: without ``checkpoint``, load the weights shipped in ckpt/ (a small AirNet
            trained by this repository's train.py, not the paper's: ckpt/MODEL_CARD.md).
        model_kwargs: AirNet constructor arguments (n_feats, n_groups, ...), which override the
            size stored in our checkpoints.
    """
    if checkpoint is None and pretrained:
        checkpoint = SHIPPED_WEIGHTS
    if checkpoint is None:
        return AirNet(**model_kwargs).to(device).eval()
    return load_airnet(checkpoint, device, **model_kwargs)
