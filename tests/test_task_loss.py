"""--loss_weighting tur and psnr, the clean type and the shipping rule (issue 19): the losses on
hand-made batches, the floor, resume with the head, nothing of the head in exports, clean
validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from net import AirNet, load_airnet
from option import parse_args
from tests.test_train import REPO, tiny_args
from train import compute_losses, main
from utils.task_loss import (
    HEAD_LR_SCALE,
    U_START,
    RestorerWithUncertainty,
    UncertaintyHead,
    per_type_l1,
    psnr_loss,
    uncertainty_weighted_l1,
)
from utils.train_dataset import ValidationImage
from utils.validation import is_better_export, mean_brightness_change, qualifies, validate

NAMES = ["denoise_15", "derain", "clean"]


def constant_batch(errors: list[float], scales: list[float]) -> tuple[torch.Tensor, ...]:
    """(restored, clean, u): sample i is off by errors[i] everywhere, with u = scales[i]."""
    clean = torch.full((len(errors), 3, 4, 4), 0.5)
    restored = clean + torch.tensor(errors).view(-1, 1, 1, 1)
    u = torch.tensor(scales).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    return restored, clean, u


def test_loss_on_a_hand_made_batch():
    # Two samples of type 0 (errors 0.1, 0.3; u 0.2, 0.4) and one of type 1 (0.05; u 0.1).
    restored, clean, u = constant_batch([0.1, 0.3, 0.05], [0.2, 0.4, 0.1])
    types = torch.tensor([0, 0, 1])
    loss, stats = uncertainty_weighted_l1(restored, clean, u, types, NAMES, floor=0.01)
    term_0 = 0.2 / 0.3 + 2 * math.log(0.3)  # L1 0.2, mean u 0.3
    term_1 = 0.05 / 0.1 + 2 * math.log(0.1)
    assert loss.item() == pytest.approx((term_0 + term_1) / 2, rel=1e-5)
    assert stats["l1/denoise_15"].item() == pytest.approx(0.2, rel=1e-5)
    assert stats["u/derain"].item() == pytest.approx(0.1, rel=1e-5)
    assert "l1/clean" not in stats  # only the types in the batch


def test_floor_bounds_the_weight_of_a_type_with_no_error():
    restored, clean, u = constant_batch([0.0, 0.1], [1e-6, 0.05])
    u.requires_grad_(True)
    loss, stats = uncertainty_weighted_l1(restored, clean, u, torch.tensor([2, 1]), NAMES, 0.02)
    assert stats["u/clean"].item() == pytest.approx(0.02)
    expected = (2 * math.log(0.02) + 0.1 / 0.05 + 2 * math.log(0.05)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.all(u.grad[0] == 0)  # below the floor the scale gets no push towards 0
    with pytest.raises(ValueError, match="floor"):
        uncertainty_weighted_l1(restored, clean, u, torch.tensor([2, 1]), NAMES, 0.0)


def test_restorer_gradient_is_weighted_by_one_over_u():
    restored, clean, u = constant_batch([0.1, 0.1], [0.05, 0.2])
    restored.requires_grad_(True)
    loss, _ = uncertainty_weighted_l1(restored, clean, u, torch.tensor([0, 1]), NAMES, 0.01)
    loss.backward()
    per_sample = restored.grad.abs().sum(dim=(1, 2, 3))
    assert per_sample[0] / per_sample[1] == pytest.approx(4.0, rel=1e-5)  # 0.2 / 0.05


def test_per_type_l1_of_a_plain_run():
    restored, clean, _ = constant_batch([0.1, 0.3, 0.05], [1, 1, 1])
    stats = per_type_l1(restored, clean, torch.tensor([0, 0, 2]), NAMES)
    assert stats["l1/denoise_15"].item() == pytest.approx(0.2, rel=1e-5)
    assert stats["l1/clean"].item() == pytest.approx(0.05, rel=1e-5)


def test_psnr_loss_is_minus_the_mean_psnr_of_the_patches():
    restored, clean, _ = constant_batch([0.1, 0.01, -0.3], [1, 1, 1])
    loss, stats = psnr_loss(restored, clean, torch.tensor([0, 1, 1]), NAMES)
    psnr = [20 * math.log10(1 / abs(error)) for error in (0.1, 0.01, 0.3)]  # MSE = error²
    assert loss.item() == pytest.approx(-sum(psnr) / 3, abs=1e-3)
    assert stats["l1/denoise_15"].item() == pytest.approx(0.1, rel=1e-5)
    assert stats["l1/derain"].item() == pytest.approx((0.01 + 0.3) / 2, rel=1e-5)
    assert psnr_loss(restored, clean, torch.tensor([0, 1, 1]))[1] == {}
    exact, _ = psnr_loss(clean, clean, torch.tensor([0, 1, 1]))
    assert exact.item() == pytest.approx(-80.0)  # 10 log10(1e-8): finite where MSE is 0


def test_psnr_loss_weighs_each_patch_by_the_inverse_of_its_error():
    # Unlike L1, whose gradient is the same for every patch, a patch ten times closer to its
    # target pulls ten times harder per pixel.
    restored, clean, _ = constant_batch([0.01, 0.1], [1, 1])
    restored.requires_grad_(True)
    psnr_loss(restored, clean, torch.tensor([0, 1]))[0].backward()
    per_sample = restored.grad.abs().sum(dim=(1, 2, 3))
    assert per_sample[0] / per_sample[1] == pytest.approx(10.0, rel=1e-4)


def test_head_is_positive_and_starts_at_u_start():
    head = UncertaintyHead(8)
    u = head(torch.randn(2, 8, 6, 5))
    assert u.shape == (2, 1, 6, 5)
    assert torch.allclose(u, torch.full_like(u, U_START), rtol=1e-5)


def test_wrapper_returns_the_models_output_and_detached_scales():
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=8).train()
    wrapper = RestorerWithUncertainty(model, UncertaintyHead(8))
    query, key = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    torch.manual_seed(1)
    restored, _, _, u = wrapper(query, key)
    assert u.shape == (2, 1, 16, 16)
    assert not model.R.tail._forward_pre_hooks  # the hook is removed after each call
    u.sum().backward()  # reaches the head only: the features are detached
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# The shipping rule
# ---------------------------------------------------------------------------------------------


def metrics(rain: float, clean: float | None = None, brightness: float = 1.0) -> dict:
    values = {"psnr/derain": rain, "input_psnr/derain": 25.0, "psnr/denoise_25": 29.0}
    values["input_psnr/denoise_25"] = 20.0
    if clean is not None:
        values.update({"psnr/clean": clean, "input_psnr/clean": None})
        values["brightness/clean"] = brightness
    values["psnr/mean"] = (rain + 29.0) / 2
    return values


def test_rule_refuses_a_type_below_its_input_and_a_darkening_model():
    assert qualifies(metrics(25.5))
    assert not qualifies(metrics(24.9))  # rain output below the rainy input
    assert not qualifies(metrics(25.0))  # equal is no gain
    assert qualifies(metrics(25.5, clean=35.0, brightness=2.9))
    assert not qualifies(metrics(25.5, clean=29.9, brightness=0.5))  # changed the photo
    assert not qualifies(metrics(25.5, clean=35.0, brightness=3.5))  # darkened it
    assert not qualifies({"psnr/derain": 30.0, "psnr/mean": 30.0})  # no input PSNR: no gain


def test_rule_refuses_a_type_below_the_shipped_file():
    """Decision 14: no type more than 0.05 dB below the shipped file on the same images; a
    type the shipped file was not validated on is compared with its input only."""
    shipped = {"psnr/derain": 26.0, "psnr/denoise_25": 29.5, "psnr/mean": 27.75}
    assert qualifies(metrics(26.0), shipped) is False  # denoise 29.0 < 29.5 - 0.05
    shipped["psnr/denoise_25"] = 29.04
    assert qualifies(metrics(25.96), shipped)  # both within 0.05 dB
    assert not qualifies(metrics(25.94), shipped)  # rain 0.06 dB below the shipped file
    assert qualifies(metrics(25.5), {"psnr/dehaze": 30.0})  # not a type of this run
    assert not qualifies(metrics(24.9), None)  # still below its input


def test_best_export_prefers_qualifying_files():
    good, better_but_bad = metrics(25.5), metrics(27.0)
    good["qualifies"], better_but_bad["qualifies"] = True, False
    assert is_better_export(better_but_bad, -math.inf, False)  # nothing qualifies yet
    assert is_better_export(good, 28.0, False)  # the first that qualifies wins
    assert not is_better_export(better_but_bad, 27.25, True)
    assert not is_better_export(good, 27.5, True)


def test_validate_scores_clean_photos_against_their_input():
    class Darken(torch.nn.Module):
        def forward(self, x):
            return x * 0.9

    rng = np.random.default_rng(0)
    photo = rng.integers(100, 200, size=(16, 16, 3), dtype=np.uint8)
    noisy = np.clip(photo.astype(int) + rng.integers(-20, 20, photo.shape), 0, 255)
    images = [
        ValidationImage("clean", "a", photo, photo),
        ValidationImage("denoise_25", "a", noisy.astype(np.uint8), photo),
    ]
    result, restored = validate(Darken(), images, torch.device("cpu"))
    assert result["input_psnr/clean"] is None
    assert result["brightness/clean"] == pytest.approx(0.1 * photo.mean(), abs=0.3)
    assert result["psnr/mean"] == result["psnr/denoise_25"]  # clean is not a degradation
    assert result["qualifies"] is False
    assert set(restored) == {"clean", "denoise_25"}
    assert mean_brightness_change(photo, photo) == 0.0


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------

VAL = [
    "--val_every", "1",
    "--val_images", "1",
    "--val_crop", "32",
    "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
    "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
    "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
]  # fmt: skip
TUR = ["--loss_weighting", "tur", "--de_type", "denoise_25", "derain", "clean"]


def test_tur_with_clean_photos_logs_per_type_and_exports_no_head(tmp_path):
    argv = tiny_args(tmp_path, *TUR, *VAL, "--epochs", "2", "--log_every", "1")
    main(parse_args(argv))
    records = [json.loads(line) for line in (tmp_path / "logs/log.jsonl").read_text().splitlines()]
    phase_2 = [r for r in records if r["kind"] == "train" and r["epoch"] == 1]
    assert phase_2
    for de_type in ("denoise_25", "derain", "clean"):
        assert all(r[f"l1/{de_type}"] >= 0 and r[f"u/{de_type}"] >= 0.01 for r in phase_2)
    val = [r for r in records if r["kind"] == "val"][-1]
    assert val["input_psnr/clean"] is None and val["brightness/clean"] >= 0
    assert isinstance(val["qualifies"], bool)
    assert val["psnr/mean"] == pytest.approx((val["psnr/denoise_25"] + val["psnr/derain"]) / 2)
    model_keys = set(AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16).state_dict())
    for name in ("airnet_last.pth", "airnet_best.pth"):
        export = torch.load(tmp_path / "ckpt" / name, weights_only=True)
        assert set(export["model"]) == model_keys
        assert export["args"]["de_type"] == ["denoise_25", "derain", "clean"]
        load_airnet(tmp_path / "ckpt" / name)  # strict: the model's keys only
    best = torch.load(tmp_path / "ckpt/airnet_best.pth", weights_only=True)
    assert isinstance(best["args"]["qualifies"], bool)
    checkpoint = torch.load(tmp_path / "ckpt/airnet_last_train.pth", weights_only=True)
    assert set(checkpoint["loss_head"]) == set(UncertaintyHead(8).state_dict())


def test_training_step_uses_the_psnr_loss_when_asked():
    class Fixed(torch.nn.Module):  # AirNet's training outputs, made by hand
        def forward(self, query, key):
            logits = torch.tensor([[2.0, 0.0, 1.0]]).repeat(len(query), 1)
            return query + 0.1, logits, torch.zeros(len(query), dtype=torch.long)

    clean = torch.full((2, 3, 8, 8), 0.5)
    batch = {"degraded_1": clean, "degraded_2": clean, "clean_1": clean}
    batch["de_type"] = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([0]))
    cpu = torch.device("cpu")
    loss, stats = compute_losses(Fixed(), batch, False, cpu, NAMES, None, "psnr")
    assert loss.item() == pytest.approx(-20.0 + 0.1 * ce.item(), abs=1e-3)  # PSNR 20 dB
    assert stats["l1/derain"].item() == pytest.approx(0.1, rel=1e-5)
    plain, _ = compute_losses(Fixed(), batch, False, cpu, NAMES, None, "none")
    assert plain.item() == pytest.approx(0.1 + 0.1 * ce.item(), rel=1e-5)  # the paper's L1


def assert_resume_is_exact(folder, extra, uninterrupted) -> None:
    """A run in ``folder`` stopped after 3 steps and resumed to 6 ends at the same step, with
    the same weights, as ``uninterrupted`` (the TrainResult of the same flags run through)."""
    interrupted = tiny_args(folder, *extra)
    main(parse_args([*interrupted, "--max_steps", "3"]))
    resume = [*interrupted, "--resume", str(folder / "ckpt"), "--max_steps", "6"]
    resumed = main(parse_args(resume))
    assert resumed.step == uninterrupted.step
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_psnr_loss_trains_validates_and_resumes_exactly(tmp_path):
    psnr = ["--loss_weighting", "psnr", "--de_type", "denoise_25", "derain"]
    uninterrupted = main(parse_args(tiny_args(tmp_path / "a", *psnr, "--log_every", "1")))
    records = (tmp_path / "a/logs/log.jsonl").read_text().splitlines()
    phase_2 = [r for r in map(json.loads, records) if r["kind"] == "train" and r["epoch"] == 1]
    assert phase_2 and all(r["l1/derain"] >= 0 and "u/derain" not in r for r in phase_2)
    assert_resume_is_exact(tmp_path / "b", psnr, uninterrupted)
    checkpoint = torch.load(tmp_path / "b/ckpt/airnet_last_train.pth", weights_only=True)
    assert checkpoint["args"]["loss_weighting"] == "psnr"  # a resumed run keeps its loss


def test_tur_resumes_to_the_same_weights_and_head(tmp_path):
    uninterrupted = main(parse_args(tiny_args(tmp_path / "a", *TUR)))
    assert_resume_is_exact(tmp_path / "b", TUR, uninterrupted)
    heads = [
        torch.load(tmp_path / run / "ckpt/airnet_last_train.pth", weights_only=True)["loss_head"]
        for run in ("a", "b")
    ]
    for name, value in heads[0].items():
        assert torch.equal(value, heads[1][name]), name


def test_head_learns_at_a_multiple_of_the_schedule(tmp_path):
    main(parse_args(tiny_args(tmp_path, *TUR, "--lr", "1e-3")))
    groups = torch.load(tmp_path / "ckpt/airnet_last_train.pth", weights_only=True)["optimizer"]
    rates = [group["lr"] for group in groups["param_groups"]]
    assert rates == pytest.approx([1e-3, 1e-3 * HEAD_LR_SCALE])
