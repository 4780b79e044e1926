"""Reading and writing checkpoints safely.

Files are loaded with ``weights_only=True`` (a checkpoint can never run code) and written
atomically (temporary file + rename), so a run killed mid-save keeps its last good file.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

MODEL_KWARGS = ("n_feats", "n_groups", "n_blocks")
REPO_ROOT = Path(__file__).resolve().parents[1]
# Weights trained by this repository's train.py (ckpt/MODEL_CARD.md), not the paper's.
SHIPPED_WEIGHTS = REPO_ROOT / "ckpt" / "airnet-small-repo-trained.pth"
SHIPPED_DESCRIPTION = "weights trained by this repository (not the paper's; ckpt/MODEL_CARD.md)"


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


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the one-line message names the file and why."""


def _load_failure(error: BaseException) -> str:
    """A one-line reason for a failed ``torch.load(..., weights_only=True)``."""
    if isinstance(error, EOFError):
        return "empty or truncated file"
    if isinstance(error, pickle.UnpicklingError) and "GLOBAL" in str(error):
        return (
            "refused: it holds Python objects other than tensors (loading it could run code); "
            "only weights files are accepted"
        )
    first_line = (str(error).splitlines() or [type(error).__name__])[0]
    if "zip archive" in first_line or isinstance(
        error, (KeyError, ValueError, pickle.UnpicklingError)
    ):
        return "not a PyTorch checkpoint, or a corrupt or truncated one"
    return f"cannot read checkpoint ({first_line[:200]})"


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; CheckpointError in one line."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint" if path.is_dir() else "checkpoint not found"
        raise FileNotFoundError(f"{path}: {what}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: {_load_failure(error)}") from error


def default_checkpoint(official: str | Path) -> tuple[Path, str]:
    """(file, description): the official ``official`` file when present (in the current
    folder, else in this repository), otherwise the weights shipped in ckpt/."""
    for candidate in (Path(official), REPO_ROOT / official):
        if candidate.is_file():
            return candidate, "official weights"
    return SHIPPED_WEIGHTS, SHIPPED_DESCRIPTION


def infer_model_size(state_dict: dict[str, torch.Tensor]) -> dict[str, int] | None:
    """AirNet's n_feats, n_groups and n_blocks read from the tensor shapes, or None when the
    dict is not AirNet's (no ``R.head.0.weight``).

    n_feats is the head conv's output channels, (n_feats, 3, 3, 3); n_groups counts the DGGs
    ``R.body.G.body.*``; n_blocks counts the DGBs of the first DGG, ``R.body.0.body.B.dgm1.*``
    (without DGGs there is nothing to count, and n_blocks is left out).
    """
    head = state_dict.get("R.head.0.weight")
    if not isinstance(head, torch.Tensor) or head.dim() != 4:
        return None
    groups, blocks = set(), set()
    for key in state_dict:
        if match := re.match(r"R\.body\.(\d+)\.body\.(\d+)\.", key):
            groups.add(match[1])
            if match[1] == "0" and key.startswith(f"R.body.0.body.{match[2]}.dgm1."):
                blocks.add(match[2])
    size = {"n_feats": head.shape[0], "n_groups": len(groups)}
    return {**size, "n_blocks": len(blocks)} if groups else size


def load_model_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Return (state_dict with official key names, model size or None).

    Understands the official flat state dicts, ``{"model": ..., "args": ...}`` training
    checkpoints and exports, and ``{"state_dict": ...}`` wrappers. The size is the stored one
    completed from the tensor shapes (a flat official file gives the paper's 64/5/5), None only
    when the dict is not AirNet's (the strict load then names the keys).

    Raises:
        CheckpointError: the stored size contradicts the tensors (one line).
    """
    path = Path(path)
    obj = read_checkpoint(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")
    stored = {}
    for key in ("model", "state_dict", "net"):
        if isinstance(obj.get(key), dict):
            args = obj.get("args") or {}
            stored = {k: args[k] for k in MODEL_KWARGS if k in args}
            obj = obj[key]
            break
    state_dict = strip_module_prefix(obj)
    inferred = infer_model_size(state_dict)
    if inferred is not None:
        wrong = {k: v for k, v in stored.items() if k in inferred and inferred[k] != v}
        if wrong:
            said = ", ".join(f"{k} {v}" for k, v in wrong.items())
            found = ", ".join(f"{k} {inferred[k]}" for k in wrong)
            raise CheckpointError(f"{path}: it records {said} but its tensors are {found}")
    return state_dict, {**(inferred or {}), **stored} or None
