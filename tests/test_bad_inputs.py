"""A corpus of broken inputs through every entry point: one clear line naming the file and the
reason, no traceback, the good files still processed, and the exit codes of docs/errors.md."""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hubconf
import train
from net import AirNet, load_airnet
from tests.test_train import tiny_args
from utils import image_files
from utils.checkpoint import CheckpointError
from utils.image_io import ImageReadError, check_image, read_image
from utils.train_dataset import Source, TrainDataset

REPO = Path(__file__).resolve().parents[1]


class Hostile:
    """Unpickling this would run a shell command: weights_only must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/airnet_pwned",))


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def bad_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words its message must hold)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _torch_bytes(AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16).state_dict())
    files = {
        "empty": (b"", "empty or truncated"),
        "random": (np.random.default_rng(0).bytes(4096), "not a PyTorch checkpoint"),
        "truncated": (good[: len(good) // 2], "corrupt or truncated"),
        "hostile": (_torch_bytes({"model": Hostile()}), "could run code"),
        "text": (b"hello\n", "not a PyTorch checkpoint"),
        "list": (_torch_bytes([1, 2, 3]), "expected a state dict"),
        "wrong_keys": (_torch_bytes({"x": torch.zeros(1)}), "does not match AirNet"),
    }
    out = {}
    for name, (data, reason) in files.items():
        path = folder / f"{name}.pth"
        path.write_bytes(data)
        out[name] = (path, reason)
    (folder / "folder.pth").mkdir(exist_ok=True)
    out["folder"] = (folder / "folder.pth", "is a folder")
    out["missing"] = (folder / "missing.pth", "not found")
    return out


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds none: a decompression bomb's header
    (PIL decides from it alone), made in microseconds."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + iend


def bad_images(folder: Path) -> dict[str, Path]:
    """Broken and hostile image files, each with a name an image would have."""
    folder.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(png, format="PNG")
    files = {
        "empty.png": b"",
        "text.jpg": b"not an image at all\n",
        "truncated.png": png.getvalue()[:60],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "bomb.png").write_bytes(png_header_only(60000, 60000))  # 3.6 GP declared
    (folder / "folder.png").mkdir(exist_ok=True)
    return {name: folder / name for name in [*files, "bomb.png", "folder.png"]}


def test_every_bad_image_is_one_clear_error(tmp_path):
    for name, path in bad_images(tmp_path).items():
        with pytest.raises(ImageReadError) as error:
            read_image(path)
        message = str(error.value)
        assert message.startswith(str(path)) and "\n" not in message, name
    with pytest.raises(ImageReadError, match="too large"):
        check_image(tmp_path / "bomb.png")


def test_huge_but_valid_image_reads_within_the_limit(tmp_path):
    Image.new("L", (9500, 9500), 30).save(tmp_path / "big.png")  # 90 MP: over PIL's 89 MP
    image = read_image(tmp_path / "big.png")
    assert image.shape == (9500, 9500, 3) and image[0, 0].tolist() == [30, 30, 30]


def test_every_bad_checkpoint_is_one_line_from_load_airnet_and_hubconf(tmp_path):
    for name, (path, reason) in bad_checkpoints(tmp_path).items():
        for load in (load_airnet, lambda p: hubconf.airnet(checkpoint=p)):
            with pytest.raises((CheckpointError, FileNotFoundError)) as error:
                load(path)
            message = str(error.value)
            assert message.startswith(str(path)), (name, message)
            assert reason in message and "\n" not in message, (name, message)
    assert not Path("/tmp/airnet_pwned").exists()


def _run(script: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, *argv], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_demo_and_test_scripts_say_one_line_for_a_hostile_checkpoint(tmp_path):
    """As users run them (the other kinds are covered in-process above)."""
    path, reason = bad_checkpoints(tmp_path / "ckpt")["hostile"]
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    demo = _run("demo.py", "--test_path", str(tmp_path / "a.png"), "--ckpt", str(path),
                "--output_path", str(tmp_path / "out"), "--device", "cpu")  # fmt: skip
    evaluation = _run("test.py", "--mode", "0", "--ckpt", str(path), "--denoise_path",
                      str(tmp_path), "--output_path", str(tmp_path / "eval"),
                      "--device", "cpu")  # fmt: skip
    for result in (demo, evaluation):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if str(path) in line]
        assert len(errors) == 1 and reason in errors[0], result.stderr


def test_demo_folder_with_broken_files_restores_the_good_ones(tmp_path, caplog):
    folder = tmp_path / "photos"
    broken = bad_images(folder)
    Image.fromarray(np.full((20, 24, 3), 99, np.uint8)).save(folder / "good.png")
    ckpt = tmp_path / "tiny.pth"
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    torch.save({"model": model.state_dict(), "args": model.config}, ckpt)
    result = _run("demo.py", "--test_path", str(folder), "--ckpt", str(ckpt),
                  "--output_path", str(tmp_path / "out"), "--device", "cpu")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out" / "good.png").is_file()
    for name, path in broken.items():
        if name == "folder.png":
            continue  # a folder is not listed as an input at all
        lines = [line for line in result.stderr.splitlines() if f"skipped {path}:" in line]
        assert len(lines) == 1, (name, result.stderr)


def test_evaluation_with_a_bomb_scores_the_good_pairs(tmp_path):
    ckpt = tmp_path / "tiny.pth"
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    torch.save({"model": model.state_dict(), "args": model.config}, ckpt)
    sets = tmp_path / "denoise" / "Set"
    sets.mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 99, np.uint8)).save(sets / "good.png")
    (sets / "bomb.png").write_bytes(png_header_only(60000, 60000))
    result = _run("test.py", "--mode", "0", "--ckpt", str(ckpt), "--denoise_path",
                  str(tmp_path / "denoise"), "--sigmas", "25", "--output_path",
                  str(tmp_path / "eval"), "--device", "cpu")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "too large" in result.stderr
    summary = (tmp_path / "eval" / "summary.json").read_text()
    assert '"images": 1' in summary and "bomb.png" in summary


@pytest.mark.parametrize(
    "name", ["empty", "random", "truncated", "hostile", "list", "folder", "missing", "export"]
)
def test_resume_from_an_unusable_file_is_one_line_and_exit_2(tmp_path, name, monkeypatch, caplog):
    if name == "export":  # our own model-only export is not a training checkpoint
        path = tmp_path / "airnet_last.pth"
        model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
        torch.save({"model": model.state_dict(), "args": model.config}, path)
    else:
        path = bad_checkpoints(tmp_path / "ckpt")[name][0]
    monkeypatch.setattr(sys, "argv", ["train.py", *tiny_args(tmp_path), "--resume", str(path)])
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        train.cli()
    assert stop.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(path.name) in errors[0] and "\n" not in errors[0], errors
    assert not Path("/tmp/airnet_pwned").exists()


def test_training_skips_unreadable_files_when_scanning(tmp_path, caplog):
    argv = tiny_args(tmp_path, "--max_steps", "2")
    denoise = Path(argv[argv.index("--denoise_dir") + 1])
    broken = bad_images(denoise / "broken")
    with caplog.at_level(logging.WARNING):
        result = train.main(train.parse_args(argv))
    assert result.step == 2
    for name in ("empty.png", "text.jpg", "bomb.png"):  # found from their headers
        assert f"skipping {broken[name]}:" in caplog.text, name


def test_an_image_that_fails_to_decode_mid_run_is_replaced(tmp_path, caplog):
    """A truncated file passes the header scan; when drawn, the next image stands in."""
    good = tmp_path / "good.png"
    Image.fromarray(np.full((40, 40, 3), 77, np.uint8)).save(good)
    truncated = bad_images(tmp_path / "bad")["truncated.png"]
    dataset = TrainDataset([Source("denoise_15", ((None, truncated), (None, good)))], 32)
    with caplog.at_level(logging.WARNING):
        sample = dataset[(0, 0, 1)]
    assert f"{truncated}: cannot read image" in caplog.text and "next image" in caplog.text
    assert sample["clean_1"].shape == (3, 32, 32)
    assert torch.allclose(sample["clean_1"], torch.full((3, 32, 32), 77 / 255))


def test_demo_disk_full_is_one_line_per_image_and_leaves_no_partial_file(tmp_path, caplog):
    """Writes go to /dev/full-like failures: every image fails with a clear line, exit 1."""
    demo = load_demo()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((16, 16, 3), 9, np.uint8)).save(tmp_path / name)
    ckpt = tmp_path / "tiny.pth"
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    torch.save({"model": model.state_dict(), "args": model.config}, ckpt)
    argv = ["--test_path", str(tmp_path), "--ckpt", str(ckpt), "--device", "cpu"]
    argv += ["--output_path", str(tmp_path / "out")]

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo.os, "replace", disk_full)
        assert demo.main(demo.build_parser().parse_args(argv)) == 1
    for name in ("a.png", "b.png"):
        assert f"skipped {tmp_path / name}: {tmp_path / 'out' / name}: cannot write" in caplog.text
    assert "No space left on device" in caplog.text
    assert list((tmp_path / "out").iterdir()) == []  # no temporary or truncated file left


def load_demo():
    import importlib.util

    spec = importlib.util.spec_from_file_location("airnet_demo_bad", REPO / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_unreadable_file_is_one_clear_error(tmp_path, monkeypatch):
    """Permissions block nothing for root (as in CI): simulate EACCES where PIL opens files."""
    path = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    opened = image_files.Image.open

    def denied(fp, *args, **kwargs):
        if Path(fp) == path:
            raise PermissionError(13, "Permission denied", str(fp))
        return opened(fp, *args, **kwargs)

    monkeypatch.setattr(image_files.Image, "open", denied)
    with pytest.raises(ImageReadError) as error:
        read_image(path)
    assert str(error.value).startswith(f"{path}: cannot read image") and "Permission" in str(
        error.value
    )
