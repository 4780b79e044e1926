"""Tile sizes (issue 20, item 1): --tile 0 is the whole image; a tile not larger than its
overlap, or a negative tile or overlap, is refused before any model loads, in every entry point
(demo.py, test.py, restore_onnx.py, app.py) and in ``utils.restore.restore``."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import restore_onnx
from net import AirNet
from tests.stubs import IdentitySession
from utils.restore import restore
from utils.tiling import check_tile

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("demo", "test", "restore_onnx")
# (tile, tile_overlap) pairs that are usage errors; the issue's example is (16, 32).
BAD_TILES = [(16, 32), (32, 32), (1, 8), (-64, 32), (-1, 0), (64, -1), (0, -8)]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"airnet_tiles_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


class Counting(nn.Module):
    """Identity that counts its calls: a refused tile must never reach the model."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * self.scale


def test_check_tile():
    assert check_tile(None, 32) is None
    assert check_tile(0, 32) is None
    assert check_tile(0, 0) is None
    assert check_tile(33, 32) == 33
    assert check_tile(1, 0) == 1
    for tile, overlap in BAD_TILES:
        with pytest.raises(ValueError) as error:
            check_tile(tile, overlap)
        shown = str(tile) if overlap >= 0 else str(overlap)
        assert shown in str(error.value), (tile, overlap, str(error.value))


def test_restore_treats_tile_0_as_whole_image_and_refuses_bad_tiles():
    rgb = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16).eval()
    report: dict = {}
    whole = restore(rgb, model, tile=0, report=report)
    assert report == {"tile": None, "tile_reason": None}
    np.testing.assert_array_equal(whole, restore(rgb, model))
    counting = Counting()
    for tile, overlap in BAD_TILES:
        with pytest.raises(ValueError, match="tile"):
            restore(rgb, counting, tile=tile, tile_overlap=overlap)
    assert counting.calls == 0


def test_restore_onnx_array_treats_tile_0_as_whole_image_and_refuses_bad_tiles():
    rgb = np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    report: dict = {}
    out = restore_onnx.restore_array(IdentitySession(), rgb, 0, report=report)
    np.testing.assert_array_equal(out, rgb)
    assert report == {"tile": None, "tile_reason": None}
    for tile, overlap in BAD_TILES:
        with pytest.raises(ValueError, match="tile"):
            restore_onnx.restore_array(None, rgb, tile, overlap)  # refused before the session


@pytest.mark.parametrize("name", SCRIPTS)
def test_parsers_refuse_bad_tiles_and_read_0_as_no_tile(name, capsys):
    script = load_script(name)
    required = ["--input", "x.png"] if name == "restore_onnx" else []
    assert script.parse_args([*required, "--tile", "0"]).tile is None
    assert script.parse_args([*required, "--tile", "0", "--tile_overlap", "0"]).tile is None
    assert script.parse_args(required).tile is None
    assert script.parse_args([*required, "--tile", "40", "--tile_overlap", "8"]).tile == 40
    for tile, overlap in BAD_TILES:
        argv = [*required, "--tile", str(tile), "--tile_overlap", str(overlap)]
        with pytest.raises(SystemExit) as exit_info:
            script.parse_args(argv)
        assert exit_info.value.code == 2
        assert "--tile" in capsys.readouterr().err


@pytest.mark.parametrize("name", SCRIPTS)
def test_main_without_parse_args_refuses_bad_tiles_as_a_setup_error(name, tiny_ckpt, photo, caplog):
    script = load_script(name)
    argv = {
        "demo": ["--test_path", str(photo), "--ckpt", str(tiny_ckpt), "--device", "cpu"],
        "test": ["--mode", "0", "--denoise_path", str(photo.parent), "--ckpt", str(tiny_ckpt)],
        "restore_onnx": ["--input", str(photo), "--model", str(tiny_ckpt)],
    }[name]
    args = script.build_parser().parse_args([*argv, "--tile", "16"])
    assert script.main(args) == 2
    assert "argument --tile/--tile_overlap: tile (16)" in caplog.text


def test_scripts_exit_2_on_the_issues_example_before_the_model_loads(tmp_path, tiny_ckpt, photo):
    """`--tile 16` with the default overlap of 32, as a user runs each script."""
    commands = {
        "demo.py": ["--test_path", str(photo), "--output_path", str(tmp_path / "demo")],
        "test.py": ["--mode", "0", "--denoise_path", str(photo.parent),
                    "--output_path", str(tmp_path / "test")],
        "restore_onnx.py": ["--input", str(photo), "--output", str(tmp_path / "onnx"),
                            "--model", str(tiny_ckpt)],
    }  # fmt: skip
    for script, argv in commands.items():
        if script != "restore_onnx.py":
            argv += ["--ckpt", str(tiny_ckpt), "--device", "cpu"]
        result = subprocess.run(
            [sys.executable, script, *argv, "--tile", "16"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 2, (script, result.stderr)
        lines = result.stderr.strip().splitlines()  # decision 10: one line, no usage block
        assert len(lines) == 1 and "tile_overlap (32)" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
        assert not any(tmp_path.iterdir()), script  # nothing loaded, nothing written


def test_demo_tile_0_is_exactly_no_tile(tmp_path, tiny_ckpt, photo):
    demo = load_script("demo")
    base = ["--test_path", str(photo), "--ckpt", str(tiny_ckpt), "--device", "cpu"]
    for out, extra in (("none", []), ("zero", ["--tile", "0"])):
        args = demo.parse_args([*base, "--output_path", str(tmp_path / out), *extra])
        assert demo.main(args) == 0
    none, zero = (np.asarray(Image.open(tmp_path / d / "photo.png")) for d in ("none", "zero"))
    np.testing.assert_array_equal(zero, none)


def test_evaluation_tile_0_is_exactly_no_tile(tmp_path, tiny_ckpt, photo):
    evaluation = load_script("test")
    base = ["--mode", "0", "--denoise_path", str(photo.parent), "--ckpt", str(tiny_ckpt)]
    base += ["--device", "cpu", "--sigmas", "25"]
    rows = {}
    for out, extra in (("none", []), ("zero", ["--tile", "0"])):
        args = evaluation.parse_args([*base, "--output_path", str(tmp_path / out), *extra])
        assert evaluation.main(args) == 0
        with open(tmp_path / out / "results.csv", newline="") as f:
            rows[out] = [(r["psnr"], r["tile"], r["tile_reason"]) for r in csv.DictReader(f)]
    assert rows["zero"] == rows["none"]
    assert rows["zero"][0][1:] == ("", "")


def test_app_tile_size_reads_0_as_whole_image_and_explains_bad_values(tiny_ckpt, photo):
    app = pytest.importorskip("app")
    assert app.tile_size(0) is None
    assert app.tile_size(0.0) is None
    assert app.tile_size("0") is None
    assert app.tile_size(None) is None
    assert app.tile_size(256) == 256
    assert app.tile_size(256.0) == 256
    for value, expected in [(16, "larger than tile_overlap"), (-64, "positive"),
                            (100.5, "whole number"), ("big", "whole number"),
                            (float("nan"), "whole number")]:  # fmt: skip
        with pytest.raises(app.AppError, match=expected):
            app.tile_size(value)
    # Refused before the weights are looked at: the choice names no file at all.
    with pytest.raises(app.AppError, match="Tile size 16"):
        app.restore_files([str(photo)], "no/such.pth", None, "cpu", 16)
    pairs, _, messages = app.restore_files([str(photo)], str(tiny_ckpt), None, "cpu", 0)
    assert "tiles" not in messages[0]
    assert pairs[0][1].shape == (40, 48, 3)
