"""app.py: its functions, and its HTTP API on 127.0.0.1 through gradio_client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

import app
from net import AirNet, load_airnet
from utils.checkpoint import save_safetensors_atomic
from utils.restore import restore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(
        {"model": model.state_dict(), "args": {"n_feats": 8, "n_groups": 1, "n_blocks": 1}}, path
    )
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = {
        "odd": folder / "odd.jpg",
        "alpha": folder / "alpha.png",
        "broken": folder / "broken.png",
        "bad_ckpt": folder / "bad.pth",
    }
    Image.fromarray(rng.integers(0, 256, (27, 35, 3), dtype=np.uint8)).save(paths["odd"])
    rgba = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(paths["alpha"])
    paths["broken"].write_bytes(b"this is not a png")
    paths["bad_ckpt"].write_bytes(b"not a checkpoint at all")
    return paths


def test_weight_choices_put_given_and_official_first(tmp_path):
    for name in ("b.pth", "All.pth", "a.pth"):
        (tmp_path / name).write_bytes(b"")
    choices = app.weight_choices(tmp_path, [Path("mine.pth")])
    assert choices == [
        "mine.pth",
        str(tmp_path / "All.pth"),
        str(tmp_path / "a.pth"),
        str(tmp_path / "b.pth"),
        app.UPLOADED,
    ]
    assert app.weight_choices(tmp_path / "none") == [app.UPLOADED]


def test_restore_files_equals_restore_and_names_bad_files(tiny_ckpt, photos, tmp_path):
    files = [str(photos["odd"]), str(photos["broken"]), str(photos["alpha"])]
    pairs, outputs, messages = app.restore_files(files, str(tiny_ckpt), None, "cpu", 0, tmp_path)
    assert [p.name for p in outputs] == ["odd_restored.png", "alpha_restored.png"]
    model = load_airnet(tiny_ckpt)
    for (rgb, restored), out in zip(pairs, outputs, strict=True):
        assert np.array_equal(restored, restore(rgb, model))  # demo.py's restore, same result
        with Image.open(out) as image:
            assert image.size == (rgb.shape[1], rgb.shape[0])
    with Image.open(outputs[1]) as image:
        assert image.mode == "RGBA"
    assert any("broken.png is not an image" in m for m in messages)
    _, _, messages = app.restore_files([str(photos["odd"])], str(tiny_ckpt), None, "cpu", 64)
    assert "27x35" not in messages[0] and "35x27" in messages[0]


def test_readable_errors(tiny_ckpt, photos, monkeypatch):
    ckpt, odd = str(tiny_ckpt), [str(photos["odd"])]
    with pytest.raises(app.AppError, match="Upload one or more images"):
        app.restore_files([], ckpt, None)
    with pytest.raises(app.AppError, match="at most 8 per request"):
        app.restore_files(odd * 9, ckpt, None)
    with pytest.raises(app.AppError, match="upload a checkpoint"):
        app.restore_files(odd, app.UPLOADED, None)
    with pytest.raises(app.AppError, match="bad.pth is not an AirNet checkpoint"):
        app.restore_files(odd, app.UPLOADED, str(photos["bad_ckpt"]))
    with pytest.raises(app.AppError, match="broken.png is not an image"):
        app.restore_files([str(photos["broken"])], ckpt, None)
    monkeypatch.setattr(app, "MAX_MEGAPIXELS", 0.0005)
    with pytest.raises(app.AppError, match=r"35x27 = 0.0 megapixels is over the limit"):
        app.restore_files(odd, ckpt, None)
    monkeypatch.setattr(app, "MAX_CKPT_MB", 1e-6)
    with pytest.raises(app.AppError, match="over the checkpoint limit"):
        app.restore_files(odd, app.UPLOADED, ckpt)


def test_a_checkpoint_of_another_model_is_refused(tmp_path, photos):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 1, 1)}, path)
    with pytest.raises(app.AppError, match="other.pth is not an AirNet checkpoint"):
        app.load_model(str(path), None, "cpu")


def test_model_info_names_the_trained_types(tmp_path, photos):
    torch.manual_seed(0)
    state = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16).state_dict()
    size = {"n_feats": 8, "n_groups": 1, "n_blocks": 1}
    torch.save({"model": state, "args": {**size, "de_type": ["derain"]}}, tmp_path / "ours.pth")
    save_safetensors_atomic(state, tmp_path / "w.safetensors", size, ["denoise_25", "lowlight"])
    torch.save(state, tmp_path / "All.pth")  # the official format records nothing
    assert app.model_info(str(tmp_path / "ours.pth"), None) == (
        "Weights `ours.pth`, trained types: derain"
    )
    assert app.model_info(app.UPLOADED, str(tmp_path / "w.safetensors")) == (
        "Weights `w.safetensors`, trained types: denoise_25 lowlight"
    )
    assert app.model_info(str(tmp_path / "All.pth"), None).endswith("trained types: not recorded")
    assert "upload a checkpoint" in app.model_info(app.UPLOADED, None)
    bad = app.model_info(app.UPLOADED, str(photos["bad_ckpt"]))
    assert bad.startswith("bad.pth is not an AirNet checkpoint")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_ckpt, tmp_path_factory):
    """python app.py on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "app.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A second copy under a name that is not UTF-8 (issue 33 item 1): offered as ``shown``
    # writes it, and the choice reaches the file.
    odd_name = tiny_ckpt.parent / os.fsdecode(b"caf\xe9.pth")
    odd_name.write_bytes(tiny_ckpt.read_bytes())
    command = [sys.executable, "app.py", "--ckpt", str(tiny_ckpt), "--ckpt", str(odd_name)]
    command += ["--port", str(port)]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"app.py did not start:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_http_api_restores_and_survives_errors(server, tiny_ckpt, photos):
    client = Client(server, verbose=False)
    slider, gallery, downloads, status = client.predict(
        [handle_file(photos["odd"])], str(tiny_ckpt), None, "cpu", 0, api_name="/restore"
    )
    expected = restore(np.asarray(Image.open(photos["odd"])), load_airnet(tiny_ckpt))
    (download,) = downloads
    assert np.array_equal(np.asarray(Image.open(download)), expected)
    assert np.array_equal(np.asarray(Image.open(slider[1]).convert("RGB")), expected)
    assert "odd.jpg: 35x27" in status

    with pytest.raises(Exception, match="bad.pth is not an AirNet checkpoint"):
        client.predict(
            [handle_file(photos["odd"])],
            app.UPLOADED,
            handle_file(photos["bad_ckpt"]),
            "cpu",
            0,
            api_name="/restore",
        )
    with pytest.raises(Exception, match="is not an image we can read"):
        client.predict(
            [handle_file(photos["broken"])], str(tiny_ckpt), None, "cpu", 0, api_name="/restore"
        )
    # Still serving after the errors.
    _, _, downloads, _ = client.predict(
        [handle_file(photos["alpha"])], str(tiny_ckpt), None, "cpu", 64, api_name="/restore"
    )
    assert Image.open(downloads[0]).mode == "RGBA"


def test_a_weights_file_whose_name_is_not_utf8_is_offered_shown_and_restores(
    server, tiny_ckpt, photos
):
    """The dropdown's choices travel as JSON, which must be valid UTF-8: the Latin-1 name
    ``caf\\xe9.pth`` is offered as those 11 characters and the choice opens the file."""
    with urllib.request.urlopen(server + "config", timeout=10) as response:
        config = response.read().decode()
    shown_choice = str(tiny_ckpt.parent / "caf\\xe9.pth")
    assert shown_choice.replace("\\", "\\\\") in config
    client = Client(server, verbose=False)
    _, _, downloads, status = client.predict(
        [handle_file(photos["odd"])], shown_choice, None, "cpu", 0, api_name="/restore"
    )
    expected = restore(np.asarray(Image.open(photos["odd"])), load_airnet(tiny_ckpt))
    assert np.array_equal(np.asarray(Image.open(downloads[0])), expected)


def test_page_shows_the_model_info(server):
    """The first choice is the --ckpt file, whose args record no de_type."""
    with urllib.request.urlopen(server + "config", timeout=10) as response:
        config = response.read().decode()
    assert "Weights `tiny.pth`, trained types: not recorded" in config


def test_page_has_analytics_off(server):
    with urllib.request.urlopen(server + "config", timeout=10) as response:
        config = response.read().decode()
    assert '"analytics_enabled":false' in config.replace(" ", "")
