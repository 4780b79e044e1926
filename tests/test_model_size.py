"""A reduced-size state dict that does not record its size loads everywhere weights are read:
the size comes from the tensor shapes (load_airnet, train.py --init_from, average_weights)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from net import AirNet, load_airnet
from train import read_init_weights
from utils.checkpoint import CheckpointError, infer_model_size, load_model_state

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import average_weights  # noqa: E402

SIZES = [(8, 1, 1), (16, 2, 3), (8, 3, 2)]


def flat_file(path: Path, n_feats: int, n_groups: int, n_blocks: int, seed: int = 0) -> AirNet:
    """A flat state dict (the official format, no size recorded) of a reduced AirNet."""
    torch.manual_seed(seed)
    model = AirNet(n_feats=n_feats, n_groups=n_groups, n_blocks=n_blocks, queue_size=16)
    torch.save(model.state_dict(), path)
    return model.eval()


@pytest.mark.parametrize("size", SIZES)
def test_the_size_is_read_from_the_shapes(size):
    model = AirNet(*size, queue_size=8)
    assert infer_model_size(model.state_dict()) == model.config
    assert infer_model_size({"x": torch.zeros(1)}) is None


def test_a_reduced_flat_file_loads_without_sizes(tmp_path):
    source = flat_file(tmp_path / "small.pth", 16, 2, 3)
    model = load_airnet(tmp_path / "small.pth")
    assert model.config == {"n_feats": 16, "n_groups": 2, "n_blocks": 3}
    x = torch.rand(1, 3, 20, 17)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), source(x))
    ddp = {f"module.{k}": v for k, v in source.state_dict().items()}  # DDP prefix too
    torch.save(ddp, tmp_path / "ddp.pth")
    assert load_airnet(tmp_path / "ddp.pth").config == model.config


def test_a_partial_record_is_completed_and_a_wrong_one_is_one_line(tmp_path):
    model = AirNet(n_feats=8, n_groups=2, n_blocks=1, queue_size=16)
    torch.save({"model": model.state_dict(), "args": {"n_feats": 8}}, tmp_path / "part.pth")
    assert load_model_state(tmp_path / "part.pth")[1] == model.config
    torch.save({"model": model.state_dict(), "args": {"n_blocks": 4}}, tmp_path / "lie.pth")
    with pytest.raises(CheckpointError) as error:
        load_airnet(tmp_path / "lie.pth")
    assert str(error.value) == (
        f"{tmp_path / 'lie.pth'}: it records n_blocks 4 but its tensors are n_blocks 1"
    )


def test_init_from_takes_the_inferred_size(tmp_path):
    flat_file(tmp_path / "small.pth", 8, 1, 2)
    args = argparse.Namespace(init_from=str(tmp_path / "small.pth"), n_feats=64, n_groups=5,
                              n_blocks=5, grow_groups=0)  # fmt: skip
    state_dict = read_init_weights(args)
    assert (args.n_feats, args.n_groups, args.n_blocks) == (8, 1, 2)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=2, queue_size=16)
    model.load_state_dict(state_dict, strict=True)


def test_average_weights_reads_reduced_flat_files(tmp_path):
    models = [flat_file(tmp_path / f"m{seed}.pth", 8, 1, 2, seed) for seed in (1, 2)]
    output = tmp_path / "avg.pth"
    average_weights.main(["average", str(tmp_path / "m1.pth"), str(tmp_path / "m2.pth"),
                          "--output", str(output)])  # fmt: skip
    averaged = load_airnet(output)
    assert averaged.config == models[0].config
    key = "R.head.0.weight"
    expected = (models[0].state_dict()[key] + models[1].state_dict()[key]) / 2
    torch.testing.assert_close(averaged.state_dict()[key], expected)
