"""File names that are not UTF-8, and names near the file system's limit (issue 33 items 1, 5).

Linux allows any bytes in a name: a Latin-1 ``caf\\xe9.png`` is read, scored, hashed, logged
and written to CSV and JSON by every entry point, shown as ``caf\\xe9.png`` (docs/errors.md),
while output files keep its original bytes. A name whose final form is legal (255 bytes) is
written, whatever the temporary name of its atomic write.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train
from tests.test_demo import demo
from tests.test_eval import test_script
from tests.test_five_task_data import make_deblur_testset, make_split
from utils.checkpoint import safetensors_metadata, save_checkpoint_atomic
from utils.degradations import noise_rng
from utils.image_files import distinct_names
from utils.paths import NAME_MAX, name_bytes, show_names_in_output, shown
from utils.train_dataset import build_validation_set, scan_training_data

CAFE = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: Python holds them as 'caf\udce9.png'
CAFE_SHOWN = "caf\\xe9.png"  # how logs, CSV and JSON show it: 11 characters


def write(path: Path, size: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def names_on_disk(folder: Path) -> set[bytes]:
    return set(os.listdir(os.fsencode(folder)))


# ---------------------------------------------------------------------------------------------
# Item 1: names that are not UTF-8
# ---------------------------------------------------------------------------------------------


def test_shown_escapes_only_the_bytes_that_are_not_utf8():
    assert shown(CAFE) == CAFE_SHOWN and len(CAFE_SHOWN) == 11
    assert shown(Path("/data") / CAFE) == "/data/" + CAFE_SHOWN
    assert shown("café ☂.png") == "café ☂.png"  # valid UTF-8 is left alone
    assert name_bytes(CAFE) == b"caf\xe9.png" and name_bytes("café") == "café".encode()
    # Seeds made from UTF-8 names did not change; a Latin-1 name has its own.
    before = np.random.default_rng([0, zlib.crc32("café.png".encode()), 25])
    assert noise_rng("café.png", 25).integers(1 << 30) == before.integers(1 << 30)
    assert noise_rng(CAFE, 25).integers(1 << 30) != noise_rng("caf.png", 25).integers(1 << 30)


def test_every_print_and_log_line_shows_the_escape(monkeypatch):
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stderr", stream)
    show_names_in_output()
    handler = logging.StreamHandler(stream)
    logging.getLogger("names").addHandler(handler)
    try:
        logging.getLogger("names").error("skipped %s", CAFE)
    finally:
        logging.getLogger("names").removeHandler(handler)
    stream.flush()
    assert stream.buffer.getvalue().decode("utf-8") == f"skipped {CAFE_SHOWN}\n"


def test_test_py_scores_a_latin1_name(tmp_path, tiny_ckpt):
    """test.py crashed with a traceback (UnicodeEncodeError hashing the name for its noise),
    leaving only results.csv.partial."""
    write(tmp_path / "set" / CAFE, size=16)
    out = tmp_path / "out"
    argv = [
        "--mode", "0", "--sigmas", "15", "--ckpt", str(tiny_ckpt), "--save_images",
        "--denoise_path", str(tmp_path / "set"), "--output_path", str(out), "--device", "cpu",
    ]  # fmt: skip
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    with open(out / "results.csv", encoding="utf-8") as rows:
        assert [row["image"] for row in csv.DictReader(rows)] == [CAFE_SHOWN]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["results"][0]["images"] == 1
    assert names_on_disk(out / "images/set/denoise_15") == {b"caf\xe9.png"}  # original bytes


def test_training_validation_and_check_data_read_a_latin1_name(tmp_path, capsys, monkeypatch):
    """--check_data called such a validation set usable, then the run crashed at its first
    validation; the check's table itself names such a file as the logs do."""
    photos = tmp_path / "photos"
    write(photos / CAFE)
    write(photos / os.fsdecode(b"tiny\xff.png"), size=8)  # too small: named in the table
    (image,) = build_validation_set(["denoise_25"], {"denoise": photos})
    assert image.name == CAFE.removesuffix(".png")
    (scan,) = scan_training_data(["denoise_25"], {"denoise": photos})
    assert len(scan.items) == 1
    argv = ["train.py", "--check_data", "--de_type", "denoise_25", "--denoise_dir", str(photos)]
    monkeypatch.setattr(sys, "argv", [*argv, "--val_denoise_dir", str(photos)])
    with pytest.raises(SystemExit) as stop:
        train.cli()
    assert stop.value.code == 0
    assert "tiny\\xff.png: too small to use" in capsys.readouterr().out


def test_scripts_hash_and_record_a_latin1_name(tmp_path):
    """make_split.py and make_deblur_testset.py seeded their haze and blur with the name's
    UTF-8 encoding and crashed on it."""
    photos = tmp_path / "photos"
    write(photos / CAFE)
    write(photos / "b.png", seed=1)
    assert make_split.main(["--clean_dir", str(photos), "--output", str(tmp_path / "split"),
                            "--val_clean", "2"]) == 0  # fmt: skip
    hazy = names_on_disk(tmp_path / "split/val/dehaze/input")
    assert any(name.startswith(b"caf\xe9_") for name in hazy)
    assert make_deblur_testset.main(["--clean_dir", str(photos), "--output",
                                     str(tmp_path / "blur")]) == 0  # fmt: skip
    assert b"caf\xe9.png" in names_on_disk(tmp_path / "blur/input")
    assert "caf\\xe9" in np.load(tmp_path / "blur/kernels.npz").files


def test_a_weights_files_metadata_shows_a_name_that_is_not_utf8_as_logs_do():
    """average_weights.py ship records the reference file's name (``judged_against``): a
    Latin-1 name is stored as ``shown`` writes it, not as a JSON surrogate escape."""
    size = {"n_feats": 8, "n_groups": 1, "n_blocks": 1}
    metadata = safetensors_metadata(size, ["derain"], {"judged_against": CAFE})
    assert json.loads(metadata["judged_against"]) == CAFE_SHOWN
    metadata["judged_against"].encode("utf-8")  # valid UTF-8, as safetensors requires


# ---------------------------------------------------------------------------------------------
# Item 5: long names
# ---------------------------------------------------------------------------------------------


def test_demo_writes_an_output_whose_name_is_legal(tmp_path, tiny_ckpt):
    """A 244-character .jpg failed with "File name too long": not its output name (legal),
    the temporary name of the atomic write, 14 characters longer."""
    stem = "x" * 240
    write(tmp_path / "in" / f"{stem}.jpg", size=16)
    argv = ["--test_path", str(tmp_path / "in"), "--output_path", str(tmp_path / "out"),
            "--ckpt", str(tiny_ckpt), "--device", "cpu", "--compare"]  # fmt: skip
    assert demo.main(demo.build_parser().parse_args(argv)) == 0
    assert (tmp_path / "out" / f"{stem}.png").is_file()
    assert (tmp_path / "out/compare" / f"{stem}.png").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["compare", f"{stem}.png"]


def test_a_checkpoint_at_the_name_limit_is_written(tmp_path):
    path = tmp_path / ("w" * (NAME_MAX - 4) + ".pth")
    save_checkpoint_atomic({"x": torch.zeros(2)}, path)
    assert torch.load(path, weights_only=True)["x"].shape == (2,)


def test_names_made_distinct_stay_within_the_limit(tmp_path):
    """``a.jpg`` + ``a.png`` become ``a_jpg.png`` + ``a_png.png``: 4 bytes longer, past the
    limit for a 250-byte stem; such a name is shortened and stays distinct."""
    stem = "é" * 125 + "a"  # 251 bytes of UTF-8
    names = distinct_names([Path(f"{stem}.jpg"), Path(f"{stem}.png"), Path("short.png")])
    assert names[2] == "short.png"
    assert len(set(names)) == 3
    for name in names[:2]:
        assert len(name.encode()) <= NAME_MAX and name.endswith(".png")
        assert name.startswith("é" * 100)
