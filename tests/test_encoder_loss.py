"""--encoder_loss supcon (issue 32): supervised contrast over MoCo's queue on a hand-made batch,
InfoNCE where no type is known, the queue's types out of the state dict, exact resume with them,
and a checkpoint written before them."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from net import AirNet
from net.moco import MoCo
from option import FROM_CHECKPOINT, parse_args
from tests.test_train import OLD_CHECKPOINT, RESUME_THE_FIXTURE, threads_of_the_fixture, tiny_args
from train import main
from utils.encoder_loss import (
    UNKNOWN_TYPE,
    contrastive_accuracy,
    contrastive_loss,
    supervised_contrastive_loss,
)

SIZE = {"n_feats": 8, "n_groups": 1, "n_blocks": 1, "queue_size": 16}


class Given(torch.nn.Module):
    """An encoder whose embedding is its input: (N, 2) -> (fea, out, inter), all the input
    through an identity layer (MoCo's momentum update needs parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.identity = torch.nn.Linear(2, 2)
        with torch.no_grad():
            self.identity.weight.copy_(torch.eye(2))
            self.identity.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.identity(x)
        return out, out, out


def hand_made_moco(queue_types: list[int]) -> MoCo:
    """MoCo over 2-d embeddings at T = 0.5 with the queue (1, 0), (0, 1), (-1, 0), (0.8, 0.6)."""
    moco = MoCo(Given(), Given(), dim=2, queue_size=4, temperature=0.5).train()
    moco.queue.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.8, 0.6]]).T)
    moco.queue_types.copy_(torch.tensor(queue_types))
    return moco


QUERIES = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # types 0 and 1
KEYS = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
TYPES = torch.tensor([0, 1])


def log_sum_exp(values: list[float]) -> float:
    return math.log(sum(math.exp(value) for value in values))


def test_supervised_contrast_on_a_hand_made_batch():
    moco = hand_made_moco([0, 1, UNKNOWN_TYPE, 0])
    _, logits, labels, _ = moco(QUERIES, KEYS, TYPES)
    # Columns: the batch's keys k0 (type 0), k1 (type 1), then the queue (types 0, 1, -1, 0).
    # Query 0 (type 0): q·k = 0.6, 0, 1, 0, -1, 0.8; its positives k0, queue 0 and queue 3.
    # Query 1 (type 1): q·k = 0.8, 1, 0, 1, 0, 0.6; its positives k1 and queue 1.
    z0 = [0.6 / 0.5, 0.0, 1 / 0.5, 0.0, -1 / 0.5, 0.8 / 0.5]
    z1 = [0.8 / 0.5, 1 / 0.5, 0.0, 1 / 0.5, 0.0, 0.6 / 0.5]
    assert torch.allclose(logits, torch.tensor([z0, z1]))
    assert labels.tolist() == [
        [True, False, True, False, False, True],
        [False, True, False, True, False, False],
    ]
    loss_0 = log_sum_exp(z0) - (z0[0] + z0[2] + z0[5]) / 3  # -mean log softmax over positives
    loss_1 = log_sum_exp(z1) - (z1[1] + z1[3]) / 2
    expected = (loss_0 + loss_1) / 2
    assert expected == pytest.approx(1.2500, abs=1e-4)
    assert contrastive_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    # The keys entered the queue with their types, at the pointer.
    assert torch.equal(moco.queue[:, :2].T, KEYS)
    assert moco.queue_types.tolist() == [0, 1, UNKNOWN_TYPE, 0]
    assert int(moco.queue_ptr) == 2


def test_with_no_queued_type_known_it_is_infonce_on_the_same_logits():
    moco = hand_made_moco([UNKNOWN_TYPE] * 4)
    _, logits, labels, _ = moco(QUERIES, KEYS, TYPES)
    assert labels.sum(dim=1).tolist() == [1, 1]  # each query's own key only
    infonce = F.cross_entropy(logits, torch.tensor([0, 1]))  # the own key is column i
    assert contrastive_loss(logits, labels).item() == pytest.approx(infonce.item(), rel=1e-6)
    torch.manual_seed(0)
    logits = torch.randn(3, 7)
    index = torch.tensor([0, 4, 6])
    one_hot = F.one_hot(index, 7).bool()
    assert supervised_contrastive_loss(logits, one_hot).item() == pytest.approx(
        F.cross_entropy(logits, index).item(), rel=1e-6
    )


def test_accuracy_counts_a_top_key_of_the_same_type():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    positives = torch.tensor([[True, True, False], [False, True, True]])
    assert contrastive_accuracy(logits, positives).item() == 0.5
    assert contrastive_accuracy(logits, torch.tensor([1, 1])).item() == 0.5


def test_the_paper_forward_records_no_types():
    moco = hand_made_moco([0, 1, 0, 1])
    _, logits, labels, _ = moco(QUERIES, KEYS)
    assert logits.shape == (2, 5) and labels.tolist() == [0, 0]
    assert moco.queue_types.tolist() == [UNKNOWN_TYPE, UNKNOWN_TYPE, 0, 1]  # overwritten


def test_the_state_dict_keeps_the_official_keys_and_loaded_queues_have_unknown_types():
    model = AirNet(**SIZE).train()
    model(torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16), torch.arange(5))
    assert model.E.E.queue_types[:5].tolist() == [0, 1, 2, 3, 4]
    assert "E.E.queue_types" in dict(model.named_buffers())
    assert list(model.state_dict()) == list(AirNet(**SIZE).state_dict())
    official = AirNet().state_dict()
    assert len(official) == 584 and not any("types" in name for name in official)
    # A loaded queue (same length or another) comes without types: all unknown.
    model.load_state_dict(AirNet(**SIZE).state_dict())
    assert model.E.E.queue_types.tolist() == [UNKNOWN_TYPE] * 16
    model.load_state_dict(AirNet(**{**SIZE, "queue_size": 24}).state_dict())
    assert model.E.E.queue_types.tolist() == [UNKNOWN_TYPE] * 24
    model(torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16), torch.arange(5))  # still trains


def test_a_supcon_run_resumes_to_the_same_weights_and_queue_types(tmp_path):
    """Stopped mid-epoch in phase 2 and resumed without the flag: the checkpoint fixes it."""
    assert "encoder_loss" in FROM_CHECKPOINT and parse_args([]).encoder_loss == "moco"
    supcon = ["--encoder_loss", "supcon"]
    uninterrupted = main(parse_args(tiny_args(tmp_path / "a", *supcon)))
    types = uninterrupted.model.E.E.queue_types
    assert types.min() >= 0 and types.max() <= 4  # 30 keys with their types filled the 16
    main(parse_args(tiny_args(tmp_path / "b", *supcon, "--max_steps", "3")))
    checkpoint = torch.load(tmp_path / "b/ckpt/airnet_last_train.pth", weights_only=True)
    assert checkpoint["args"]["encoder_loss"] == "supcon"
    assert (checkpoint["queue_types"] >= 0).sum() == 15  # 3 steps of 5 keys
    resume = [*tiny_args(tmp_path / "b"), "--resume", str(tmp_path / "b/ckpt")]
    resumed = main(parse_args([*resume, "--max_steps", "6"]))
    assert resumed.step == uninterrupted.step == 6
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert torch.equal(resumed.model.E.E.queue_types, types)
    export = torch.load(tmp_path / "b/ckpt/airnet_last.pth", weights_only=True)
    assert list(export["model"]) == list(AirNet(**SIZE).state_dict())


def test_a_checkpoint_written_before_the_option_resumes_as_moco(tmp_path, caplog):
    """tests/fixtures/train_checkpoint_7a221e3.pth has no encoder_loss and no queue_types: it
    trained with MoCo's loss and resumes with it (the option is fixed by the checkpoint); a
    --encoder_loss supcon given again is logged and ignored, and the run ends where an
    uninterrupted run of the paper's loss does."""
    old = torch.load(OLD_CHECKPOINT, weights_only=True)
    assert "queue_types" not in old and "encoder_loss" not in old["args"]
    args = parse_args([*tiny_args(tmp_path / "b"), "--encoder_loss", "supcon", *RESUME_THE_FIXTURE])
    with threads_of_the_fixture():
        uninterrupted = main(parse_args(tiny_args(tmp_path / "a")))
        with caplog.at_level(logging.INFO, logger="train"):
            resumed = main(args)
    assert args.encoder_loss == "moco"
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert ignored == [
        "fixed by the checkpoint, ignored: --encoder_loss supcon (start a new run to change them)"
    ]
    assert resumed.step == 6
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
