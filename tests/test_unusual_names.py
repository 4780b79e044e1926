"""Names near the file system's limit (issue 33 item 5): a name whose final form is legal
(255 bytes) is written, whatever the temporary name of its atomic write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.test_demo import demo
from utils.checkpoint import save_checkpoint_atomic
from utils.image_files import distinct_names
from utils.paths import NAME_MAX


def write(path: Path, size: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


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
