"""RESIDE's namings pair with their clear ``<id>`` everywhere (issue 33 item 10, decision 8):
test.py, training, validation and --check_data read SOTS indoor's ``1400_k.png`` beside
``1400.png`` as they read outdoor's ``0001_A_B``; an exact same-stem partner still wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.test_eval import test_script
from utils.train_dataset import scan_training_data, scan_validation_data


def write(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)


def sots_indoor(root: Path) -> Path:
    """input/1400_1.png, 1400_2.png, 1400_10.png + target/1400.png, as SOTS indoor ships."""
    for k in (1, 2, 10):
        write(root / f"input/1400_{k}.png", k)
    write(root / "target/1400.png", 0)
    return root


def test_test_py_scores_every_sots_indoor_image(tmp_path, tiny_ckpt):
    """Every image was skipped ("no clean partner: tried .../target/1400_1.*") and nothing
    was reported."""
    folder = sots_indoor(tmp_path / "SOTS_indoor")
    out = tmp_path / "out"
    argv = [
        "--mode", "2", "--ckpt", str(tiny_ckpt), "--dehaze_path", str(folder),
        "--output_path", str(out), "--device", "cpu",
    ]  # fmt: skip
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    rows = (out / "results.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[2] for row in rows) == ["1400_1.png", "1400_10.png", "1400_2.png"]


def test_training_validation_and_check_data_pair_indoor_names(tmp_path):
    """Training's scan and validation's scan (both of --check_data too) pair them alike."""
    train = sots_indoor(tmp_path / "train")
    write(train / "target/1400_2.png", 5)  # the same stem wins over the RESIDE id
    (training,) = scan_training_data(["dehaze"], {"dehaze": train})
    (validation,) = scan_validation_data(["dehaze"], {"dehaze": sots_indoor(tmp_path / "val")})
    for scan in (training, validation):
        assert scan.usable and scan.skipped == [] and len(scan.items) == 3
    partners = {degraded.name: clean.name for degraded, clean in training.items}
    assert partners == {
        "1400_1.png": "1400.png",
        "1400_10.png": "1400.png",
        "1400_2.png": "1400_2.png",
    }
