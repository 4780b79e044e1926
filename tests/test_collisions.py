"""Outputs never collide (issue 20, item 6; decision 9): every writer gives two inputs two
outputs, named by ``utils.image_files.distinct_names``, and counts them right."""

from __future__ import annotations

import csv
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import restore_onnx
from tests.stubs import IdentitySession
from utils.image_files import distinct_names, read_image

ROOT = Path(__file__).resolve().parents[1]
# The example: demo.py wrote two of these three to photo_png.png.
TRIO = ("photo.png", "photo.jpg", "photo_png.png")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"airnet_collide_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_images(folder: Path, names: tuple[str, ...], size: int = 16) -> list[Path]:
    """A different random image per name (JPEG where the name says so)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, name in enumerate(names):
        rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
        Image.fromarray(rgb).save(folder / name)
        paths.append(folder / name)
    return paths


def test_distinct_names_keeps_what_tells_inputs_apart():
    assert distinct_names([Path("in") / n for n in TRIO]) == [
        "photo_png_2.png",
        "photo_jpg.png",
        "photo_png.png",  # its plain name: never changed
    ]
    assert distinct_names(["in/a.jpg", "in/a.png", "in/b.tif"]) == [
        "a_jpg.png",
        "a_png.png",
        "b.png",
    ]
    sequences = ["GoPro/seq1/blur/0001.png", "GoPro/seq2/blur/0001.png", "GoPro/seq1/blur/0002.png"]
    assert distinct_names(sequences) == ["seq1_blur_0001.png", "seq2_blur_0001.png", "0002.png"]
    assert distinct_names(["seq1/0001.png", "seq2/0001.png"]) == ["seq1_0001.png", "seq2_0001.png"]
    hazy = ["SOTS/input/0001_0.8_0.2.jpg", "SOTS/input/0001_0.9_0.1.jpg", "SOTS/target/0001.png"]
    assert distinct_names(hazy) == ["0001_0.8_0.2.png", "0001_0.9_0.1.png", "0001.png"]
    assert distinct_names(["a/photo.png", "a/photo.png"], "_restored.png") == [
        "photo_restored.png",
        "photo_2_restored.png",
    ]
    # Alike on the case-insensitive file systems of macOS and Windows.
    assert distinct_names(["x/Photo.png", "x/photo.png"]) == ["Photo.png", "photo_2.png"]
    assert distinct_names(["a/CBSD68", "b/CBSD68", "c/Set.v2"], None) == [
        "a_CBSD68",
        "b_CBSD68",
        "Set.v2",
    ]
    assert distinct_names(["x/a.png", "x/a_2.png", "y/a.png"]) == ["x_a.png", "a_2.png", "y_a.png"]
    assert distinct_names([]) == []


def test_distinct_names_never_repeat_on_random_inputs():
    rng = np.random.default_rng(0)
    stems = ["a", "A", "a_png", "a_jpg", "a_2", "b"]
    exts = [".png", ".jpg", ".PNG"]
    for _ in range(200):
        count = rng.integers(1, 8)
        folders = rng.choice(["x", "y", "x/y"], count)
        files = [
            f"{stem}{ext}"
            for stem, ext in zip(rng.choice(stems, count), rng.choice(exts, count), strict=True)
        ]
        paths = [f"{folder}/{file}" for folder, file in zip(folders, files, strict=True)]
        names = distinct_names(paths)
        assert len({n.casefold() for n in names}) == len(paths), paths
        assert all(n.endswith(".png") and "/" not in n for n in names)


def identity_demo(monkeypatch):
    """demo.py with the network replaced by the identity (naming is what is tested)."""
    demo = load_script("demo")
    monkeypatch.setattr(demo, "load_airnet", lambda *args: None)
    monkeypatch.setattr(demo, "trained_types", lambda *args: None)
    monkeypatch.setattr(demo, "restore", lambda rgb, *args, **kwargs: rgb)
    return demo


def assert_each_input_has_its_output(inputs: list[Path], outputs: dict[str, str], folder: Path):
    """Every input's result (identity network) is in its own file, with its own pixels."""
    assert len({name.casefold() for name in outputs.values()}) == len(inputs)
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(outputs.values())
    for path in inputs:
        with Image.open(folder / outputs[path.name]) as result:
            np.testing.assert_array_equal(np.asarray(result.convert("RGB")), read_image(path))


def test_demo_writes_one_output_per_input_and_reports_it(tmp_path, monkeypatch, caplog):
    inputs = write_images(tmp_path / "in", TRIO)
    demo = identity_demo(monkeypatch)
    argv = ["--test_path", str(tmp_path / "in"), "--output_path", str(tmp_path / "out")]
    caplog.set_level(logging.INFO)
    assert demo.main(demo.parse_args([*argv, "--ckpt", str(inputs[0]), "--compare"])) == 0
    outputs = {"photo.png": "photo_png_2.png", "photo.jpg": "photo_jpg.png"}
    outputs["photo_png.png"] = "photo_png.png"
    assert_each_input_has_its_output(inputs, outputs, tmp_path / "out")
    assert len(list((tmp_path / "out/compare").glob("*.png"))) == 3
    assert "restored 3 of 3" in caplog.text


def test_demo_restores_the_trio_with_a_real_model(tmp_path, tiny_ckpt):
    write_images(tmp_path / "in", TRIO)
    demo = load_script("demo")
    argv = ["--test_path", str(tmp_path / "in"), "--output_path", str(tmp_path / "out")]
    assert demo.main(demo.parse_args([*argv, "--ckpt", str(tiny_ckpt), "--device", "cpu"])) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_restore_onnx_writes_one_output_per_input(tmp_path, monkeypatch, caplog):
    inputs = write_images(tmp_path / "in", TRIO)
    monkeypatch.setattr(restore_onnx, "load_session", lambda *args: IdentitySession())
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    caplog.set_level(logging.INFO)
    assert restore_onnx.main(restore_onnx.parse_args([*argv, "--model", str(inputs[0])])) == 0
    outputs = {"photo.png": "photo_png_2.png", "photo.jpg": "photo_jpg.png"}
    outputs["photo_png.png"] = "photo_png.png"
    assert_each_input_has_its_output(inputs, outputs, tmp_path / "out")
    assert "restored 3 of 3" in caplog.text


def test_evaluation_rows_and_saved_images_never_collide(tmp_path, tiny_ckpt):
    """Two sets of one name in different folders, and a set with photo.png + photo.jpg."""
    for parent in ("old", "new"):
        write_images(tmp_path / "sets" / parent / "Set", ("photo.png", "photo.jpg"))
    write_images(tmp_path / "sets/Rain/input", ("photo.png", "photo.jpg"))
    write_images(tmp_path / "sets/Rain/target", ("photo.png", "photo.jpg"))
    write_images(tmp_path / "sets/SOTS/input", ("0001_0.8_0.2.png", "0001_0.9_0.1.jpg"))
    write_images(tmp_path / "sets/SOTS/target", ("0001.png",))
    evaluation = load_script("test")
    out = tmp_path / "out"
    argv = ["--mode", "3", "--ckpt", str(tiny_ckpt), "--device", "cpu", "--sigmas", "25"]
    argv += ["--denoise_path", str(tmp_path / "sets/old/Set"), str(tmp_path / "sets/new/Set")]
    argv += ["--derain_path", str(tmp_path / "sets/Rain")]
    argv += ["--dehaze_path", str(tmp_path / "sets/SOTS")]
    argv += ["--output_path", str(out), "--save_images"]
    assert evaluation.main(evaluation.parse_args(argv)) == 0
    with open(out / "results.csv", newline="") as f:
        rows = [(r["set"], r["task"], r["image"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows)) == 8
    assert {(s, t) for s, t, _ in rows} == {
        ("old_Set", "denoise_25"),
        ("new_Set", "denoise_25"),
        ("Rain", "derain"),
        ("SOTS", "dehaze"),
    }
    saved = sorted(str(p.relative_to(out / "images")) for p in (out / "images").rglob("*.png"))
    assert saved == [
        "Rain/derain/photo_jpg.png",
        "Rain/derain/photo_png.png",
        "SOTS/dehaze/0001_0.8_0.2.png",
        "SOTS/dehaze/0001_0.9_0.1.png",
        "new_Set/denoise_25/photo_jpg.png",
        "new_Set/denoise_25/photo_png.png",
        "old_Set/denoise_25/photo_jpg.png",
        "old_Set/denoise_25/photo_png.png",
    ]


def test_app_downloads_have_distinct_names(tmp_path, tiny_ckpt):
    app = pytest.importorskip("app")
    inputs = write_images(tmp_path / "in", TRIO)
    files = [str(p) for p in inputs] + [str(inputs[0])]  # the same upload twice too
    _, outputs, messages = app.restore_files(
        files, str(tiny_ckpt), None, "cpu", 0, tmp_path / "out"
    )
    assert [p.name for p in outputs] == [
        "photo_png_2_restored.png",
        "photo_jpg_restored.png",
        "photo_png_restored.png",
        "photo_png_3_restored.png",
    ]
    assert len(list((tmp_path / "out").iterdir())) == 4 and len(messages) == 4
