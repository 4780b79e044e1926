"""The five-task setting end to end on CPU (issue 22): denoise_25 derain dehaze deblur lowlight
trained from GoPro- and LOL-like folders or from synthetic blur and low light, resumed exactly
and validated, with a tiny AirNet."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from option import parse_args
from tests.test_train import TINY
from tests.test_train_dataset import make_five_task_folders
from train import main

REPO = Path(__file__).resolve().parents[1]
FIVE_TASKS = ["denoise_25", "derain", "dehaze", "deblur", "lowlight"]


def five_task_args(root: Path, *extra: str, synthetic: bool = False) -> list[str]:
    """One patch per type and step, 2 steps per epoch, phase 2 from epoch 1, validation of
    every type each epoch on one 32 px image; real GoPro/LOL layouts or synthetic ones."""
    folders = make_five_task_folders(root / "data")
    data = ["--synthetic", "deblur", "lowlight"] if synthetic else [
        "--deblur_dir", str(folders["deblur"]),
        "--lowlight_dir", str(folders["lowlight"]),
    ]  # fmt: skip
    return [
        *TINY,
        "--de_type", *FIVE_TASKS,
        "--denoise_dir", str(folders["denoise"]),
        "--derain_dir", str(folders["derain"]),
        "--dehaze_dir", str(folders["dehaze"]),
        *data,
        "--data_file_dir", str(root / "no_lists"),
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
        "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
        "--val_deblur_dir", str(folders["val_deblur"]),
        "--val_lowlight_dir", str(folders["val_lowlight"]),
        "--val_every", "1", "--val_images", "1", "--val_crop", "32",
        "--ckpt_path", str(root / "ckpt"),
        "--log_dir", str(root / "logs"),
        "--output_path", str(root / "out"),
        "--patch_size", "24", "--epoch_size", "2", "--epochs_encoder", "1", "--epochs", "3",
        "--num_workers", "0", "--device", "cpu",
        *extra,
    ]  # fmt: skip


def val_records(root: Path) -> list[dict]:
    lines = (root / "logs" / "log.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == "val"]


def test_real_layouts_train_resume_exactly_and_validate(tmp_path):
    uninterrupted = main(parse_args(five_task_args(tmp_path / "a")))
    assert (uninterrupted.epoch, uninterrupted.step) == (3, 6)
    last = val_records(tmp_path / "a")[-1]
    for de_type in FIVE_TASKS:
        assert math.isfinite(last[f"psnr/{de_type}"]) and math.isfinite(
            last[f"input_psnr/{de_type}"]
        )
        assert (tmp_path / "a" / "out" / "val" / de_type).is_dir()
    # Stop mid-epoch in phase 2; --max_steps comes from the checkpoint unless given again.
    interrupted = five_task_args(tmp_path / "b")
    assert main(parse_args([*interrupted, "--max_steps", "3"])).step == 3
    resume = [*interrupted, "--resume", str(tmp_path / "b" / "ckpt"), "--max_steps", "6"]
    resumed = main(parse_args(resume))
    assert resumed.step == 6
    expected = uninterrupted.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert val_records(tmp_path / "b")[-1]["psnr/lowlight"] == last["psnr/lowlight"]


def test_synthetic_blur_and_low_light_train_and_validate(tmp_path):
    args = parse_args(five_task_args(tmp_path, "--max_steps", "2", synthetic=True))
    assert args.deblur_dir is None and args.lowlight_dir is None
    assert main(args).step == 2
    (record,) = val_records(tmp_path)
    assert {"psnr/deblur", "psnr/lowlight", "input_psnr/deblur"} <= set(record)
    checkpoint = torch.load(tmp_path / "ckpt" / "airnet_last_train.pth", weights_only=True)
    assert checkpoint["args"]["synthetic"] == ["deblur", "lowlight"]
