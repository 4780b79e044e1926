"""train.py --check_data (issue 21): the data scanned exactly as training scans it, one table,
exit 0 when every type is usable and 2 when not, without building a model; and the size rule
of decision 7 shared by training, validation and the check (issue 20 item 3)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train
from tests.test_train import tiny_args
from tests.test_train_dataset import make_five_task_folders

REPO = Path(__file__).resolve().parents[1]


def run_cli(monkeypatch, argv: list[str]) -> int:
    """train.py's cli in this process; returns its exit status."""
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    with pytest.raises(SystemExit) as stop:
        train.cli()
    return stop.value.code


@pytest.fixture
def no_model(monkeypatch):
    """--check_data never builds a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(train, "AirNet", refuse)


def five_task_check(root: Path, *extra: str) -> list[str]:
    folders = make_five_task_folders(root)
    return [
        "--check_data",
        "--de_type", "denoise_25", "derain", "dehaze", "deblur", "lowlight",
        "--denoise_dir", str(folders["denoise"]),
        "--derain_dir", str(folders["derain"]),
        "--dehaze_dir", str(folders["dehaze"]),
        "--deblur_dir", str(folders["deblur"]),
        "--lowlight_dir", str(folders["lowlight"]),
        "--data_file_dir", str(root / "no_lists"),
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
        "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
        "--val_deblur_dir", str(folders["val_deblur"]),
        "--val_lowlight_dir", str(folders["val_lowlight"]),
        *extra,
    ]  # fmt: skip


def table_rows(output: str) -> dict[tuple[str, str], list[str]]:
    """(part, type) -> [images, pairs, skipped] from the table."""
    rows = {}
    for line in output.splitlines()[1:]:
        if not line.strip():
            break
        part, de_type, images, pairs, skipped = line.split()[:5]
        rows[part, de_type] = [images, pairs, skipped]
    return rows


def test_a_good_five_task_folder_is_usable(tmp_path, monkeypatch, capsys, no_model):
    assert run_cli(monkeypatch, five_task_check(tmp_path)) == 0
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert rows["training", "deblur"] == ["3", "3", "0"]  # blur_gamma/ not counted
    assert rows["training", "lowlight"] == ["3", "3", "0"]  # our485/ of a LOL root
    assert rows["validation", "lowlight"] == ["3", "3", "0"]
    assert len(rows) == 10 and "every type is usable" in output
    assert "2 sequences <sequence>/blur/ + <sequence>/sharp/" in output  # the layout found


def test_a_broken_folder_exits_2_with_the_reasons(tmp_path, monkeypatch, capsys, no_model):
    argv = five_task_check(tmp_path)
    root = tmp_path
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "denoise" / "tiny.png")
    (root / "denoise" / "broken.png").write_bytes(b"not an image")
    (root / "derain" / "gt" / "norain-2.png").unlink()
    for path in (root / "lowlight" / "our485" / "high").iterdir():
        path.unlink()
    (root / "dehaze" / "synthetic").rename(root / "dehaze" / "hazy_images")
    assert run_cli(monkeypatch, [*argv, "--val_every", "0"]) == 2
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert rows["training", "denoise_25"] == ["5", "3", "2"]
    assert rows["training", "derain"] == ["3", "2", "1"]
    assert rows["training", "lowlight"] == ["3", "NONE", "3"]
    assert rows["training", "dehaze"][1] == "NONE"
    assert not any(part == "validation" for part, _ in rows)  # --val_every 0: not scanned
    assert f"{root / 'denoise' / 'tiny.png'}: too small to use: 12x12" in output
    assert f"{root / 'denoise' / 'broken.png'}: cannot read image" in output
    assert f"{root / 'derain' / 'rainy' / 'rain-2.png'}: no clean partner: tried" in output
    assert f"--dehaze_dir {root / 'dehaze'}: no dehaze layout here; expected" in output
    assert f"--lowlight_dir {root / 'lowlight'}: no usable image for lowlight" in output


def test_a_type_without_a_validation_folder(tmp_path, monkeypatch, capsys, caplog, no_model):
    argv = [a for a in five_task_check(tmp_path) if "val_deblur" not in a]
    argv.remove(str(tmp_path / "val" / "deblur"))
    assert run_cli(monkeypatch, argv) == 2
    assert "deblur: no validation folder: give --val_deblur_dir" in capsys.readouterr().out
    # Training itself stops on it in one line, exit 2, before a model is built.
    argv.remove("--check_data")
    with caplog.at_level(logging.ERROR):
        training = ["--ckpt_path", str(tmp_path / "ckpt"), "--num_workers", "0", "--device", "cpu"]
        assert run_cli(monkeypatch, [*argv, *training]) == 2
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "--val_deblur_dir" in error and "--val_every 0" in error and "\n" not in error


def test_tiny_images_one_rule_for_training_validation_and_the_check(tmp_path, monkeypatch, capsys):
    """Issue 20 item 3: a 12x12 image in --denoise_dir (patch 32) is named and skipped, in
    training (which runs), in validation and by --check_data alike."""
    argv = tiny_args(tmp_path, "--de_type", "denoise_15", "--max_steps", "1", "--patch_size", "32")
    denoise = Path(argv[argv.index("--denoise_dir") + 1])
    tiny = denoise / "tiny.png"
    Image.fromarray(np.full((12, 12, 3), 90, np.uint8)).save(tiny)
    val = ["--val_every", "1", "--val_denoise_dir", str(denoise), "--val_crop", "32"]
    assert run_cli(monkeypatch, [*argv, *val, "--check_data"]) == 0
    output = capsys.readouterr().out
    assert output.count(f"{tiny}: too small to use: 12x12") == 2  # training, validation
    result = train.main(train.parse_args([*argv, *val]))
    assert result.step == 1 and "psnr/denoise_15" in result.validations[-1]


def test_check_data_reads_the_config_and_the_checkpoint(tmp_path, monkeypatch, capsys, no_model):
    """Decision 6 as in training: --config sets the folders; --resume alone checks the
    folders the checkpoint trained on, not the parser's defaults."""
    argv = tiny_args(tmp_path, "--de_type", "derain", "--max_steps", "1")
    derain = argv[argv.index("--derain_dir") + 1]
    config = tmp_path / "recipe.yaml"
    config.write_text(f"de_type: [derain]\nderain_dir: {derain}\nval_every: 0\n")
    assert run_cli(monkeypatch, ["--config", str(config), "--check_data"]) == 0
    output = capsys.readouterr().out
    assert table_rows(output) == {("training", "derain"): ["3", "3", "0"]}
    assert f"  {derain} (rainy/ + gt/)" in output
    monkeypatch.undo()
    train.main(train.parse_args(argv))
    (Path(derain) / "gt" / "norain-1.png").unlink()
    monkeypatch.setattr(train, "AirNet", lambda *a, **k: pytest.fail("a model was built"))
    code = run_cli(monkeypatch, ["--check_data", "--resume", str(tmp_path / "ckpt")])
    assert code == 0  # two pairs are left: usable, the skip listed
    assert f"{derain}/rainy/rain-1.png: no clean partner" in capsys.readouterr().out


def test_command_line_check_data(tmp_path):
    """As a user runs it: python train.py --check_data ... prints the table and exits."""
    argv = five_task_check(tmp_path, "--val_every", "0")
    (tmp_path / "deblur" / "GOPR0001_11_00" / "sharp" / "000001.png").unlink()
    result = subprocess.run(
        [sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert table_rows(result.stdout)["training", "deblur"] == ["3", "2", "1"]
    assert "GOPR0001_11_00/blur/000001.png: no clean partner" in result.stdout
    assert "Traceback" not in result.stderr and not (tmp_path / "ckpt").exists()
