"""test.py end to end on tiny generated test sets with a tiny random-weight checkpoint."""

import csv
import importlib.util
import json
import logging
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utils import restore as restore_module
from utils.degradations import add_gaussian_noise, crop_to_multiple
from utils.eval_dataset import (
    find_deblur_sets,
    find_dehaze_sets,
    find_denoise_sets,
    find_derain_sets,
    find_lowlight_sets,
)
from utils.fingerprints import fingerprint_folder
from utils.metrics import psnr
from utils.pairing import LayoutError

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import a top-level script by path (``test`` would clash with the standard library)."""
    spec = importlib.util.spec_from_file_location(f"airnet_{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


test_script = load_script("test")


def write_image(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return image


@pytest.fixture
def sets(tmp_path) -> Path:
    """denoise/{SetA (2 images, odd sizes), SetB}, derain/Rain/, dehaze/SOTS/ under tmp_path."""
    write_image(tmp_path / "denoise/SetA/a.png", 37, 41, 1)
    write_image(tmp_path / "denoise/SetA/b.png", 33, 34, 2)
    write_image(tmp_path / "denoise/SetB/c.png", 32, 32, 3)
    for name, seed in [("x.png", 4), ("y.png", 5)]:
        write_image(tmp_path / "derain/Rain/input" / name, 35, 36, seed)
        write_image(tmp_path / "derain/Rain/target" / name, 35, 36, seed + 10)
    write_image(tmp_path / "dehaze/SOTS/input/0001_0.8_0.2.jpg", 34, 40, 6)
    write_image(tmp_path / "dehaze/SOTS/target/0001.png", 34, 40, 7)
    return tmp_path


def run(tmp_path: Path, ckpt: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    argv = [
        "--ckpt", str(ckpt),
        "--denoise_path", str(tmp_path / "denoise"),
        "--derain_path", str(tmp_path / "derain"),
        "--dehaze_path", str(tmp_path / "dehaze"),
        "--output_path", str(out),
        "--device", "cpu",
        *extra,
    ]  # fmt: skip
    return test_script.main(test_script.build_parser().parse_args(argv)), out


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("mode", "tasks"),
    [
        (0, {("SetA", "denoise_15"), ("SetA", "denoise_25"), ("SetA", "denoise_50"),
             ("SetB", "denoise_15"), ("SetB", "denoise_25"), ("SetB", "denoise_50")}),
        (1, {("Rain", "derain")}),
        (2, {("SOTS", "dehaze")}),
        (3, {("SetA", "denoise_15"), ("SetA", "denoise_25"), ("SetA", "denoise_50"),
             ("SetB", "denoise_15"), ("SetB", "denoise_25"), ("SetB", "denoise_50"),
             ("Rain", "derain"), ("SOTS", "dehaze")}),
    ],
)  # fmt: skip
def test_modes_end_to_end(sets, tiny_ckpt, capsys, mode, tasks):
    code, out = run(sets, tiny_ckpt, "--mode", str(mode), "--save_images")
    assert code == 0
    summary = read_summary(out)
    assert {(r["set"], r["task"]) for r in summary["results"]} == tasks
    assert summary["skipped"] == []
    rows = read_rows(out)
    images = {"SetA": 2, "SetB": 1, "Rain": 2, "SOTS": 1}
    assert len(rows) == sum(images[s] for s, _ in tasks)
    for result in summary["results"]:
        assert result["images"] == images[result["set"]]
        assert np.isfinite(result["psnr"]) and -1 <= result["ssim"] <= 1
    table = capsys.readouterr().out
    assert "PSNR" in table and all(task in table for _, task in tasks)
    saved = list((out / "images").rglob("*.png"))
    assert len(saved) == len(rows)


def test_crop_to_16_by_default_and_full_size_on_request(sets, tiny_ckpt):
    _, out = run(sets, tiny_ckpt, "--mode", "0", "--sigmas", "25")
    sizes = {r["image"]: (int(r["height"]), int(r["width"])) for r in read_rows(out)}
    assert sizes == {"a.png": (32, 32), "b.png": (32, 32), "c.png": (32, 32)}
    _, out = run(sets, tiny_ckpt, "--mode", "0", "--sigmas", "25", "--full_size")
    sizes = {r["image"]: (int(r["height"]), int(r["width"])) for r in read_rows(out)}
    assert sizes == {"a.png": (37, 41), "b.png": (33, 34), "c.png": (32, 32)}


def test_noisy_input_is_cropped_clean_plus_seeded_noise(tmp_path):
    clean = write_image(tmp_path / "set/a.png", 37, 41, 1)
    pair = find_denoise_sets([tmp_path / "set"])[0].pairs[0]
    args = test_script.build_parser().parse_args(["--seed", "0"])
    noisy, target = test_script.load_pair(pair, 25, args)
    cropped = crop_to_multiple(clean, 16)
    np.testing.assert_array_equal(target, cropped)
    rng = np.random.default_rng([0, zlib.crc32(b"a.png"), 25])
    np.testing.assert_array_equal(noisy, add_gaussian_noise(cropped, 25, rng))
    again, _ = test_script.load_pair(pair, 25, args)
    np.testing.assert_array_equal(noisy, again)
    other_sigma, _ = test_script.load_pair(pair, 15, args)
    assert not np.array_equal(noisy.astype(int) - cropped, (other_sigma.astype(int) - cropped))


@pytest.fixture
def identity_model(monkeypatch):
    """Score the degraded input itself, so the scores measure the test noise exactly."""

    def identity(x, *args, report=None, **kwargs):
        if report is not None:
            report.update(tile=None, tile_reason=None)
        return x.cpu()

    monkeypatch.setattr(test_script, "restore_tensor", identity)


def test_noise_level_matches_sigma(tmp_path, tiny_ckpt, identity_model):
    gray = np.full((64, 64, 3), 128, dtype=np.uint8)  # far from 0 and 255: no clipping
    Image.fromarray(gray).save(tmp_path / "gray.png")
    argv = ["--mode", "0", "--ckpt", str(tiny_ckpt), "--denoise_path", str(tmp_path)]
    argv += ["--output_path", str(tmp_path / "out"), "--device", "cpu"]
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    scores = {r["task"]: float(r["psnr"]) for r in read_rows(tmp_path / "out")}
    for sigma in (15, 25, 50):
        # MSE = sigma^2 + truncation (mean 0.5, variance 1/12) -> 20 log10(255 / sigma).
        expected = 10 * np.log10(255**2 / (sigma**2 + 0.25 + 1 / 12))
        assert scores[f"denoise_{sigma}"] == pytest.approx(expected, abs=0.15)


def test_noise_does_not_depend_on_other_images(sets, tiny_ckpt, tmp_path_factory, identity_model):
    """An image scores the same alone and among others."""
    _, out = run(sets, tiny_ckpt, "--mode", "0")
    together = {(r["task"], r["image"]): r["psnr"] for r in read_rows(out) if r["set"] == "SetA"}
    alone_root = tmp_path_factory.mktemp("alone")
    shutil.copy(sets / "denoise/SetA/b.png", alone_root / "b.png")
    argv = ["--mode", "0", "--ckpt", str(tiny_ckpt), "--denoise_path", str(alone_root)]
    argv += ["--output_path", str(alone_root / "out"), "--device", "cpu"]
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    alone = {(r["task"], r["image"]): r["psnr"] for r in read_rows(alone_root / "out")}
    assert alone == {key: value for key, value in together.items() if key[1] == "b.png"}


def test_y_channel_option(sets, tiny_ckpt):
    _, out = run(sets, tiny_ckpt, "--mode", "1")
    rgb = [float(r["psnr"]) for r in read_rows(out)]
    _, out_y = run(sets, tiny_ckpt, "--mode", "1", "--y_channel")
    assert read_summary(out_y)["protocol"]["y_channel"]
    assert [float(r["psnr"]) for r in read_rows(out_y)] != rgb


def test_bad_files_are_reported_skipped_and_fail_the_exit_code(sets, tiny_ckpt, caplog):
    (sets / "denoise/SetA/broken.png").write_bytes(b"not a png")
    (sets / "derain/Rain/target/y.png").unlink()
    write_image(sets / "dehaze/SOTS/input/0001_0.9_0.1.jpg", 20, 20, 8)  # size differs
    write_image(sets / "denoise/SetA/tiny.png", 10, 12, 9)  # nothing left after the crop
    code, out = run(sets, tiny_ckpt, "--mode", "3")
    assert code == 1
    summary = read_summary(out)
    skipped = {Path(s["path"]).name for s in summary["skipped"]}
    assert skipped == {"broken.png", "y.png", "0001_0.9_0.1.jpg", "tiny.png"}
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    for name in skipped:
        assert name in errors
    reports = [r for r in caplog.records if "broken.png" in r.getMessage()]
    assert len(reports) == 1  # once, not once per sigma
    images = {(r["set"], r["task"]): r["images"] for r in summary["results"]}
    assert images[("SetA", "denoise_15")] == 2
    assert images[("Rain", "derain")] == 1
    assert images[("SOTS", "dehaze")] == 1


def test_missing_checkpoint_is_a_clear_error(sets, caplog):
    code, _ = run(sets, sets / "nowhere.pth", "--mode", "1")
    assert code == 2
    assert "nowhere.pth" in caplog.text and "ckpt/README.md" in caplog.text


def test_default_checkpoint_follows_the_mode():
    parser = test_script.build_parser()
    assert parser.parse_args([]).ckpt is None
    assert test_script.DEFAULT_CKPT == {
        0: "ckpt/Denoise.pth",
        1: "ckpt/Derain.pth",
        2: "ckpt/Dehaze.pth",
        3: "ckpt/All.pth",
        4: "ckpt/All.pth",  # no official five-task file: the three-task one, types logged
    }


def test_derain_pairs_rain100l_original_names(tmp_path):
    write_image(tmp_path / "R/input/rain-001.png", 8, 8, 0)
    write_image(tmp_path / "R/target/norain-001.png", 8, 8, 1)
    write_image(tmp_path / "R/input/002.png", 8, 8, 2)
    write_image(tmp_path / "R/target/002.png", 8, 8, 3)
    (test_set,) = find_derain_sets([tmp_path / "R"])
    assert [(p.degraded.name, p.target.name) for p in test_set.pairs] == [
        ("002.png", "002.png"),
        ("rain-001.png", "norain-001.png"),
    ]


@pytest.mark.parametrize(("inputs", "targets"), [("input", "target"), ("hazy", "gt")])
def test_dehaze_pairs_reside_names(tmp_path, inputs, targets):
    write_image(tmp_path / "SOTS" / inputs / "0001_0.8_0.2.jpg", 8, 8, 0)
    write_image(tmp_path / "SOTS" / inputs / "0002_1_0.04.png", 8, 8, 1)
    write_image(tmp_path / "SOTS" / inputs / "0003_0.9_0.2.png", 8, 8, 1)
    write_image(tmp_path / "SOTS" / targets / "0001.png", 8, 8, 2)
    write_image(tmp_path / "SOTS" / targets / "0002.jpg", 8, 8, 3)
    (test_set,) = find_dehaze_sets([tmp_path])  # a folder of sets
    assert test_set.name == "SOTS"
    assert [(p.degraded.name, p.target.name) for p in test_set.pairs] == [
        ("0001_0.8_0.2.jpg", "0001.png"),
        ("0002_1_0.04.png", "0002.jpg"),
    ]
    assert [path.name for path, _ in test_set.problems] == ["0003_0.9_0.2.png"]


def test_gopro_test_folder_is_one_set_whose_names_keep_the_sequence(tmp_path):
    for sequence in ("GOPR0384_11_00", "GOPR0410_11_00"):
        write_image(tmp_path / "GoPro" / sequence / "blur/000001.png", 8, 8, 0)
        write_image(tmp_path / "GoPro" / sequence / "blur_gamma/000001.png", 8, 8, 0)
        write_image(tmp_path / "GoPro" / sequence / "sharp/000001.png", 8, 8, 1)
    (gopro,) = find_deblur_sets([tmp_path / "GoPro"])
    assert gopro.name == "GoPro" and gopro.problems == []
    names = [p.name for p in gopro.pairs]
    assert names == ["GOPR0384_11_00/000001.png", "GOPR0410_11_00/000001.png"]
    write_image(tmp_path / "synth/input/a.png", 8, 8, 2)
    write_image(tmp_path / "synth/target/a.png", 8, 8, 3)
    found = find_deblur_sets([tmp_path])  # a folder of sets
    assert [(s.name, len(s.pairs)) for s in found] == [("GoPro", 2), ("synth", 1)]


def test_lowlight_sets_and_the_lol_root_means_eval15(tmp_path):
    write_image(tmp_path / "LOL/our485/low/2.png", 8, 8, 0)
    write_image(tmp_path / "LOL/our485/high/2.png", 8, 8, 1)
    write_image(tmp_path / "LOL/eval15/low/1.png", 8, 8, 2)
    write_image(tmp_path / "LOL/eval15/high/1.png", 8, 8, 3)
    write_image(tmp_path / "LOL/eval15/low/22.png", 8, 8, 4)
    (lol,) = find_lowlight_sets([tmp_path / "LOL"])
    assert [p.target.parent.parent.name for p in lol.pairs] == ["eval15"]
    assert [path.name for path, _ in lol.problems] == ["22.png"]
    (eval15,) = find_lowlight_sets([tmp_path / "LOL/eval15"])
    assert eval15.name == "eval15" and len(eval15.pairs) == 1
    with pytest.raises(LayoutError, match="validation takes a held-out folder"):
        find_lowlight_sets([tmp_path / "LOL"], split="val")


def test_denoise_sets_are_found_and_reported_separately(sets):
    found = find_denoise_sets([sets / "denoise", sets / "denoise/SetB"])
    assert [(s.name, len(s.pairs)) for s in found] == [("SetA", 2), ("SetB", 1), ("SetB", 1)]


def test_bundled_sample_data_runs(tiny_ckpt, tmp_path):
    """The smoke command of docs/evaluation.md on data/test/ (the repository's own tiny samples)."""
    argv = ["--mode", "3", "--ckpt", str(tiny_ckpt), "--output_path", str(tmp_path)]
    argv += ["--device", "cpu", "--sigmas", "25"]
    argv += ["--denoise_path", str(ROOT / "data/test/denoise")]
    argv += ["--derain_path", str(ROOT / "data/test/derain")]
    argv += ["--dehaze_path", str(ROOT / "data/test/dehaze")]
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    summary = read_summary(tmp_path)
    assert {r["set"] for r in summary["results"]} == {"CBSD68", "Rain100L", "SOTS_outdoor"}
    # crops of benchmark images: no benchmark's copy, and they say so
    copies = {copy["set"]: copy["description"] for copy in summary["copies"]}
    assert copies == {
        "CBSD68": "no known benchmark (3 images)",
        "Rain100L": "no known benchmark (6 images)",
        "SOTS_outdoor": "no known benchmark (2 images)",
    }


def test_the_copy_scored_is_named_by_content(tmp_path, tiny_ckpt, monkeypatch, capsys):
    """test.py says which copy of a benchmark it scored (issue 30): identical to a
    fingerprint, or how it differs (images named), or no known benchmark; never refused."""
    for seed in (1, 2, 3):
        write_image(tmp_path / "bench/Set" / f"{seed}.png", 32, 32, seed)
    benchmark = fingerprint_folder(tmp_path / "bench/Set", "Bench", "made here")
    monkeypatch.setattr(test_script, "load_benchmarks", lambda: [benchmark])
    copy = tmp_path / "copy/denoise/Set"
    shutil.copytree(tmp_path / "bench/Set", copy)
    argv = ["--mode", "0", "--ckpt", str(tiny_ckpt), "--device", "cpu", "--sigmas", "25"]
    out = tmp_path / "out"
    argv += ["--denoise_path", str(tmp_path / "copy/denoise"), "--output_path", str(out)]
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    (record,) = read_summary(out)["copies"]
    assert record["set"] == "Set" and record["identical"] and record["folder"] == str(copy)
    assert record["description"] == "identical to the fingerprint of Bench (3 images)"

    (copy / "3.png").unlink()  # missing
    flipped = np.asarray(Image.open(copy / "2.png"))[:, ::-1]
    (copy / "2.png").unlink()
    Image.fromarray(flipped).save(copy / "2_flipped.png")  # changed
    write_image(copy / "4.png", 32, 32, 4)  # extra
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    (record,) = read_summary(out)["copies"]
    assert not record["identical"] and (record["present"], record["total"]) == (2, 3)
    assert record["missing"] == ["3.png"] and record["extra"] == ["4.png"]
    assert record["changed"] == [{"file": "2_flipped.png", "image": "2.png", "distance": 0}]
    assert {r["images"] for r in read_summary(out)["results"]} == {3}  # scored all the same
    printed = capsys.readouterr().out
    assert "copy scored as Set: Bench, differs: 2 of 3 present; missing 1: 3.png; " in printed


def test_bf16_precision_scores_close_to_fp32(tiny_ckpt, tmp_path):
    argv = ["--mode", "0", "--ckpt", str(tiny_ckpt), "--device", "cpu", "--sigmas", "25"]
    argv += ["--denoise_path", str(ROOT / "data/test/denoise/CBSD68")]
    psnrs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        args = [*argv, "--output_path", str(out), "--precision", precision]
        assert test_script.main(test_script.build_parser().parse_args(args)) == 0
        summary = read_summary(out)
        assert summary["protocol"]["precision"] == precision
        psnrs[precision] = summary["results"][0]["psnr"]
    assert psnrs["bf16"] != psnrs["fp32"]  # autocast did run
    assert abs(psnrs["bf16"] - psnrs["fp32"]) < 0.1


def test_input_scores_and_gain_are_reported(sets, tiny_ckpt, capsys):
    code, out = run(sets, tiny_ckpt, "--mode", "1")
    assert code == 0
    rows = read_rows(out)
    for row in rows:  # the derain input is scored against its own target
        stem = row["image"]
        degraded = np.asarray(Image.open(sets / "derain/Rain/input" / stem))
        target = np.asarray(Image.open(sets / "derain/Rain/target" / stem))
        crop_d, crop_t = crop_to_multiple(degraded, 16), crop_to_multiple(target, 16)
        expected = psnr(crop_d, crop_t)
        assert float(row["input_psnr"]) == pytest.approx(expected, abs=1e-3)
        gain = float(row["psnr"]) - float(row["input_psnr"])
        assert float(row["gain_psnr"]) == pytest.approx(gain, abs=2e-4)
    result = read_summary(out)["results"][0]
    assert result["gain_psnr"] == pytest.approx(result["psnr"] - result["input_psnr"])
    assert {"input_ssim", "gain_ssim"} <= result.keys()
    printed = capsys.readouterr().out
    assert "in PSNR" in printed and "gain dB" in printed


def test_outputs_appear_only_complete(sets, tiny_ckpt, monkeypatch):
    """A run killed mid-way leaves results.csv.partial, never a results.csv that looks done."""
    calls = []
    evaluate_set = test_script.evaluate_set

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate_set(*args, **kwargs)

    monkeypatch.setattr(test_script, "evaluate_set", dying)
    with pytest.raises(KeyboardInterrupt):
        run(sets, tiny_ckpt, "--mode", "3")
    out = sets / "out"
    assert not (out / "results.csv").exists() and not (out / "summary.json").exists()
    assert (out / "results.csv.partial").is_file()
    monkeypatch.setattr(test_script, "evaluate_set", evaluate_set)
    assert run(sets, tiny_ckpt, "--mode", "3")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "summary.json"]


def test_unwritable_output_is_one_clear_line(sets, tiny_ckpt, monkeypatch, caplog):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(test_script.os, "replace", full)
    code, out = run(sets, tiny_ckpt, "--mode", "1")
    assert code == 2
    assert f"cannot write the results: {out / 'results.csv'}: cannot write (No space left on " in (
        caplog.text
    )


def test_whole_images_unless_asked_and_tiles_recorded(sets, tiny_ckpt, monkeypatch):
    """Low free memory never tiles a benchmark silently; --tile and OOM tiles are recorded."""
    monkeypatch.setattr(restore_module, "free_memory_bytes", lambda device: 1)
    code, out = run(sets, tiny_ckpt, "--mode", "1")
    assert code == 0
    assert [row["tile"] for row in read_rows(out)] == ["", ""]
    code, out = run(sets, tiny_ckpt, "--mode", "1", "--tile", "24", "--tile_overlap", "4")
    assert [(row["tile"], row["tile_reason"]) for row in read_rows(out)] == [("24", "asked")] * 2
    assert read_summary(out)["protocol"]["tile"] == 24

    forward = restore_module._forward

    def out_of_memory_on_whole_images(x, model, precision="fp32"):
        if max(x.shape[-2:]) > 88:  # the whole 80x96 image; tiles of 80 fit
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(x, model, precision)

    monkeypatch.setattr(restore_module, "_forward", out_of_memory_on_whole_images)
    for name in ("x.png", "y.png"):  # tiles are at least 80 pixels (overlap 32): larger images
        write_image(sets / "derain/Rain/input" / name, 80, 96, 1)
        write_image(sets / "derain/Rain/target" / name, 80, 96, 2)
    code, out = run(sets, tiny_ckpt, "--mode", "1")
    rows = read_rows(out)
    assert all(row["tile_reason"] == "out_of_memory" and row["tile"] for row in rows)
    assert read_summary(out)["results"][0]["tiled_after_out_of_memory"] == 2


def test_in_a_file_each_set_is_one_plain_line_not_a_bar(sets, tiny_ckpt, capsys, caplog):
    """stderr is not a terminal under pytest (as in ``test.py ... > test.log 2>&1``): no bar
    redraws, and one log line per set and task with its scores."""
    caplog.set_level(logging.INFO)
    code, _ = run(sets, tiny_ckpt, "--mode", "3", "--sigmas", "25")
    assert code == 0
    assert "\r" not in capsys.readouterr().err
    lines = [r.getMessage() for r in caplog.records if " images, PSNR " in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == [
        "SetA denoise_25",
        "SetB denoise_25",
        "Rain derain",
        "SOTS dehaze",
    ]
    assert lines[0].startswith("SetA denoise_25: 2 images, PSNR ") and "(input " in lines[0]
