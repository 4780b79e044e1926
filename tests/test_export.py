"""export.py and restore_onnx.py: ONNX Runtime equals PyTorch, failures are loud, no torch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

import export
import restore_onnx
from net import AirNet
from utils.checkpoint import save_safetensors_atomic
from utils.restore import restore

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n_feats", "8", "--n_groups", "1", "--n_blocks", "1"]
SIZES = ["--sizes", "32x32", "21x37", "40x24"]  # square, not a multiple of 16, non-square


def run_export(*argv: str) -> tuple[int, str]:
    """export.main in this process; returns (exit code, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = export.main(export.build_parser().parse_args([*TINY, *SIZES, *argv]))
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[int, tuple[Path, int, str]]:
    """Opset 19 and 16 files of the seed-0 tiny model, with export.main's code and output."""
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    for opset in (19, 16):
        path = folder / f"tiny{opset}.onnx"
        code, printed = run_export("--output", str(path), "--opset", str(opset))
        files[opset] = (path, code, printed)
    return files


@pytest.fixture(scope="module")
def tiny_model() -> AirNet:
    torch.manual_seed(0)  # export.build_model's seed
    return AirNet(n_feats=8, n_groups=1, n_blocks=1).eval()


def operators(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("opset", [19, 16])
def test_export_writes_a_checked_graph_with_dynamic_size(exported, opset):
    path, code, printed = exported[opset]
    assert code == 0
    assert printed.count(" ok") == 3 and "FAILED" not in printed
    model = onnx.load(str(path))
    assert model.opset_import[0].version == opset
    (graph_input,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3] and all(isinstance(d, str) for d in dims[2:])
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["n_feats"] == "8" and metadata["opset"] == str(opset)
    if opset == 19:
        assert "DeformConv" in operators(path)
    else:
        assert "DeformConv" not in operators(path) and "GridSample" in operators(path)


def test_ir_version_fits_the_installed_runtime(exported):
    limit = export.runtime_max_ir_version()
    assert isinstance(limit, int) and limit >= 9  # opset 19 needs IR 9
    assert onnx.load(str(exported[19][0])).ir_version <= limit
    model = onnx.load(str(exported[19][0]))
    model.ir_version = limit + 1
    with pytest.raises(Exception, match="IR version"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_check_fails_loudly_against_other_weights(exported):
    """The seed-0 file checked against seed-1 weights: the command prints FAILED and exits 1."""
    command = [sys.executable, "export.py", *TINY, *SIZES, "--seed", "1"]
    command += ["--check", str(exported[19][0])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stdout.count("FAILED") == 3
    assert "CHECK FAILED" in result.stderr


def test_export_reads_safetensors_and_records_the_trained_types(tiny_model, tmp_path):
    ckpt = tmp_path / "weights.safetensors"
    save_safetensors_atomic(tiny_model.state_dict(), ckpt, tiny_model.config, de_type=["derain"])
    code, _ = run_export(
        "--ckpt", str(ckpt), "--output", str(tmp_path / "w.onnx"), "--sizes", "21x37"
    )
    assert code == 0
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "w.onnx")).metadata_props}
    assert json.loads(metadata["de_type"]) == ["derain"] and metadata["n_feats"] == "8"


def test_bad_size_and_missing_file_are_setup_errors(tmp_path):
    assert export.main(export.build_parser().parse_args([*TINY, "--sizes", "12"])) == 2
    missing = ["--check", str(tmp_path / "none.onnx")]
    assert export.main(export.build_parser().parse_args([*TINY, *missing])) == 2


@pytest.mark.parametrize("opset", [19, 16])
def test_restore_onnx_equals_the_pytorch_path(exported, tiny_model, opset):
    """Same uint8 result as utils.restore, whole and in tiles (one tiling code for both)."""
    session = restore_onnx.load_session(exported[opset][0], threads=1)
    assert session.get_providers()[0] in restore_onnx.PROVIDERS  # not the remote Azure one
    rgb = np.random.default_rng(0).integers(0, 256, (45, 38, 3), dtype=np.uint8)
    for tile in (None, 32):
        report = {}
        ours = restore_onnx.restore_array(session, rgb, tile, tile_overlap=8, report=report)
        theirs = restore(rgb, tiny_model, tile, tile_overlap=8)
        assert ours.shape == rgb.shape and ours.dtype == np.uint8
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
        assert report["tile"] == tile and report["tile_reason"] == ("asked" if tile else None)


def test_restore_onnx_folder_with_a_bad_file(exported, tmp_path, caplog):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)).save(src / "odd.jpg")
    rgba = rng.integers(0, 256, (16, 20, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    (src / "broken.png").write_bytes(b"not an image")
    (src / "notes.txt").write_text("ignored")
    argv = ["--model", str(exported[19][0]), "--input", str(src), "--output", str(tmp_path / "out")]
    code = restore_onnx.main(restore_onnx.build_parser().parse_args(argv))
    assert code == 1
    assert "broken.png" in caplog.text
    with Image.open(tmp_path / "out/odd.png") as result:
        assert result.size == (31, 23) and result.mode == "RGB"
    with Image.open(tmp_path / "out/alpha.png") as result:
        assert result.mode == "RGBA"
        assert np.array_equal(np.asarray(result)[..., 3], rgba[..., 3])
    assert not (tmp_path / "out/broken.png").exists()


def test_restore_onnx_setup_errors(exported, tmp_path):
    parse = restore_onnx.build_parser().parse_args
    assert restore_onnx.main(parse(["--input", str(tmp_path / "none")])) == 2
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    for model in ("none.onnx", "bad.onnx"):
        argv = ["--model", str(tmp_path / model), "--input", str(tmp_path / "a.png")]
        assert restore_onnx.main(parse(argv)) == 2


def test_restore_onnx_runs_without_torch(exported, tmp_path):
    """In a process where importing torch fails, restore_onnx still restores a photo."""
    Image.fromarray(np.full((20, 26, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import restore_onnx\n"
        "args = restore_onnx.build_parser().parse_args(sys.argv[1:])\n"
        "code = restore_onnx.main(args)\n"
        "assert sys.modules['torch'] is None, 'torch was imported'\n"
        "sys.exit(code)\n"
    )
    argv = ["--model", str(exported[16][0]), "--input", str(tmp_path / "photo.png")]
    argv += ["--output", str(tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out/photo.png") as restored:
        assert restored.size == (26, 20)
