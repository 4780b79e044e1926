"""safetensors weights: written with their size and trained types, read wherever weights are
read (told from a PyTorch file by content), and every bad file refused in one line."""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import demo
import hubconf
from net import AirNet, load_airnet
from train import read_init_weights
from utils.checkpoint import (
    CheckpointError,
    describe_trained_types,
    is_safetensors,
    load_model_state,
    read_checkpoint,
    read_weights,
    save_safetensors_atomic,
    trained_types,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import average_weights  # noqa: E402

SIZE = {"n_feats": 8, "n_groups": 1, "n_blocks": 2}
TYPES = ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]


def tiny(seed: int = 0, queue_size: int = 12) -> AirNet:
    torch.manual_seed(seed)
    model = AirNet(**SIZE, queue_size=queue_size)
    model.E.E.queue_ptr.fill_(5)
    return model.eval()


def write(path: Path, model: AirNet, **kwargs) -> Path:
    save_safetensors_atomic(model.state_dict(), path, model.config, **kwargs)
    return path


def split(data: bytes) -> tuple[dict, bytes]:
    """(header, tensor bytes) of a safetensors file."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def test_round_trip_keeps_weights_buffers_size_and_types(tmp_path):
    source = tiny()
    path = write(tmp_path / "w.safetensors", source, de_type=TYPES, extra={"step": 6400})
    assert is_safetensors(path)
    model = load_airnet(path)  # no size given: the file says
    assert model.config == SIZE and not model.training
    for key, value in source.state_dict().items():  # the MoCo queue and pointer too
        assert torch.equal(model.state_dict()[key], value), key
    assert model.E.E.queue.shape == (32, 12)  # strict load, the file's queue length
    x = torch.rand(1, 3, 19, 24)
    with torch.inference_mode():
        assert torch.equal(model(x), source(x))
    weights = read_weights(path)
    assert (weights.format, weights.size, weights.de_type) == ("safetensors", SIZE, TYPES)
    assert weights.metadata["step"] == 6400
    assert trained_types(path) == TYPES
    assert describe_trained_types(TYPES) == f"trained types: {' '.join(TYPES)}"
    assert hubconf.airnet(checkpoint=path).config == SIZE


def test_the_format_is_told_by_content_not_by_extension(tmp_path):
    source = tiny()
    write(tmp_path / "safetensors.pth", source, de_type=["derain"])
    torch.save(source.state_dict(), tmp_path / "pytorch.safetensors")  # official flat format
    for name in ("safetensors.pth", "pytorch.safetensors"):
        model = load_airnet(tmp_path / name)
        assert model.config == SIZE, name
        assert torch.equal(model.state_dict()["R.head.0.weight"], source.R.head[0].weight)
    assert not is_safetensors(tmp_path / "pytorch.safetensors")
    assert trained_types(tmp_path / "safetensors.pth") == ["derain"]
    assert trained_types(tmp_path / "pytorch.safetensors") is None  # official format: silent
    assert describe_trained_types(None) == "trained types: not recorded"


def test_our_pth_exports_record_their_types(tmp_path):
    model = tiny()
    args = {**SIZE, "de_type": ["derain", "dehaze"]}
    torch.save({"model": model.state_dict(), "args": args}, tmp_path / "ours.pth")
    assert trained_types(tmp_path / "ours.pth") == ["derain", "dehaze"]


def bad_safetensors(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words its message must hold)."""
    good = write(folder / "good.safetensors", tiny()).read_bytes()
    header, body = split(good)
    key = "R.head.0.weight"

    def edited(change) -> bytes:
        copy = json.loads(json.dumps(header))
        change(copy)
        return join(copy, body)

    def lie_shape(h):
        h[key]["shape"] = [8, 3, 3, 4]

    def int_weights(h):
        h[key]["dtype"] = "I32"  # same byte count as F32: only the dtype lies

    def unknown_dtype(h):
        h[key]["dtype"] = "F99"

    def lie_size(h):
        h["__metadata__"]["n_feats"] = "16"

    def bad_types(h):
        h["__metadata__"]["de_type"] = '"derain"'

    files = {
        "truncated_header": (good[:40], "truncated safetensors file"),
        "truncated_data": (good[:-100], "truncated safetensors file"),
        "lying_shape": (edited(lie_shape), "lies about its shape"),
        "wrong_dtype": (edited(int_weights), "expected a floating-point tensor"),
        "unknown_dtype": (edited(unknown_dtype), "unknown dtype 'F99'"),
        "lying_size": (edited(lie_size), "records n_feats 16 but its tensors are n_feats 8"),
        "bad_types": (edited(bad_types), "is not a list of type names"),
        "not_json": (struct.pack("<Q", 6) + b"{nope}" + body, "corrupt safetensors header"),
    }
    out = {}
    for name, (data, reason) in files.items():
        path = folder / f"{name}.safetensors"
        path.write_bytes(data)
        out[name] = (path, reason)
    return out


def test_every_bad_safetensors_file_is_one_line(tmp_path):
    for name, (path, reason) in bad_safetensors(tmp_path).items():
        for load in (load_airnet, lambda p: hubconf.airnet(checkpoint=p), load_model_state):
            with pytest.raises(CheckpointError) as error:
                load(path)
            message = str(error.value)
            assert message.startswith(str(path)), (name, message)
            assert reason in message and "\n" not in message, (name, message)


def test_a_pth_with_integer_weights_is_refused_too(tmp_path):
    state = tiny().state_dict()
    state["R.tail.0.bias"] = state["R.tail.0.bias"].to(torch.int32)
    torch.save(state, tmp_path / "ints.pth")
    with pytest.raises(CheckpointError, match="R.tail.0.bias is torch.int32"):
        load_airnet(tmp_path / "ints.pth")


def test_writing_refuses_a_size_that_contradicts_the_tensors(tmp_path):
    model = tiny()
    with pytest.raises(ValueError, match="does not match the tensors"):
        save_safetensors_atomic(model.state_dict(), tmp_path / "x", {**SIZE, "n_blocks": 3})
    with pytest.raises(ValueError, match="may not set"):
        save_safetensors_atomic(model.state_dict(), tmp_path / "x", SIZE, extra={"n_feats": 1})
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_resume_names_a_safetensors_file_as_not_a_training_checkpoint(tmp_path):
    path = write(tmp_path / "w.safetensors", tiny())
    with pytest.raises(CheckpointError, match="a safetensors weights file, not a PyTorch"):
        read_checkpoint(path)


def test_init_from_reads_safetensors(tmp_path):
    write(tmp_path / "w.safetensors", tiny(), de_type=TYPES)
    args = argparse.Namespace(init_from=str(tmp_path / "w.safetensors"), n_feats=64, n_groups=5,
                              n_blocks=5, grow_groups=0)  # fmt: skip
    state_dict = read_init_weights(args)
    assert {k: getattr(args, k) for k in SIZE} == SIZE
    assert torch.equal(state_dict["E.E.queue"], tiny().E.E.queue)


def test_average_weights_reads_and_writes_safetensors(tmp_path):
    paths = [write(tmp_path / f"m{s}.safetensors", tiny(s), de_type=TYPES) for s in (1, 2)]
    output = tmp_path / "avg.safetensors"
    average_weights.main(["average", *map(str, paths), "--output", str(output)])
    weights = read_weights(output)
    assert weights.format == "safetensors" and weights.de_type == TYPES
    assert weights.metadata["averaged"] == [str(p) for p in paths]
    key = "R.head.0.weight"
    expected = (tiny(1).state_dict()[key] + tiny(2).state_dict()[key]) / 2
    torch.testing.assert_close(load_airnet(output).state_dict()[key], expected)


def test_demo_restores_with_a_safetensors_file(tmp_path):
    path = write(tmp_path / "w.safetensors", tiny())
    rgb = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    argv = ["--test_path", str(tmp_path / "photo.png"), "--output_path", str(tmp_path / "out"),
            "--ckpt", str(path), "--device", "cpu"]  # fmt: skip
    assert demo.main(demo.build_parser().parse_args(argv)) == 0
    assert (tmp_path / "out" / "photo.png").is_file()
