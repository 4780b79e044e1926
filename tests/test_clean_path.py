"""test.py --clean_path (decision 11): clean photos given as their own input, scored as output
vs input with the mean absolute brightness change in grey levels."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from net import AirNet
from utils.degradations import crop_to_multiple

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"airnet_{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


test_script = load_script("test")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"model": model.state_dict(), "args": model.config}, path)
    return path


@pytest.fixture
def photos(tmp_path) -> dict[str, np.ndarray]:
    """Two clean photos, values in [20, 230] (no clipping by a small change), odd sizes."""
    rng = np.random.default_rng(0)
    images = {
        "a.png": rng.integers(20, 231, (37, 41, 3), dtype=np.uint8),
        "b.png": rng.integers(20, 231, (32, 48, 3), dtype=np.uint8),
    }
    (tmp_path / "photos").mkdir()
    for name, image in images.items():
        Image.fromarray(image).save(tmp_path / "photos" / name)
    write_pair(tmp_path / "Rain", rng)
    return images


def write_pair(folder: Path, rng: np.random.Generator) -> None:
    for sub in ("input", "target"):
        (folder / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / sub / "1.png"
        )


def stand_in(monkeypatch, function) -> None:
    """Restore with ``function`` of the (1, 3, H, W) input in [0, 1] instead of the network."""

    def restore_tensor(x, *args, report=None, **kwargs):
        report.update(tile=None, tile_reason=None)
        return function(x.cpu())

    monkeypatch.setattr(test_script, "restore_tensor", restore_tensor)


def run(tmp_path: Path, ckpt: Path) -> tuple[int, dict, list[dict]]:
    """test.py --mode 1 with --clean_path: (exit code, summary.json, results.csv rows)."""
    argv = ["--mode", "1", "--ckpt", str(ckpt), "--derain_path", str(tmp_path / "Rain")]
    argv += ["--clean_path", str(tmp_path / "photos"), "--device", "cpu"]
    argv += ["--output_path", str(tmp_path / "out")]
    code = test_script.main(test_script.parse_args(argv))
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    with open(tmp_path / "out/results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return code, summary, rows


def clean_result(summary: dict) -> dict:
    (result,) = [r for r in summary["results"] if r["task"] == "clean"]
    return result


def test_a_near_identity_keeps_clean_photos(tmp_path, tiny_ckpt, photos, monkeypatch, capsys):
    """Output = input + 0.5 grey levels: PSNR 20 log10(255 / 0.5), brightness change 0.5."""
    stand_in(monkeypatch, lambda x: x + 0.5 / 255)
    code, summary, rows = run(tmp_path, tiny_ckpt)
    assert code == 0
    result = clean_result(summary)
    assert result["set"] == "photos" and result["images"] == 2
    assert result["psnr"] == pytest.approx(20 * np.log10(255 / 0.5), abs=1e-3)
    assert result["ssim"] > 0.999
    assert result["brightness_change"] == pytest.approx(0.5, abs=1e-4)
    assert result["input_psnr"] is None and result["gain_psnr"] is None  # not applicable
    derain = [r for r in summary["results"] if r["task"] == "derain"]
    assert len(derain) == 1 and "brightness_change" not in derain[0]
    clean_rows = [r for r in rows if r["task"] == "clean"]
    assert [r["image"] for r in clean_rows] == ["a.png", "b.png"]
    assert all(r["input_psnr"] == "" and float(r["brightness_change"]) > 0 for r in clean_rows)
    assert [r["brightness_change"] for r in rows if r["task"] == "derain"] == [""]
    printed = capsys.readouterr().out
    (line,) = [line for line in printed.splitlines() if line.startswith("photos ")]
    assert line.split()[1:4] == ["clean", f"{result['psnr']:.2f}", f"{result['ssim']:.4f}"]
    assert line.split()[-1] == "0.50" and "|d mean|" in printed


def test_a_darkening_model_shows_its_brightness_change(tmp_path, tiny_ckpt, photos, monkeypatch):
    """Output = 0.75 x input: the change is a quarter of each cropped photo's mean."""
    stand_in(monkeypatch, lambda x: 0.75 * x)
    _, summary, rows = run(tmp_path, tiny_ckpt)
    crops = {name: crop_to_multiple(image, 16) for name, image in photos.items()}
    per_image = {name: 0.25 * crop.mean() for name, crop in crops.items()}
    for row in rows:
        if row["task"] == "clean":
            assert float(row["brightness_change"]) == pytest.approx(per_image[row["image"]], 1e-3)
    result = clean_result(summary)
    assert result["brightness_change"] == pytest.approx(np.mean(list(per_image.values())), 1e-4)
    expected_psnr = np.mean(
        [10 * np.log10(1 / np.mean((0.25 * crop / 255.0) ** 2)) for crop in crops.values()]
    )
    assert result["psnr"] == pytest.approx(expected_psnr, abs=1e-3)


def test_clean_photos_with_the_network(tmp_path, tiny_ckpt, photos):
    """No stand-in: the row exists and its numbers are finite (any mode takes --clean_path)."""
    code, summary, _ = run(tmp_path, tiny_ckpt)
    assert code == 0
    result = clean_result(summary)
    assert np.isfinite(result["psnr"]) and result["brightness_change"] >= 0
