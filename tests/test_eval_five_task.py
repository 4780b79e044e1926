"""test.py --mode 4 (the five-task protocol) and the trained types it logs, on tiny generated
sets: SOTS-, Rain100L-, BSD68-, GoPro- (two sequences sharing frame names) and LOL-like."""

import csv
import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from net import AirNet
from utils.checkpoint import save_safetensors_atomic

ROOT = Path(__file__).resolve().parents[1]
FIVE = ["denoise_25", "derain", "dehaze", "deblur", "lowlight"]
SIZE = {"n_feats": 8, "n_groups": 1, "n_blocks": 1}


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"airnet_{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


test_script = load_script("test")


def write_image(path: Path, height: int, width: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def tiny_model() -> AirNet:
    torch.manual_seed(0)
    return AirNet(**SIZE, queue_size=16)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """The same tiny weights as our .pth (args.de_type), as safetensors (metadata) and as an
    official flat state dict (records nothing)."""
    folder = tmp_path_factory.mktemp("ckpt")
    state = tiny_model().state_dict()
    paths = {name: folder / name for name in ("ours.pth", "ours.safetensors", "flat.pth")}
    torch.save({"model": state, "args": {**SIZE, "de_type": FIVE}}, paths["ours.pth"])
    save_safetensors_atomic(state, paths["ours.safetensors"], SIZE, ["derain", "lowlight"])
    torch.save(state, paths["flat.pth"])
    return paths


@pytest.fixture
def five(tmp_path) -> Path:
    """The five test folders under tmp_path, as the benchmarks ship them (tiny)."""
    write_image(tmp_path / "SOTS/input/0001_0.8_0.2.jpg", 32, 48, 1)
    write_image(tmp_path / "SOTS/target/0001.png", 32, 48, 2)
    write_image(tmp_path / "Rain100L/input/1.png", 32, 32, 3)
    write_image(tmp_path / "Rain100L/target/1.png", 32, 32, 4)
    write_image(tmp_path / "BSD68/a.png", 32, 32, 5)
    for seed, sequence in enumerate(("GOPR0384_11_00", "GOPR0410_11_00")):
        write_image(tmp_path / "GoPro" / sequence / "blur/000001.png", 32, 32, 10 + seed)
        write_image(tmp_path / "GoPro" / sequence / "blur_gamma/000001.png", 32, 32, 20 + seed)
        write_image(tmp_path / "GoPro" / sequence / "sharp/000001.png", 32, 32, 30 + seed)
    # LOL's 600 x 400 in small: a width that is no multiple of 16 (crop 38 -> 32)
    write_image(tmp_path / "LOL/eval15/low/1.png", 24, 38, 6)
    write_image(tmp_path / "LOL/eval15/high/1.png", 24, 38, 7)
    write_image(tmp_path / "LOL/our485/low/2.png", 24, 38, 8)  # training part: not read
    write_image(tmp_path / "LOL/our485/high/2.png", 24, 38, 9)
    return tmp_path


def five_argv(root: Path, ckpt: Path, *extra: str) -> list[str]:
    return [
        "--mode", "4", "--ckpt", str(ckpt), "--device", "cpu",
        "--dehaze_path", str(root / "SOTS"), "--derain_path", str(root / "Rain100L"),
        "--denoise_path", str(root / "BSD68"), "--deblur_path", str(root / "GoPro"),
        "--lowlight_path", str(root / "LOL"), "--output_path", str(root / "out"), *extra,
    ]  # fmt: skip


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_mode_4_prints_the_five_task_table_with_its_average(five, ckpts, capsys):
    args = test_script.parse_args(five_argv(five, ckpts["ours.pth"], "--save_images"))
    assert args.sigmas == [25]  # the protocol: BSD68 at sigma 25 only
    assert test_script.main(args) == 0
    summary = json.loads((five / "out/summary.json").read_text())
    tasks = [(r["set"], r["task"]) for r in summary["results"]]
    assert tasks == [("SOTS", "dehaze"), ("Rain100L", "derain"), ("BSD68", "denoise_25"),
                     ("GoPro", "deblur"), ("LOL", "lowlight")]  # fmt: skip
    average = summary["five_task_average"]
    for key in ("psnr", "ssim", "input_psnr", "gain_psnr"):
        expected = np.mean([r[key] for r in summary["results"]])
        assert average[key] == pytest.approx(expected)
    assert summary["trained_types"] == FIVE
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    (average_line,) = [line for line in lines if line.startswith("five-task average")]
    assert f"{average['psnr']:.2f}" in average_line and f"{average['ssim']:.4f}" in average_line
    table_tasks = [line.split()[1] for line in lines[2:7]]  # header, rule, five rows
    assert table_tasks == ["dehaze", "derain", "denoise_25", "deblur", "lowlight"]
    rows = read_rows(five / "out")
    gopro = [r["image"] for r in rows if r["task"] == "deblur"]
    assert gopro == ["GOPR0384_11_00/000001.png", "GOPR0410_11_00/000001.png"]
    (lol,) = [r for r in rows if r["task"] == "lowlight"]
    assert (lol["height"], lol["width"]) == ("16", "32")  # centre crop to 16, as AdaIR
    saved = sorted(p.name for p in (five / "out/images/GoPro/deblur").iterdir())
    assert saved == ["GOPR0384_11_00_000001.png", "GOPR0410_11_00_000001.png"]  # no collision


def test_mode_4_average_weighs_tasks_not_rows(five, ckpts):
    """With --sigmas 15 50, denoising is the mean of its two rows, then one task of five."""
    args = test_script.parse_args(five_argv(five, ckpts["ours.pth"], "--sigmas", "15", "50"))
    assert test_script.main(args) == 0
    summary = json.loads((five / "out/summary.json").read_text())
    psnr = {r["task"]: r["psnr"] for r in summary["results"]}
    denoise = (psnr.pop("denoise_15") + psnr.pop("denoise_50")) / 2
    expected = np.mean([*psnr.values(), denoise])
    assert summary["five_task_average"]["psnr"] == pytest.approx(expected)


def test_clean_photos_stay_out_of_the_average(five, ckpts, capsys):
    argv = five_argv(five, ckpts["ours.pth"], "--clean_path", str(five / "BSD68"))
    assert test_script.main(test_script.parse_args(argv)) == 0
    summary = json.loads((five / "out/summary.json").read_text())
    tasks = [r["psnr"] for r in summary["results"] if r["task"] != "clean"]
    assert len(tasks) == 5 and len(summary["results"]) == 6
    assert summary["five_task_average"]["psnr"] == pytest.approx(np.mean(tasks))
    lines = capsys.readouterr().out.splitlines()
    average = next(i for i, line in enumerate(lines) if line.startswith("five-task average"))
    clean = next(i for i, line in enumerate(lines) if line.split()[1:2] == ["clean"])
    assert clean > average


def test_full_size_scores_lol_whole(five, ckpts):
    assert (
        test_script.main(test_script.parse_args(five_argv(five, ckpts["ours.pth"], "--full_size")))
        == 0
    )
    (lol,) = [r for r in read_rows(five / "out") if r["task"] == "lowlight"]
    assert (lol["height"], lol["width"]) == ("24", "38")


@pytest.mark.parametrize("drop", [["--deblur_path"], ["--lowlight_path", "--denoise_path"]])
def test_mode_4_needs_every_path(five, ckpts, capsys, caplog, drop):
    argv = five_argv(five, ckpts["ours.pth"])
    for flag in drop:
        at = argv.index(flag)
        del argv[at : at + 2]
    with pytest.raises(SystemExit) as exit_info:
        test_script.parse_args(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--mode 4" in error and all(flag in error for flag in drop)
    # main() called without parse_args(): the same, as one logged line
    args = test_script.build_parser().parse_args(argv)
    assert test_script.main(args) == 2
    assert all(flag in caplog.text for flag in drop)
    assert not (five / "out").exists()


def test_modes_0_to_3_keep_their_defaults_and_mode_3_is_renamed():
    args = test_script.parse_args(["--mode", "3"])
    assert args.sigmas == [15, 25, 50]
    assert args.denoise_path == [Path("data/test/denoise")]
    assert args.derain_path == [Path("data/test/derain")]
    assert args.dehaze_path == [Path("data/test/dehaze")]
    assert args.deblur_path is None and args.lowlight_path is None
    assert test_script.parse_args(["--mode", "0", "--sigmas", "50"]).sigmas == [50]
    assert test_script.MODE_TASKS[3] == ("denoise", "derain", "dehaze")
    help_text = " ".join(test_script.build_parser().format_help().split())
    assert "3 three tasks, five degradation types" in help_text
    assert "4 five tasks" in help_text
    assert "default: None" not in help_text  # mode-dependent defaults are said in words


def test_a_synthetic_deblur_set_names_its_proxy(five, ckpts, capsys):
    synthetic = five / "CBSD68_synthetic_blur"
    write_image(synthetic / "input/a.png", 32, 32, 40)
    write_image(synthetic / "target/a.png", 32, 32, 41)
    (synthetic / "proxy.json").write_text(json.dumps({"proxy": "a proxy for GoPro, not GoPro"}))
    argv = five_argv(five, ckpts["ours.pth"])
    argv[argv.index("--deblur_path") + 1 : argv.index("--deblur_path") + 2] = [
        str(five / "GoPro"),
        str(synthetic),
    ]
    assert test_script.main(test_script.parse_args(argv)) == 0
    labels = {
        r["set"]: r["label"] for r in json.loads((five / "out/summary.json").read_text())["results"]
    }
    assert labels["CBSD68_synthetic_blur"] == "CBSD68_synthetic_blur: synthetic blur (not GoPro)"
    assert labels["GoPro"] == "GoPro"
    printed = capsys.readouterr().out
    (line,) = [line for line in printed.splitlines() if "synthetic blur" in line]
    assert line.startswith("CBSD68_synthetic_blur: synthetic blur (not GoPro) deblur ")


@pytest.mark.parametrize(
    ("name", "logged"),
    [
        ("ours.pth", "trained types: denoise_25 derain dehaze deblur lowlight"),
        ("ours.safetensors", "trained types: derain lowlight"),
        ("flat.pth", "trained types: not recorded"),
    ],
)
def test_the_trained_types_are_logged(ckpts, tmp_path, caplog, name, logged):
    caplog.set_level(logging.INFO, logger="test")
    write_image(tmp_path / "Rain/input/1.png", 32, 32, 1)
    write_image(tmp_path / "Rain/target/1.png", 32, 32, 2)
    argv = ["--mode", "1", "--ckpt", str(ckpts[name]), "--derain_path", str(tmp_path / "Rain")]
    argv += ["--device", "cpu", "--output_path", str(tmp_path / "out")]
    assert test_script.main(test_script.parse_args(argv)) == 0
    assert logged in caplog.messages
    types = json.loads((tmp_path / "out/summary.json").read_text())["trained_types"]
    assert types == (logged.removeprefix("trained types: ").split() if name != "flat.pth" else None)


def test_untrained_tasks_are_warned_of(five, ckpts, caplog):
    """safetensors recording derain and lowlight, tested on five tasks."""
    assert test_script.main(test_script.parse_args(five_argv(five, ckpts["ours.safetensors"]))) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.endswith("was not trained on dehaze denoise deblur") for m in warnings)
    caplog.clear()
    assert test_script.main(test_script.parse_args(five_argv(five, ckpts["flat.pth"]))) == 0
    assert not [r for r in caplog.records if "not trained" in r.getMessage()]  # cannot tell
