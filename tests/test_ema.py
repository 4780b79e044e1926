"""--ema_decay: the moving average of the weights, its checkpoint and its exports."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from net import AirNet, load_airnet
from option import parse_args
from tests.test_train import tiny_args
from train import main
from utils.ema import WeightAverage


def test_parameters_are_averaged_and_buffers_copied():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = WeightAverage(model, decay=0.75)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(4.0)
    model.train()(torch.randn(8, 2))  # moves the BatchNorm statistics
    ema.update(model)
    averaged = ema.state_dict()
    for name, _ in model.named_parameters():
        assert torch.allclose(averaged[name], before[name] + 0.25 * 4.0), name
    for name, buffer in model.named_buffers():
        assert torch.equal(averaged[name], buffer), name
    assert not any(p.requires_grad for p in ema.model.parameters())


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(nn.Linear(1, 1), decay)


def test_option_range(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(tiny_args(tmp_path, "--ema_decay", "1"))
    assert "--ema_decay: expected a number >= 0 and < 1" in capsys.readouterr().err


def test_exports_hold_the_average_and_a_resumed_run_continues_it(tmp_path):
    uninterrupted = main(parse_args(tiny_args(tmp_path / "a", "--ema_decay", "0.5")))
    assert uninterrupted.step == 6 and uninterrupted.averaged is not None
    exported = load_airnet(tmp_path / "a/ckpt/airnet_last.pth")
    live = uninterrupted.model.state_dict()
    differs = False
    for name, value in exported.state_dict().items():
        assert torch.equal(value, uninterrupted.averaged.state_dict()[name].cpu()), name
        differs |= not torch.equal(value, live[name])
    assert differs  # the export is the average, not the last step's weights

    interrupted = tiny_args(tmp_path / "b", "--ema_decay", "0.5")
    main(parse_args([*interrupted, "--max_steps", "3"]))
    checkpoint = torch.load(tmp_path / "b/ckpt/airnet_last_train.pth", weights_only=True)
    assert set(checkpoint["ema"]) == set(checkpoint["model"])
    resume = [*interrupted, "--resume", str(tmp_path / "b/ckpt"), "--max_steps", "6"]
    resumed = main(parse_args(resume))
    expected = uninterrupted.averaged.state_dict()
    for name, value in resumed.averaged.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_a_checkpoint_without_an_average_starts_one_from_its_weights(tmp_path, caplog):
    argv = tiny_args(tmp_path)
    main(parse_args([*argv, "--max_steps", "3"]))
    caplog.set_level("INFO")
    resumed = main(
        parse_args(
            [*argv, "--ema_decay", "0.9", "--resume", str(tmp_path / "ckpt"), "--max_steps", "4"]
        )
    )
    assert "starts from the current weights" in caplog.text
    assert isinstance(resumed.averaged, AirNet) and resumed.step == 4
