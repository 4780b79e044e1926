"""Training warns about test content (issue 30): train.py --check_data and the start of every
run compare every training and validation image with the benchmark fingerprints, name the
overlaps and list them; --drop_test_content leaves them out."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train
from option import parse_args
from tests.test_train import tiny_args
from tests.test_train_dataset import make_training_folders
from utils.fingerprints import Benchmark, fingerprint_folder
from utils.image_files import read_image


def run_cli(monkeypatch, argv: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    with pytest.raises(SystemExit) as stop:
        train.cli()
    return stop.value.code


def make_test_set(photos: list[Path], root: Path, monkeypatch) -> Benchmark:
    """A test set whose targets are the training photos ``photos``: the first turned by 90
    degrees and saved as JPEG, the others with equal pixels; train.py compares with it alone."""
    for index, photo in enumerate(photos, start=1):
        image = read_image(photo)
        if index == 1:
            Image.fromarray(np.rot90(image)).save(root / "target" / "1.jpg", quality=85)
        else:
            Image.fromarray(image).save(root / "target" / f"{index}.png")
    benchmark = fingerprint_folder(root, "Bench", "made in the test")
    monkeypatch.setattr(train, "load_benchmarks", lambda: [benchmark])
    return benchmark


@pytest.fixture
def data(tmp_path) -> dict[str, Path]:
    """Training folders of real photo crops (3 photos; the rain targets are the same photos)
    and an empty test set folder."""
    (tmp_path / "bench/target").mkdir(parents=True)
    return make_training_folders(tmp_path / "data")


def check_argv(tmp_path: Path, data: dict[str, Path], *extra: str) -> list[str]:
    return [
        "--check_data", "--de_type", "denoise_25", "derain",
        "--denoise_dir", str(data["denoise"]), "--derain_dir", str(data["derain"]),
        "--data_file_dir", str(tmp_path / "no_lists"), "--val_every", "0",
        "--log_dir", str(tmp_path / "logs"), *extra,
    ]  # fmt: skip


def test_check_data_names_test_content_and_lists_it(tmp_path, data, monkeypatch, capsys):
    photos = sorted(data["denoise"].glob("*.png"))
    make_test_set(photos[:2], tmp_path / "bench", monkeypatch)
    assert run_cli(monkeypatch, check_argv(tmp_path, data)) == 0
    output = capsys.readouterr().out
    assert (
        f"test content: 2 of 3 training denoise images ({data['denoise']}) are Bench images: "
        "2 target/ (1 with equal pixels)"
    ) in output
    # the rain targets are the same photos, and their rainy inputs the same photos with streaks
    assert (
        f"test content: 4 of 6 training derain images ({data['derain']}) are Bench images: "
        "2 target/ (1 with equal pixels)"
    ) in output
    listed = (tmp_path / "logs/test_content.tsv").read_text().splitlines()
    assert listed[0].split("\t") == [
        "part", "data", "file", "benchmark", "image", "distance_bits", "equal_pixels",
    ]  # fmt: skip
    rows = [line.split("\t") for line in listed[1:]]
    assert [(row[1], Path(row[2]).name, row[4], row[6]) for row in rows[:2]] == [
        ("denoise", photos[0].name, "target/1.jpg", "no"),
        ("denoise", photos[1].name, "target/2.png", "yes"),
    ]
    assert f"6 files, kept (--drop_test_content leaves them out); list: {tmp_path}" in output
    assert "test content checked: 9 images against 1 benchmark fingerprint in " in output


def test_drop_test_content_leaves_them_out(tmp_path, data, monkeypatch, capsys):
    photos = sorted(data["denoise"].glob("*.png"))
    make_test_set(photos[:2], tmp_path / "bench", monkeypatch)
    argv = check_argv(tmp_path, data, "--drop_test_content")
    assert run_cli(monkeypatch, argv) == 0
    output = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line.split()[2:5] for line in output.splitlines()[1:3]}
    assert rows == {
        ("training", "denoise_25"): ["3", "1", "2"],
        ("training", "derain"): ["3", "1", "4"],  # both files of two pairs
    }
    assert f"{photos[1]}: test content: Bench target/2.png (equal pixels)" in output
    assert "left out of this run (--drop_test_content)" in output

    make_test_set(photos, tmp_path / "bench", monkeypatch)  # every photo: nothing left
    assert run_cli(monkeypatch, argv) == 2
    output = capsys.readouterr().out
    assert "no image left for denoise_25 (3 left out as test content)" in output


def test_every_run_warns_and_drops_on_request(tmp_path, monkeypatch, caplog):
    args = tiny_args(tmp_path, "--de_type", "denoise_15", "--max_steps", "1")
    photos = sorted((tmp_path / "data/denoise").glob("*.png"))
    (tmp_path / "bench/target").mkdir(parents=True)
    make_test_set(photos[:1], tmp_path / "bench", monkeypatch)
    with caplog.at_level(logging.INFO):
        train.main(parse_args(args))
    assert "test content: 1 of 3 training denoise images" in caplog.text
    assert "denoise_15: 3 images from" in caplog.text  # warned, not dropped
    assert (tmp_path / "logs/test_content.tsv").is_file()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train.main(parse_args([*args, "--drop_test_content", "--ckpt_path", str(tmp_path / "b")]))
    assert "denoise_15: 2 images from" in caplog.text
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("test content: 1 files, left out of this run") for m in warnings)


def test_validation_images_are_checked_too(tmp_path, data, monkeypatch, capsys):
    photos = sorted(data["denoise"].glob("*.png"))
    val = tmp_path / "val/denoise"
    val.mkdir(parents=True)
    Image.fromarray(read_image(photos[2])[:, ::-1]).save(val / "held_out.png")  # flipped
    make_test_set(photos[1:3], tmp_path / "bench", monkeypatch)
    argv = [
        "--check_data", "--de_type", "denoise_25", "--denoise_dir", str(data["denoise"]),
        "--val_every", "1", "--val_denoise_dir", str(val), "--log_dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    assert run_cli(monkeypatch, argv) == 0
    output = capsys.readouterr().out
    assert f"test content: 1 of 1 validation denoise images ({val}) are Bench images" in output
