"""Reading and writing checkpoints safely.

Files are loaded with ``weights_only=True`` (a checkpoint can never run code) and written
atomically (temporary file + rename), so a run killed mid-save keeps its last good file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

MODEL_KWARGS = ("n_feats", "n_groups", "n_blocks")


def save_checkpoint_atomic(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the usual rw-r--r-- of a saved file.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix that DataParallel / DDP add to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def load_model_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Return (state_dict with official key names, stored model kwargs or None).

    Understands the official flat state dicts, ``{"model": ..., "args": ...}`` training
    checkpoints and exports, and ``{"state_dict": ...}`` wrappers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RuntimeError(f"{path}: cannot read checkpoint ({error})") from error
    if not isinstance(obj, dict):
        raise RuntimeError(f"{path}: expected a state dict, found {type(obj).__name__}")
    model_kwargs = None
    for key in ("model", "state_dict", "net"):
        if isinstance(obj.get(key), dict):
            args = obj.get("args") or {}
            model_kwargs = {k: args[k] for k in MODEL_KWARGS if k in args} or None
            obj = obj[key]
            break
    return strip_module_prefix(obj), model_kwargs
