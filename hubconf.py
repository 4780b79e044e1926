"""torch.hub entry point.

model = torch.hub.load("path/to/AirNet", "airnet", source="local", pretrained=True)  # shipped
model = torch.hub.load("path/to/AirNet", "airnet", source="local", pretrained=True, task="derain")
model = torch.hub.load("path/to/AirNet", "airnet", source="local", checkpoint="ckpt/All.pth")
model = torch.hub.load("path/to/AirNet", "airnet", source="local", checkpoint="hf://owner/name")
from utils.restore import restore  # importable once torch.hub has loaded this repository
restored = restore(rgb_uint8, model)
"""

from __future__ import annotations

from pathlib import Path

import torch

from net import AirNet, load_airnet
from utils.checkpoint import TASK_FILES, task_checkpoint

dependencies = ["torch", "torchvision", "numpy", "PIL", "safetensors"]


def airnet(
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = False,
    task: str = "all",
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
        pretrained: without ``checkpoint``, load the weights of ``task`` in ckpt/: the
            official file where present, else ours (small AirNets trained by this repository's
            train.py, not the paper's: ckpt/MODEL_CARD.md).
        task: "all" (the all-in-one file: unknown or mixed degradations) or, when the
            degradation is known, "denoise", "derain" or "dehaze" (a one-by-one file trained on
            that task alone; the all-in-one where that file does not ship).
        model_kwargs: AirNet constructor arguments (n_feats, n_groups, ...), which override the
            size stored in our checkpoints.
    """
    if task not in TASK_FILES:
        raise ValueError(f"task {task!r}: one of {', '.join(TASK_FILES)}")
    if checkpoint is None and pretrained:
        checkpoint = task_checkpoint(task)[0]
    if checkpoint is None:
        return AirNet(**model_kwargs).to(device).eval()
    return load_airnet(checkpoint, device, **model_kwargs)
