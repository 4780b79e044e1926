"""Reading and writing checkpoints safely.

Weights are read from four sources, recognised by their content, never by their extension:

- a PyTorch file (zip or legacy pickle): the official flat state dicts, our exports
  ``{"model": state_dict, "args": {...}}`` and training checkpoints, ``{"state_dict": ...}``
  wrappers; loaded with ``weights_only=True`` (a checkpoint can never run code);
- a safetensors file: an 8-byte little-endian header length, a JSON header, then the raw
  tensors. Its string metadata records the model size (``n_feats``, ``n_groups``,
  ``n_blocks``), the trained degradation types (``de_type``) and any extra facts, every value
  JSON-encoded;
- a Hugging Face Hub folder: ``model.safetensors`` + ``config.json`` (size and ``de_type``),
  as ``scripts/make_hub_folder.py`` writes it; a folder without both files is refused;
- ``hf://owner/name``: such a folder fetched from the Hub by ``huggingface_hub`` (an optional
  install, requirements-hub.txt), imported only then. Only that form is sent to the network.

A size that the file does not record is inferred from the tensor shapes. Every unusable file
raises one line (CheckpointError or FileNotFoundError) that starts with the path and says why.
Files are written atomically (temporary file + rename), so a run killed mid-save keeps its
last good file.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, Any

import torch

from utils.outputs import writing
from utils.paths import shown_all, write_atomic

MODEL_KWARGS = ("n_feats", "n_groups", "n_blocks")
REPO_ROOT = Path(__file__).resolve().parents[1]
# Weights trained by this repository's train.py (ckpt/MODEL_CARD.md), not the paper's.
SHIPPED_WEIGHTS = REPO_ROOT / "ckpt" / "airnet-small-repo-trained.safetensors"
SHIPPED_DESCRIPTION = "weights trained by this repository (not the paper's; ckpt/MODEL_CARD.md)"
# The tasks a user can pick a file for, as the official release ships them: the all-in-one
# file and one-by-one files, each trained on one task. Task -> (official name, our file's name
# in ckpt/, beside SHIPPED_WEIGHTS).
TASK_FILES = {
    "all": ("All.pth", SHIPPED_WEIGHTS.name),
    "denoise": ("Denoise.pth", "airnet-small-denoise-repo-trained.safetensors"),
    "derain": ("Derain.pth", "airnet-small-derain-repo-trained.safetensors"),
    "dehaze": ("Dehaze.pth", "airnet-small-dehaze-repo-trained.safetensors"),
}
TASKS = tuple(TASK_FILES)

HUB_WEIGHTS, HUB_CONFIG = "model.safetensors", "config.json"  # a Hub folder holds both
HUB_PREFIX = "hf://"
HUB_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# Integer buffers of AirNet's state dict (MoCo's queue pointer, BatchNorm's batch counter);
# every other tensor is floating point.
INTEGER_KEYS = ("queue_ptr", "num_batches_tracked")
# Bytes per element of the safetensors dtypes that torch can hold.
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "C64": 8,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E4M3FNUZ": 1, "F8_E5M2": 1, "F8_E5M2FNUZ": 1,
}  # fmt: skip
MAX_SAFETENSORS_HEADER = 100 * 2**20  # the format's own limit


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the one-line message names the file and why."""


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """``write`` into a temporary file in the same folder, flushed to disk, then renamed over
    ``path`` (``utils.paths.write_atomic``); the file already there stays as it was when that
    fails (``utils.outputs.OutputError``, one line naming ``path``)."""
    with writing(path):
        write_atomic(path, write, durable=True)


def save_checkpoint_atomic(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``.

    Serialised in memory first: torch's own file writer reports a full disk as a RuntimeError
    of its C++ internals, a plain write as the OSError that names ``path`` (``OutputError``).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _write_atomic(path, lambda f: f.write(buffer.getbuffer()))


def safetensors_metadata(
    size: dict[str, int], de_type: list[str] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    """The string metadata of a weights file: every value JSON-encoded, each string in it as
    ``utils.paths.shown`` shows it (a file name that is not UTF-8, e.g. the reference file a
    shipped file was judged against, reads ``caf\\xe9.safetensors``, as in logs and JSON).

    Raises:
        ValueError: ``size`` lacks one of MODEL_KWARGS, or ``extra`` reuses a reserved key.
    """
    missing = [name for name in MODEL_KWARGS if name not in size]
    if missing:
        raise ValueError(f"the model size lacks {', '.join(missing)}")
    facts = {name: int(size[name]) for name in MODEL_KWARGS}
    if de_type is not None:
        facts["de_type"] = list(de_type)
    reserved = sorted(set(extra or {}) & {*facts, "format"})
    if reserved:
        raise ValueError(f"extra metadata may not set {', '.join(reserved)}")
    facts = shown_all({**facts, **(extra or {})})
    return {"format": "pt", **{key: json.dumps(value) for key, value in facts.items()}}


def save_safetensors_atomic(
    state_dict: dict[str, torch.Tensor],
    path: str | Path,
    size: dict[str, int],
    de_type: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a model-only safetensors file (official key names) atomically.

    Args:
        state_dict: AirNet's state dict (any device; written from the CPU).
        path: the file; its extension is not checked (readers go by content).
        size: ``n_feats``, ``n_groups``, ``n_blocks``; must match the tensors' shapes.
        de_type: the degradation types the weights were trained on (decision 5); None when
            unknown, which readers show as "trained types: not recorded".
        extra: more facts (epoch, step, ...), JSON-encoded into the metadata.

    Raises:
        ValueError: not AirNet's state dict, ``size`` does not match its tensors, or
            ``extra`` reuses a reserved key.
        CheckpointError: the safetensors package is missing.
    """
    metadata = safetensors_metadata(size, de_type, extra)
    inferred = infer_model_size(state_dict)
    if inferred is None:
        raise ValueError(f"{path}: not AirNet's state dict (no R.head.0.weight)")
    wrong = {k: size[k] for k in inferred if size[k] != inferred[k]}
    if wrong:
        raise ValueError(f"{path}: size {wrong} does not match the tensors ({inferred})")
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    data = _safetensors_torch(path).save(tensors, metadata=metadata)
    _write_atomic(path, lambda f: f.write(data))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix that DataParallel / DDP add to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


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


def is_safetensors(path: str | Path) -> bool:
    """True if the file starts as a safetensors file does: an 8-byte little-endian header
    length, then a JSON object (``{``). PyTorch files start with ``PK`` (zip) or a pickle
    opcode, so neither is ever taken for one."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= MAX_SAFETENSORS_HEADER


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; CheckpointError in one line.

    For PyTorch files (training checkpoints, ``.pth`` exports); weights in any format are
    read by ``read_weights``.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint" if path.is_dir() else "checkpoint not found"
        raise FileNotFoundError(f"{path}: {what}")
    if is_safetensors(path):
        raise CheckpointError(f"{path}: a safetensors weights file, not a PyTorch checkpoint")
    try:
        # An open file, not the path: torch.load reads a path ending in .safetensors as
        # safetensors, and the format here goes by content.
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol chatter before a refusal
            return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: {_load_failure(error)}") from error


def _safetensors_torch(path: str | Path):
    """``safetensors.torch``, or one line naming the requirements file when it is missing."""
    try:
        import safetensors.torch
    except ImportError as error:
        raise CheckpointError(
            f"{path}: reading or writing safetensors needs the safetensors package: "
            "pip install -r requirements.txt"
        ) from error
    return safetensors.torch


def _safetensors_header(path: Path, data: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the bytes that follow it."""
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        raise CheckpointError(
            f"{path}: truncated safetensors file (a header of {length} bytes, "
            f"{len(data) - 8} bytes after the length)"
        )
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt safetensors header ({error})") from error
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    available = len(data) - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            numbers = [*shape, begin, end]
        except (TypeError, KeyError, ValueError) as error:
            raise CheckpointError(f"{path}: corrupt safetensors entry for {name!r}") from error
        if not all(isinstance(n, int) and n >= 0 for n in numbers) or begin > end:
            raise CheckpointError(f"{path}: corrupt safetensors entry for {name!r}")
        if dtype not in SAFETENSORS_DTYPE_BYTES:
            raise CheckpointError(f"{path}: tensor {name!r} has an unknown dtype {dtype!r}")
        needed = math.prod(shape) * SAFETENSORS_DTYPE_BYTES[dtype]
        if end - begin != needed:
            raise CheckpointError(
                f"{path}: tensor {name!r} is declared {dtype} {shape} ({needed} bytes) but "
                f"its offsets hold {end - begin} bytes: the header lies about its shape"
            )
        if end > available:
            raise CheckpointError(
                f"{path}: truncated safetensors file (tensor {name!r} ends at byte {end} of "
                f"the data, which has {available})"
            )
    return header


def _decode_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """The file's metadata with JSON values decoded (a value that is not JSON stays text)."""
    decoded = {}
    for key, value in metadata.items():
        if key == "format":
            continue
        try:
            decoded[key] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            decoded[key] = value
    return decoded


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, decoded metadata) of a safetensors file, read into memory."""
    data = path.read_bytes()
    header = _safetensors_header(path, data)
    module = _safetensors_torch(path)
    try:
        tensors = module.load(data)
    except Exception as error:  # safetensors' own SafetensorError on anything else
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path}: corrupt safetensors file ({first_line[:200]})") from error
    # In the order of the data (the writer's order), not the header's unordered map: two
    # files of one model then list their keys alike.
    names = sorted(tensors, key=lambda name: header[name]["data_offsets"][0])
    tensors = {name: tensors[name] for name in names}
    return tensors, _decode_metadata(header.get("__metadata__") or {})


def _read_safetensors_metadata(path: Path) -> dict[str, Any]:
    """The decoded metadata of a safetensors file, from its header alone."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        raw = f.read(min(length, MAX_SAFETENSORS_HEADER))
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors header") from error
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return _decode_metadata(metadata if isinstance(metadata, dict) else {})


def is_hub_reference(path: str | PurePath) -> bool:
    """True for ``hf://owner/name`` (as a string; pathlib writes it ``hf:/owner/name``)."""
    text = str(path)
    prefix = "hf:/" if isinstance(path, PurePath) else HUB_PREFIX
    return text.startswith(prefix)


def fetch_hub_folder(reference: str | PurePath) -> Path:
    """The local folder of ``hf://owner/name``: downloaded (or taken from the cache; offline
    with HF_HUB_OFFLINE=1) by ``huggingface_hub.snapshot_download``, only the two files a
    Hub folder needs.

    Raises:
        CheckpointError: not of that form, huggingface_hub missing, or the download failed.
    """
    text = str(reference)
    repo_id = text.removeprefix(HUB_PREFIX if text.startswith(HUB_PREFIX) else "hf:/")
    if not HUB_REPO_ID.fullmatch(repo_id):
        raise CheckpointError(f"{text}: a Hub checkpoint is written hf://owner/name")
    try:
        import huggingface_hub
    except ImportError as error:
        raise CheckpointError(
            f"{text}: fetching from the Hugging Face Hub needs huggingface_hub: "
            "pip install -r requirements-hub.txt"
        ) from error
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id, allow_patterns=[HUB_WEIGHTS, HUB_CONFIG]
        )
    except Exception as error:  # the hub raises many kinds (offline, not found, HTTP)
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise CheckpointError(
            f"{text}: cannot fetch it from the Hub ({first_line[:200]})"
        ) from error
    if not all((Path(folder) / name).is_file() for name in (HUB_WEIGHTS, HUB_CONFIG)):
        raise CheckpointError(f"{text}: the Hub repository lacks {HUB_WEIGHTS} or {HUB_CONFIG}")
    return Path(folder)


def _read_hub_config(path: Path) -> dict[str, Any]:
    """config.json of a Hub folder, as a dict."""
    try:
        config = json.loads((path / HUB_CONFIG).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path / HUB_CONFIG}: not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{path / HUB_CONFIG}: expected a JSON object")
    return config


def _weights_file(path: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """(the file that holds the tensors, a Hub folder's config or None); fetches hf://."""
    if is_hub_reference(path):
        path = fetch_hub_folder(path)
    path = Path(path)
    if path.is_dir():
        if (path / HUB_WEIGHTS).is_file() and (path / HUB_CONFIG).is_file():
            return path / HUB_WEIGHTS, _read_hub_config(path)
        raise FileNotFoundError(
            f"{path}: is a folder, not a checkpoint (a Hub folder holds {HUB_WEIGHTS} and "
            f"{HUB_CONFIG})"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return path, None


@dataclass
class Weights:
    """What a weights file holds.

    Attributes:
        state_dict: official key names (``module.`` removed), tensors on the CPU.
        size: the model size the file records (some or all of MODEL_KWARGS), or None.
        de_type: the degradation types the file records as trained, or None (not recorded).
        metadata: everything else the file records (a ``.pth``'s "args", a safetensors
            file's decoded metadata, a Hub folder's config.json); None for a flat state dict.
        format: "safetensors" or "pth".
    """

    state_dict: dict[str, torch.Tensor]
    size: dict[str, int] | None
    de_type: list[str] | None
    metadata: dict[str, Any] | None
    format: str


def _recorded_size(path: Path, facts: dict[str, Any]) -> dict[str, int] | None:
    """The model size among a file's recorded facts; CheckpointError for a value that is
    not a positive integer."""
    size = {}
    for name in MODEL_KWARGS:
        if name in facts:
            value = facts[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CheckpointError(f"{path}: recorded {name} {value!r} is not a size")
            size[name] = value
    return size or None


def _recorded_types(path: Path, facts: dict[str, Any]) -> list[str] | None:
    """The ``de_type`` list among a file's recorded facts, or None."""
    types = facts.get("de_type")
    if types is None:
        return None
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise CheckpointError(f"{path}: recorded de_type {types!r} is not a list of type names")
    return types


def _check_dtypes(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """Weights must be floating point and the counters integers: a cast would hide a file
    that holds something else."""
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {key} is a {type(value).__name__}, not a tensor")
        integer = key.endswith(INTEGER_KEYS)
        if value.is_floating_point() == integer or value.dtype in (torch.bool, torch.complex64):
            wanted = "an integer" if integer else "a floating-point"
            raise CheckpointError(f"{path}: {key} is {value.dtype}, expected {wanted} tensor")


def read_weights(path: str | Path) -> Weights:
    """Read any weights source (module docstring) on the CPU.

    Raises:
        FileNotFoundError: missing file, or a folder that is not a Hub folder (one line).
        CheckpointError: anything unusable (one line starting with the path).
    """
    file, config = _weights_file(path)
    if is_safetensors(file):
        state_dict, metadata = _read_safetensors(file)
        fmt = "safetensors"
    else:
        obj = read_checkpoint(file)
        if not isinstance(obj, dict):
            raise CheckpointError(f"{file}: expected a state dict, found {type(obj).__name__}")
        metadata, fmt = None, "pth"
        for key in ("model", "state_dict", "net"):
            if isinstance(obj.get(key), dict):
                metadata = dict(obj.get("args") or {})
                obj = obj[key]
                break
        state_dict = obj
    if config is not None:  # a Hub folder: its config.json speaks for it
        metadata = {**(metadata or {}), **config}
    state_dict = strip_module_prefix(state_dict)
    _check_dtypes(file, state_dict)
    facts = metadata or {}
    return Weights(
        state_dict, _recorded_size(file, facts), _recorded_types(file, facts), metadata, fmt
    )


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

    Reads every source of ``read_weights``. The size is the recorded one completed from the
    tensor shapes (a flat official file gives the paper's 64/5/5), None only when the dict is
    not AirNet's (the strict load then names the keys).

    Raises:
        CheckpointError: the recorded size contradicts the tensors (one line).
    """
    weights = read_weights(path)
    inferred = infer_model_size(weights.state_dict)
    recorded = weights.size or {}
    if inferred is not None:
        wrong = {k: v for k, v in recorded.items() if k in inferred and inferred[k] != v}
        if wrong:
            said = ", ".join(f"{k} {v}" for k, v in wrong.items())
            found = ", ".join(f"{k} {inferred[k]}" for k in wrong)
            raise CheckpointError(f"{path}: it records {said} but its tensors are {found}")
    size = {**(inferred or {}), **recorded}
    return weights.state_dict, size or None


def trained_types(path: str | Path) -> list[str] | None:
    """The degradation types a checkpoint records as trained on (decision 5), or None for a
    file that does not say (the official flat files). Reads only the header of a
    safetensors file or a Hub folder's config.json."""
    file, config = _weights_file(path)
    if config is not None:
        return _recorded_types(file, config)
    if is_safetensors(file):
        return _recorded_types(file, _read_safetensors_metadata(file))
    return read_weights(file).de_type


def describe_trained_types(types: list[str] | None) -> str:
    """One line for the logs: ``trained types: denoise_15 derain`` or ``trained types: not
    recorded`` (None or an empty list)."""
    return f"trained types: {' '.join(types) if types else 'not recorded'}"


def save_weights_as(
    like: Weights, state_dict: dict[str, torch.Tensor], path: str | Path, extra: dict[str, Any]
) -> None:
    """Write ``state_dict`` in the format of ``like`` (a file read by read_weights) with its
    recorded facts plus ``extra``: safetensors, ``{"model", "args"}``, or a flat state dict
    (which records nothing, so ``extra`` is dropped)."""
    if like.format == "safetensors":
        size = {**(infer_model_size(state_dict) or {}), **(like.size or {})}
        facts = {
            k: v for k, v in (like.metadata or {}).items() if k not in (*MODEL_KWARGS, "de_type")
        }
        save_safetensors_atomic(state_dict, path, size, like.de_type, {**facts, **extra})
    elif like.metadata is not None:
        save_checkpoint_atomic({"model": state_dict, "args": {**like.metadata, **extra}}, path)
    else:
        save_checkpoint_atomic(state_dict, path)


def default_checkpoint(official: str | Path, task: str = "all") -> tuple[Path, str]:
    """(file, description) for ``task`` (one of ``TASKS``): the official ``official`` file
    when present (in the current folder, else in this repository); else our file for the task
    in ckpt/ when it ships; else our all-in-one file (said in the description).

    Raises:
        KeyError: an unknown ``task``.
    """
    ours = shipped_file(task)
    for candidate in (Path(official), REPO_ROOT / official):
        if candidate.is_file():
            return candidate, "official weights"
    if ours.is_file():
        return ours, SHIPPED_DESCRIPTION
    fallback = f"no {task} file in ckpt/, the all-in-one file: {SHIPPED_DESCRIPTION}"
    return SHIPPED_WEIGHTS, fallback


def shipped_file(task: str) -> Path:
    """Our file for ``task`` in ckpt/ (it may not ship yet: check ``is_file``).

    Raises:
        KeyError: an unknown ``task``.
    """
    name = TASK_FILES[task][1]
    return SHIPPED_WEIGHTS if task == "all" else SHIPPED_WEIGHTS.parent / name


def task_checkpoint(task: str) -> tuple[Path, str]:
    """``default_checkpoint`` for a task by name: ckpt/<official name> first, then ours."""
    return default_checkpoint(Path("ckpt") / TASK_FILES[task][0], task)
