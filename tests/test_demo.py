"""demo.py and hubconf.py: sizes kept, odd image types, bad files, tiles, --compare, torch.hub."""

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from net import AirNet
from utils import checkpoint

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"airnet_{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


demo = load_script("demo")


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def run(test_path: Path, out: Path, ckpt: Path, *extra: str) -> int:
    argv = ["--test_path", str(test_path), "--output_path", str(out), "--ckpt", str(ckpt)]
    argv += ["--device", "cpu", *extra]
    return demo.main(demo.build_parser().parse_args(argv))


@pytest.mark.parametrize("size", [(37, 23), (1, 1), (17, 64)])
def test_output_keeps_odd_sizes_and_name(tmp_path, tiny_ckpt, size):
    Image.fromarray(random_rgb(*size)).save(tmp_path / "photo.jpg")
    assert run(tmp_path / "photo.jpg", tmp_path / "out", tiny_ckpt) == 0
    with Image.open(tmp_path / "out/photo.png") as result:
        assert result.size == (size[1], size[0])
        assert result.mode == "RGB"
        assert result.format == "PNG"


def test_folder_with_odd_image_types(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    src.mkdir()
    rgb = random_rgb(21, 30)
    gray = rgb[..., 0]
    alpha = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (21, 1))
    Image.fromarray(gray).save(src / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(src / "gray16.png")
    Image.fromarray(gray).convert("1").save(src / "bilevel.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(src / "rgba.png")
    Image.fromarray(np.dstack([gray, alpha])).save(src / "la.png")
    Image.fromarray(rgb).convert("P").save(src / "palette.png")
    Image.fromarray(rgb).convert("P").save(src / "palette_transparent.png", transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30 wide, shown rotated 90 degrees clockwise: 21 wide, 30 tall
    Image.fromarray(rgb).save(src / "rotated.jpg", exif=exif)

    assert run(src, tmp_path / "out", tiny_ckpt) == 0
    expected = {
        "gray.png": ("L", (30, 21)),
        "gray16.png": ("L", (30, 21)),
        "bilevel.png": ("L", (30, 21)),
        "rgba.png": ("RGBA", (30, 21)),
        "la.png": ("LA", (30, 21)),
        "palette.png": ("RGB", (30, 21)),
        "palette_transparent.png": ("RGBA", (30, 21)),
        "rotated.png": ("RGB", (21, 30)),
    }
    for name, (mode, size) in expected.items():
        with Image.open(tmp_path / "out" / name) as result:
            assert (result.mode, result.size) == (mode, size), name
            if name in ("rgba.png", "la.png"):
                np.testing.assert_array_equal(np.asarray(result)[..., -1], alpha)


def test_bad_files_are_reported_and_the_run_continues(tmp_path, tiny_ckpt, caplog):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_broken.png").write_bytes(b"\x89PNG but not really")
    (src / "b_empty.jpg").write_bytes(b"")
    Image.fromarray(random_rgb(20, 20)).save(src / "c_good.png")
    (src / ".DS_Store").write_bytes(b"\x00\x01")
    assert run(src, tmp_path / "out", tiny_ckpt) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c_good.png"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("a_broken.png" in e for e in errors)
    assert any("b_empty.jpg" in e for e in errors)
    assert not any(".DS_Store" in e for e in errors)


def test_tiles_and_compare(tmp_path, tiny_ckpt):
    Image.fromarray(random_rgb(50, 70)).save(tmp_path / "big.png")
    out = tmp_path / "out"
    args = ("--tile", "32", "--tile_overlap", "8", "--compare")
    assert run(tmp_path / "big.png", out, tiny_ckpt, *args) == 0
    with Image.open(out / "big.png") as result:
        assert result.size == (70, 50)
    with Image.open(out / "compare/big.png") as compare:
        assert compare.size == (2 * 70 + demo.COMPARE_GAP, 50)
        np.testing.assert_array_equal(np.asarray(compare)[:, :70], random_rgb(50, 70))


def test_same_stem_inputs_do_not_overwrite_each_other(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(random_rgb(16, 16, 1)).save(src / "a.jpg")
    Image.fromarray(random_rgb(16, 16, 2)).save(src / "a.png")
    assert run(src, tmp_path / "out", tiny_ckpt) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_jpg.png", "a_png.png"]


def test_never_overwrites_an_input(tmp_path, tiny_ckpt):
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    assert run(tmp_path, tmp_path, tiny_ckpt) == 1
    assert (tmp_path / "a.png").read_bytes() == before


def test_missing_checkpoint_tells_where_to_get_weights(tmp_path, caplog, monkeypatch):
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)  # no ckpt/All.pth here, and no shipped weights either:
    monkeypatch.setattr(checkpoint, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(checkpoint, "SHIPPED_WEIGHTS", tmp_path / "ckpt" / "shipped.pth")
    args = demo.build_parser().parse_args(["--test_path", "a.png", "--device", "cpu"])
    assert args.ckpt is None
    assert demo.main(args) == 2
    assert "shipped.pth" in caplog.text and "ckpt/README.md" in caplog.text


def test_prints_device_and_time(tmp_path, tiny_ckpt, caplog):
    caplog.set_level(logging.INFO, logger="demo")
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", tmp_path / "out", tiny_ckpt) == 0
    assert "device: cpu" in caplog.text
    assert any(r.getMessage().endswith(" s)") and "a.png" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("kind", "logged"),
    [
        ("pth", "trained types: derain dehaze"),  # our export: args.de_type
        ("safetensors", "trained types: denoise_25 lowlight"),  # metadata
        ("flat", "trained types: not recorded"),  # the official format
    ],
)
def test_prints_the_trained_types(tmp_path, caplog, kind, logged):
    caplog.set_level(logging.INFO, logger="demo")
    torch.manual_seed(0)
    state = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16).state_dict()
    size = {"n_feats": 8, "n_groups": 1, "n_blocks": 1}
    ckpt = tmp_path / f"weights.{kind}"
    if kind == "pth":
        torch.save({"model": state, "args": {**size, "de_type": ["derain", "dehaze"]}}, ckpt)
    elif kind == "safetensors":
        checkpoint.save_safetensors_atomic(state, ckpt, size, ["denoise_25", "lowlight"])
    else:
        torch.save(state, ckpt)
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", tmp_path / "out", ckpt) == 0
    assert logged in caplog.messages


def test_bundled_demo_images(tmp_path, tiny_ckpt):
    """The demo command of docs/restore.md on data/demo/ (the repository's own samples)."""
    assert run(ROOT / "data/demo", tmp_path, tiny_ckpt) == 0
    for source in sorted((ROOT / "data/demo").glob("*.png")):
        with Image.open(source) as a, Image.open(tmp_path / source.name) as b:
            assert a.size == b.size


def test_torch_hub_local(tiny_ckpt):
    model = torch.hub.load(str(ROOT), "airnet", source="local", checkpoint=str(tiny_ckpt))
    assert isinstance(model, AirNet) and not model.training
    assert model.config["n_feats"] == 8
    random_model = torch.hub.load(
        str(ROOT), "airnet", source="local", n_feats=8, n_groups=1, n_blocks=1, queue_size=16
    )
    assert not random_model.training


def test_precision_flag(tmp_path, tiny_ckpt, caplog):
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.fromarray(random_rgb(21, 18)).save(image)
    assert run(image, tmp_path / "bf16", tiny_ckpt, "--precision", "bf16") == 0
    assert Image.open(tmp_path / "bf16" / "a.png").size == (18, 21)
    with caplog.at_level(logging.WARNING):
        assert run(image, tmp_path / "fp16", tiny_ckpt, "--precision", "fp16") == 0
    assert "fp16 is very slow on CPU" in caplog.text
