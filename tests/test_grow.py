"""Growing DGRN by identity groups (net/grow.py, train.py --grow_groups): the grown model
restores exactly as the file, trains its added groups, refuses what does not fit, resumes."""

from __future__ import annotations

import pytest
import torch

import train
from net import AirNet, load_airnet
from net.grow import count_groups, grown_state_dict
from option import parse_args
from tests.test_train import tiny_args
from utils.checkpoint import save_checkpoint_atomic


def small(seed: int = 0, n_groups: int = 1) -> AirNet:
    torch.manual_seed(seed)
    return AirNet(n_feats=8, n_groups=n_groups, n_blocks=2, queue_size=16).eval()


def test_grown_model_restores_exactly_as_the_file():
    source, grown = small(0), small(1, n_groups=3)
    state = grown_state_dict(source.state_dict(), grown.state_dict(), 2)
    grown.load_state_dict(state, strict=True)
    assert count_groups(grown.state_dict()) == 3
    image = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(grown(image), source(image))
    # the file's closing conv moved behind the added groups; their blocks keep fresh weights
    assert torch.equal(grown.R.body[3].weight, source.R.body[1].weight)
    assert torch.equal(
        grown.R.body[1].body[0].conv1.weight, small(1, 3).R.body[1].body[0].conv1.weight
    )
    assert not grown.R.body[2].body[-1].weight.any() and not grown.R.body[2].body[-1].bias.any()


def test_added_groups_receive_gradients():
    source, grown = small(0), small(1, n_groups=2)
    grown.load_state_dict(grown_state_dict(source.state_dict(), grown.state_dict(), 1))
    grown.train()
    image = torch.rand(2, 3, 16, 16)
    restored, _, _ = grown(image, image)
    restored.mean().backward()
    last = grown.R.body[1].body[-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("fresh_groups", "added", "message"),
    [(2, 0, "must be >= 1"), (3, 1, r"not 1 \+ 1"), (2, 2, r"not 1 \+ 2")],
)
def test_refuses_what_does_not_line_up(fresh_groups, added, message):
    with pytest.raises(ValueError, match=message):
        grown_state_dict(small(0).state_dict(), small(1, fresh_groups).state_dict(), added)


def test_refuses_another_width():
    other = AirNet(n_feats=16, n_groups=2, n_blocks=2, queue_size=16)
    with pytest.raises(ValueError, match="does not fit the grown model"):
        grown_state_dict(small(0).state_dict(), other.state_dict(), 1)


def test_count_groups_needs_an_airnet_state_dict():
    with pytest.raises(ValueError, match="not an AirNet state dict"):
        count_groups({"conv.weight": torch.zeros(1)})


def test_grow_groups_needs_init_from(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(tiny_args(tmp_path, "--grow_groups", "1"))
    assert "give --init_from" in capsys.readouterr().err


def test_train_grows_the_file_then_resumes_at_the_grown_size(tmp_path):
    source = small(0)
    export = tmp_path / "weights.pth"
    save_checkpoint_atomic({"model": source.state_dict(), "args": source.config}, export)
    argv = tiny_args(tmp_path, "--init_from", str(export), "--grow_groups", "1", "--epochs", "2")
    grown = train.main(parse_args(argv))
    assert grown.model.config == {"n_feats": 8, "n_groups": 2, "n_blocks": 2}
    assert grown.model.R.body[1].body[-1].weight.any()  # the added group has trained
    exported = load_airnet(tmp_path / "ckpt" / "airnet_last.pth")
    assert exported.config == grown.model.config
    resumed = train.main(
        parse_args(tiny_args(tmp_path, "--resume", str(tmp_path / "ckpt"), "--epochs", "3"))
    )
    assert resumed.model.config == grown.model.config and resumed.epoch == 3


def test_too_many_groups_is_one_clear_error(tmp_path):
    source = AirNet(n_feats=8, n_groups=31, n_blocks=1, queue_size=16)
    export = tmp_path / "weights.pth"
    save_checkpoint_atomic({"model": source.state_dict(), "args": source.config}, export)
    args = parse_args(tiny_args(tmp_path, "--init_from", str(export), "--grow_groups", "2"))
    with pytest.raises(train.SetupError, match="31 DGGs, and 33 is more than the 32"):
        train.main(args)
