"""AirNet against the official checkpoint format and an independent reference (CPU)."""

from __future__ import annotations

import torch

from net import AirNet, load_airnet
from tests.airnet_reference import (
    first_offsets,
    official_key_shapes,
    random_official_state_dict,
    reference_eval,
    reference_train,
)


def tiny(queue_size: int = 16) -> AirNet:
    return AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=queue_size)


def test_state_dict_keys_and_shapes_equal_official():
    ours = {k: tuple(v.shape) for k, v in AirNet().state_dict().items()}
    assert ours == official_key_shapes(1280)
    assert len(ours) == 584


def test_parameter_count_matches_paper():
    model = AirNet()
    assert sum(p.numel() for p in model.parameters()) == 8_930_313
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 7_610_377


def test_official_checkpoint_loads_strictly_and_matches_reference_eval(tmp_path):
    state = random_official_state_dict(queue_size=768)  # Denoise.pth was trained with batch 3
    path = tmp_path / "Denoise.pth"
    torch.save(state, path)
    model = load_airnet(path)
    assert model.E.E.queue.shape == (256, 768)
    x = torch.rand(1, 3, 19, 26, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ours = model(x)
        expected = reference_eval(state, x)
    assert ours.shape == x.shape
    assert (ours - expected).abs().max().item() < 1e-4
    assert expected.std() > 0.01  # the comparison is not between two constants
    assert first_offsets(state, x).abs().max() > 10  # samples fall outside the 19x26 image


def test_training_forward_matches_reference_for_the_same_queue():
    state = random_official_state_dict(queue_size=1280, seed=2)
    model = AirNet()
    model.load_state_dict(state)
    model.train()
    gen = torch.Generator().manual_seed(3)
    xq, xk = torch.rand(2, 3, 16, 20, generator=gen), torch.rand(2, 3, 16, 20, generator=gen)
    restored, logits, labels = model(xq, xk)
    ref_restored, ref_logits, ref_labels = reference_train(state, xq, xk)
    assert logits.shape == (2, 1 + 1280)
    assert (restored - ref_restored).abs().max().item() < 1e-4
    assert (logits - ref_logits).abs().max().item() < 1e-3
    assert torch.equal(labels, ref_labels)
    assert int(model.E.E.queue_ptr) == 5  # pointer 3 + batch 2


def test_eval_any_size_and_inference_mode():
    model = tiny().eval()
    with torch.inference_mode():
        for h, w in [(1, 1), (7, 13), (33, 20), (17, 64)]:
            assert model(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_eval_runs_query_encoder_only_and_leaves_queue_alone():
    model = tiny().eval()
    queue, ptr = model.E.E.queue.clone(), model.E.E.queue_ptr.clone()
    key_params = [p.clone() for p in model.E.E.encoder_k.parameters()]
    calls = []
    model.E.E.encoder_k.register_forward_hook(lambda *args: calls.append(1))
    with torch.inference_mode():
        model(torch.rand(2, 3, 12, 12))
    assert not calls
    assert torch.equal(queue, model.E.E.queue) and torch.equal(ptr, model.E.E.queue_ptr)
    assert all(
        torch.equal(a, b) for a, b in zip(key_params, model.E.E.encoder_k.parameters(), strict=True)
    )


def test_training_outputs_and_no_gradient_into_key_encoder():
    model = tiny(queue_size=16).train()
    restored, logits, labels = model(torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16))
    assert restored.shape == (4, 3, 16, 16)
    assert logits.shape == (4, 17) and labels.dtype == torch.long and not labels.any()
    loss = restored.abs().mean() + torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    assert all(p.grad is None for p in model.E.E.encoder_k.parameters())
    assert all(not p.requires_grad for p in model.E.E.encoder_k.parameters())
    assert model.E.E.encoder_q.E_pre.backbone[0].weight.grad.abs().sum() > 0


def test_momentum_update_of_key_encoder():
    model = tiny().train()
    moco = model.E.E
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(1.0)
    q_before = [p.clone() for p in moco.encoder_q.parameters()]
    k_before = [p.clone() for p in moco.encoder_k.parameters()]
    model(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    for q, k0, k1 in zip(q_before, k_before, moco.encoder_k.parameters(), strict=True):
        torch.testing.assert_close(k1, 0.999 * k0 + 0.001 * q)


def test_queue_enqueue_wraps_around_when_k_is_not_a_multiple_of_the_batch():
    moco = tiny(queue_size=7).E.E
    keys = torch.nn.functional.normalize(torch.randn(5, moco.queue.shape[0]), dim=1)
    moco._dequeue_and_enqueue(keys)
    assert int(moco.queue_ptr) == 5
    more = torch.nn.functional.normalize(torch.randn(5, moco.queue.shape[0]), dim=1)
    moco._dequeue_and_enqueue(more)
    assert int(moco.queue_ptr) == 3  # (5 + 5) % 7
    torch.testing.assert_close(moco.queue[:, 5:7], more[:2].T)
    torch.testing.assert_close(moco.queue[:, 0:3], more[2:].T)
    torch.testing.assert_close(moco.queue[:, 3:5], keys[3:].T)


def test_queue_longer_batch_than_queue_keeps_last_keys():
    moco = tiny(queue_size=4).E.E
    keys = torch.randn(6, moco.queue.shape[0])
    moco._dequeue_and_enqueue(keys)
    assert int(moco.queue_ptr) == 0
    torch.testing.assert_close(moco.queue, keys[2:].T)


def test_loading_other_queue_lengths_and_module_prefix(tmp_path):
    source = tiny(queue_size=12)
    for name, state in {
        "plain.pth": source.state_dict(),
        "ddp.pth": {f"module.{k}": v for k, v in source.state_dict().items()},
        "ours.pth": {"model": source.state_dict(), "args": {"n_feats": 8, "n_groups": 1}},
    }.items():
        torch.save(state, tmp_path / name)
        model = load_airnet(tmp_path / name, n_feats=8, n_groups=1, n_blocks=1)
        assert model.E.E.queue.shape == (32, 12)
        torch.testing.assert_close(model.E.E.queue, source.E.E.queue)
        x = torch.rand(1, 3, 10, 9)
        with torch.inference_mode():
            torch.testing.assert_close(model(x), source.eval()(x))


def test_load_rejects_mismatched_checkpoint_with_a_clear_message(tmp_path):
    torch.save(tiny().state_dict(), tmp_path / "tiny.pth")
    try:
        load_airnet(tmp_path / "tiny.pth", n_feats=64, n_groups=5, n_blocks=5)
    except RuntimeError as error:
        assert "tiny.pth" in str(error)
    else:
        raise AssertionError("a tiny checkpoint must not load into the full model")


def test_same_weights_same_output():
    model = tiny().eval()
    x = torch.rand(1, 3, 21, 15)
    with torch.inference_mode():
        assert torch.equal(model(x), model(x))
