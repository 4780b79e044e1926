"""The weights shipped in ckpt/: how they are chosen by default, and that they restore."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import demo
import hubconf
import test as test_script
from net import AirNet, load_airnet
from utils import checkpoint
from utils.checkpoint import read_weights, trained_types
from utils.degradations import add_gaussian_noise, crop_to_multiple, noise_rng
from utils.image_io import read_image
from utils.metrics import psnr
from utils.restore import restore

REPO = Path(__file__).resolve().parents[1]

# (entry point, its logger, argv without --ckpt, the official file it prefers, how it logs it)
ENTRY_POINTS = {
    "demo": (demo, "demo", ["--test_path", "in"], "All.pth", "checkpoint: {} ("),
    "test": (test_script, "test", ["--mode", "1", "--derain_path", "in"], "Derain.pth",
             "checkpoint {} ("),
}  # fmt: skip


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_default_weights_official_first_then_shipped(entry, tmp_path, monkeypatch, caplog):
    """demo.py and test.py without --ckpt: the official file of ckpt/ when present, else the
    shipped file; each says which."""
    module, logger, argv, official, logged = ENTRY_POINTS[entry]
    caplog.set_level(logging.INFO, logger=logger)
    torch.manual_seed(0)
    tiny = tmp_path / "tiny.pth"
    size = {"n_feats": 8, "n_groups": 1, "n_blocks": 1}
    torch.save({"model": AirNet(**size, queue_size=16).state_dict(), "args": size}, tiny)
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    if entry == "demo":
        Image.fromarray(image).save(tmp_path / "in.png")
        argv = ["--test_path", "in.png"]
    else:
        for side in ("input", "target"):
            (tmp_path / "in/Rain" / side).mkdir(parents=True)
            Image.fromarray(image).save(tmp_path / "in/Rain" / side / "x.png")
    argv = [*argv, "--output_path", "out", "--device", "cpu"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checkpoint, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(checkpoint, "SHIPPED_WEIGHTS", tiny)
    assert module.main(module.build_parser().parse_args(argv)) == 0
    # test.py --mode 1 without a derain file of ours in ckpt/: the all-in-one file, said so
    assert logged.format(tiny) in caplog.text
    assert "weights trained by this repository" in caplog.text
    (tmp_path / "ckpt").mkdir()
    shutil.copy(tiny, tmp_path / "ckpt" / official)
    caplog.clear()
    assert module.main(module.build_parser().parse_args(argv)) == 0
    assert logged.format(f"ckpt/{official}") + "official weights)" in caplog.text


def test_hubconf_pretrained_loads_the_shipped_file(tmp_path, monkeypatch):
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    path = tmp_path / "shipped.pth"
    torch.save({"model": model.state_dict(), "args": model.config}, path)
    monkeypatch.setattr(checkpoint, "SHIPPED_WEIGHTS", path)
    loaded = hubconf.airnet(pretrained=True)
    assert loaded.config == model.config and not loaded.training
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    assert hubconf.airnet().config == AirNet().config  # pretrained=False: random, paper size


def test_default_checkpoint_prefers_the_official_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checkpoint, "REPO_ROOT", tmp_path / "repo")
    assert checkpoint.default_checkpoint("ckpt/All.pth") == (
        checkpoint.SHIPPED_WEIGHTS,
        checkpoint.SHIPPED_DESCRIPTION,
    )
    (tmp_path / "repo" / "ckpt").mkdir(parents=True)
    (tmp_path / "repo" / "ckpt" / "All.pth").write_bytes(b"x")
    assert checkpoint.default_checkpoint("ckpt/All.pth")[0] == tmp_path / "repo/ckpt/All.pth"
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "All.pth").write_bytes(b"x")
    assert checkpoint.default_checkpoint("ckpt/All.pth") == (
        Path("ckpt/All.pth"),
        "official weights",
    )


def test_shipped_weights_denoise_a_real_photo():
    """The committed file loads strictly and removes sigma-25 noise from a committed photo."""
    torch.manual_seed(0)
    model = hubconf.airnet(pretrained=True)
    photo = sorted((REPO / "data/test/denoise/CBSD68").glob("*.png"))[0]
    clean = crop_to_multiple(read_image(photo), 16)[:96, :96]
    noisy = add_gaussian_noise(clean, 25, noise_rng(photo.name, 25))
    restored = restore(noisy, model)
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(noisy, clean) + 3.0  # a clear gain, not a copy


def test_the_shipped_file_is_safetensors_with_its_size_and_types():
    """Decision 4: one weight file under ckpt/, safetensors, version 5 (the best qualifying
    export of issue 19's run), with its trained types (decision 5)."""
    weights = read_weights(checkpoint.SHIPPED_WEIGHTS)
    assert checkpoint.SHIPPED_WEIGHTS.name == "airnet-small-repo-trained.safetensors"
    assert weights.format == "safetensors"
    assert weights.size == {"n_feats": 32, "n_groups": 1, "n_blocks": 2}
    six = ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze", "clean"]
    assert weights.de_type == six and trained_types(checkpoint.SHIPPED_WEIGHTS) == six
    assert (weights.metadata["version"], weights.metadata["step"]) == (5, 23400)
    assert weights.metadata["qualifies"] is True


def test_app_offers_the_shipped_file():
    pytest.importorskip("gradio")
    import app

    assert str(checkpoint.SHIPPED_WEIGHTS) in app.weight_choices(REPO / "ckpt")


# Decision 4: the all-in-one file and the one-by-one files that ship, nothing else.
ONE_BY_ONE = {  # task -> (trained types, version, step of the run)
    "denoise": (["denoise_15", "denoise_25", "denoise_50", "clean"], 2, 4800),
    "dehaze": (["dehaze", "clean"], 1, 2640),
    "derain": (["derain"], 1, 4800),
}


def test_only_the_shipped_weight_files_are_committed_under_ckpt():
    tracked = subprocess.run(
        ["git", "ls-files", "ckpt"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    weights = [name for name in tracked if name.endswith((".pth", ".pt", ".safetensors"))]
    expected = [checkpoint.SHIPPED_WEIGHTS] + [checkpoint.shipped_file(t) for t in ONE_BY_ONE]
    assert sorted(weights) == sorted(str(p.relative_to(REPO)) for p in expected)


@pytest.mark.parametrize("task", sorted(ONE_BY_ONE))
def test_a_one_by_one_file_loads_with_its_facts_and_leaves_a_clean_photo_alone(task):
    """Each committed one-by-one file (issue 29): safetensors, the small size, its trained
    types, version, step and the rule's verdict in the metadata; each of the three clean
    CBSD68 sample photos in data/test, whole as the card's clean row takes them, comes back
    within 3 grey levels of its brightness and >= 30 dB. (The all-in-one's pinned 96² centre
    crop of 105025 moves 3.8 grey levels under the dehaze file: the card says so.)"""
    types, version, step = ONE_BY_ONE[task]
    path = checkpoint.shipped_file(task)
    weights = read_weights(path)
    assert weights.format == "safetensors" and weights.de_type == types
    assert weights.size == {"n_feats": 32, "n_groups": 1, "n_blocks": 2}
    assert (weights.metadata["version"], weights.metadata["step"]) == (version, step)
    assert weights.metadata["qualifies"] is True
    assert weights.metadata["judged_against"] == checkpoint.SHIPPED_WEIGHTS.name
    model = load_airnet(path)
    photos = sorted((REPO / "data/test/denoise/CBSD68").glob("*.png"))
    assert len(photos) == 3
    for photo_path in photos:
        photo = read_image(photo_path)
        restored = restore(photo, model)
        change = abs(float(restored.astype(np.float64).mean()) - float(photo.mean()))
        assert change <= 3.0, f"{photo_path.name}: brightness moved by {change:.2f} grey levels"
        assert psnr(restored, photo) >= 30.0, photo_path.name


def test_shipped_weights_leave_a_clean_photo_alone():
    """Issue 19: the clean centre 96² crop of CBSD68 105025 (mean 123.6 grey levels) comes
    back within 3 grey levels of its own brightness (version 3 darkened it by 11.6, to 24.0 dB
    from itself)."""
    photo = read_image(REPO / "data/test/denoise/CBSD68/105025.png")
    top, left = (photo.shape[0] - 96) // 2, (photo.shape[1] - 96) // 2
    crop = photo[top : top + 96, left : left + 96]
    restored = restore(crop, load_airnet(checkpoint.SHIPPED_WEIGHTS))
    change = abs(float(restored.astype(np.float64).mean()) - float(crop.mean()))
    assert change <= 3.0, f"mean brightness moved by {change:.1f} grey levels"
    assert psnr(restored, crop) >= 30.0


def tiny_weights(path: Path, seed: int) -> Path:
    """A tiny AirNet file of ours at ``path``, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    size = {"n_feats": 8, "n_groups": 1, "n_blocks": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": AirNet(**size, queue_size=16).state_dict(), "args": size}, path)
    return path


def ours_in(ckpt_dir: Path, monkeypatch) -> dict[str, Path]:
    """Our all-in-one and one-by-one files in ``ckpt_dir`` (the repository's ckpt/ there)."""
    files = {task: ckpt_dir / name for task, (_, name) in checkpoint.TASK_FILES.items()}
    for seed, path in enumerate(files.values()):
        tiny_weights(path, seed)
    monkeypatch.setattr(checkpoint, "SHIPPED_WEIGHTS", files["all"])
    monkeypatch.setattr(checkpoint, "REPO_ROOT", ckpt_dir.parent)
    return files


def test_a_task_uses_its_one_by_one_file_where_no_official_one_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = ours_in(tmp_path / "repo" / "ckpt", monkeypatch)
    for task in ("denoise", "derain", "dehaze", "all"):
        assert checkpoint.task_checkpoint(task) == (files[task], checkpoint.SHIPPED_DESCRIPTION)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "Derain.pth").write_bytes(b"x")  # the official file wins
    assert checkpoint.task_checkpoint("derain") == (Path("ckpt/Derain.pth"), "official weights")
    files["dehaze"].unlink()  # not shipped: the all-in-one, and the description says so
    path, which = checkpoint.task_checkpoint("dehaze")
    assert path == files["all"] and which.startswith("no dehaze file in ckpt/")


def test_demo_task_picks_the_task_file_and_excludes_ckpt(tmp_path, monkeypatch, caplog, capsys):
    caplog.set_level(logging.INFO, logger="demo")
    monkeypatch.chdir(tmp_path)
    files = ours_in(tmp_path / "repo" / "ckpt", monkeypatch)
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    argv = ["--test_path", "in.png", "--output_path", "out", "--device", "cpu"]
    assert demo.main(demo.build_parser().parse_args([*argv, "--task", "derain"])) == 0
    assert f"checkpoint: {files['derain']} (" in caplog.text
    caplog.clear()
    assert demo.main(demo.build_parser().parse_args(argv)) == 0  # default: the all-in-one
    assert f"checkpoint: {files['all']} (" in caplog.text
    with pytest.raises(SystemExit) as stop:
        demo.build_parser().parse_args([*argv, "--task", "derain", "--ckpt", "x.pth"])
    assert stop.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_test_py_modes_use_the_task_files(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="test")
    monkeypatch.chdir(tmp_path)
    files = ours_in(tmp_path / "repo" / "ckpt", monkeypatch)
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for side in ("input", "target"):
        (tmp_path / "in/Rain" / side).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "in/Rain" / side / "x.png")
    argv = ["--mode", "1", "--derain_path", "in", "--output_path", "out", "--device", "cpu"]
    assert test_script.main(test_script.build_parser().parse_args(argv)) == 0
    assert f"checkpoint {files['derain']} (weights trained by this repository" in caplog.text


def test_hubconf_task_loads_the_task_file(tmp_path, monkeypatch):
    files = ours_in(tmp_path / "repo" / "ckpt", monkeypatch)
    monkeypatch.chdir(tmp_path)
    expected = load_airnet(files["dehaze"]).state_dict()
    loaded = hubconf.airnet(pretrained=True, task="dehaze").state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in expected.items())
    with pytest.raises(ValueError, match="task 'fog'"):
        hubconf.airnet(pretrained=True, task="fog")


def test_app_selects_the_all_in_one_first_and_a_task_file_on_request(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    import app

    files = ours_in(tmp_path / "ckpt", monkeypatch)
    (tmp_path / "ckpt" / "mine.pth").write_bytes(b"x")
    choices = app.weight_choices(tmp_path / "ckpt")
    assert choices[0] == str(files["all"]) and choices[-2:] == [
        str(tmp_path / "ckpt" / "mine.pth"),
        app.UPLOADED,
    ]
    assert app.weight_choices(tmp_path / "ckpt", task="dehaze")[:2] == [
        str(files["dehaze"]),
        str(files["all"]),
    ]
