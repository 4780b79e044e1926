"""The Hugging Face Hub layout: scripts/make_hub_folder.py writes it, load_airnet and hubconf
read it as a local folder or as hf://owner/name, all offline (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePath

import numpy as np
import pytest
import torch
from PIL import Image

import hubconf
from net import AirNet, load_airnet
from utils import checkpoint
from utils.checkpoint import CheckpointError, save_safetensors_atomic, trained_types

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import make_hub_folder  # noqa: E402

TYPES = ["denoise_25", "derain"]
CARD = """# Model card: tiny

| architecture | AirNet |

## Data

Made up for a test.
Terms: research use only;
no redistribution.

## Test sets (paper protocol)

| set | task | PSNR / SSIM | degraded input |
| --- | --- | --- | --- |
| CBSD68 (68) | σ 25 | 29.11 / 0.8183 | 20.54 / 0.4176 |
| Rain100L (100) | rain | 24.43 / 0.7984 | 25.52 / 0.8140 |

(a note after the table)

![curve](curve.png)

## Limits
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def source(tmp_path) -> tuple[Path, AirNet]:
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=2, queue_size=16).eval()
    path = tmp_path / "tiny.pth"
    torch.save({"model": model.state_dict(), "args": {**model.config, "step": 7}}, path)
    return path, model


@pytest.fixture
def folder(tmp_path, source) -> Path:
    (tmp_path / "card.md").write_text(CARD)
    (tmp_path / "curve.png").write_bytes(b"png")
    output = tmp_path / "hub" / "tiny-airnet"
    argv = ["--ckpt", str(source[0]), "--card", str(tmp_path / "card.md"), "--output",
            str(output), "--de_type", *TYPES]  # fmt: skip
    assert make_hub_folder.main(argv) == 0
    return output


def test_the_folder_holds_weights_config_card_terms_and_images(folder, source):
    names = {p.name for p in folder.iterdir()}
    assert names == {"model.safetensors", "config.json", "README.md", "LICENSE.md", "curve.png"}
    config = json.loads((folder / "config.json").read_text())
    assert config["de_type"] == TYPES and config["n_feats"] == 8 and config["n_blocks"] == 2
    assert config["parameters"] == sum(p.numel() for p in source[1].parameters())
    readme = (folder / "README.md").read_text()
    header, body = readme.split("---\n")[1:3]
    assert body.lstrip().startswith("# Model card: tiny") and "## How to load" in body
    assert "Research use only; no redistribution." in " ".join(
        (folder / "LICENSE.md").read_text().split()
    )
    yaml = pytest.importorskip("yaml")
    metadata = yaml.safe_load(header)
    assert metadata["license"] == "other" and metadata["license_link"] == "LICENSE.md"
    assert "image-restoration" in metadata["tags"]
    (entry,) = metadata["model-index"]
    assert entry["name"] == "tiny-airnet"
    results = {r["task"]["name"]: r for r in entry["results"]}
    assert set(results) == {"denoise σ 25", "rain"}
    assert results["rain"]["dataset"]["type"] == "Rain100L"
    assert [m["value"] for m in results["denoise σ 25"]["metrics"]] == [29.11, 0.8183]


def test_a_folder_loads_like_its_source(folder, source):
    for model in (load_airnet(folder), hubconf.airnet(checkpoint=folder)):
        assert model.config == source[1].config
        for key, value in source[1].state_dict().items():  # the MoCo queue too: strict load
            assert torch.equal(model.state_dict()[key], value), key
    assert trained_types(folder) == TYPES
    assert checkpoint.read_weights(folder).metadata["step"] == 7


def test_the_real_model_card_parses():
    card = (REPO / "ckpt" / "MODEL_CARD.md").read_text()
    assert make_hub_folder.card_terms(card).startswith("The Berkeley Segmentation Dataset")
    results = make_hub_folder.card_results(card)
    assert [r["task"] for r in results][:3] == ["σ 15", "σ 25", "σ 50"]
    assert all(10 < r["psnr"] < 50 and 0 < r["ssim"] <= 1 for r in results)


def test_a_card_without_terms_is_one_line(tmp_path, source, capsys):
    (tmp_path / "card.md").write_text(CARD.replace("Terms:", "Notes:"))
    argv = ["--ckpt", str(source[0]), "--card", str(tmp_path / "card.md"), "--output",
            str(tmp_path / "out"), "--de_type", "derain"]  # fmt: skip
    assert make_hub_folder.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'card.md'}: no paragraph")


def test_other_folders_are_refused_as_before(folder, tmp_path):
    (tmp_path / "weights_only").mkdir()
    (folder / "model.safetensors").rename(tmp_path / "weights_only" / "model.safetensors")
    for path in (folder, tmp_path / "weights_only"):  # config.json alone, safetensors alone
        with pytest.raises(FileNotFoundError, match="is a folder, not a checkpoint"):
            load_airnet(path)


def test_hf_reference_is_fetched_through_huggingface_hub(folder, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(folder)

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    model = load_airnet("hf://someone/tiny-airnet")
    assert model.config["n_feats"] == 8
    assert calls == [
        ("someone/tiny-airnet", {"allow_patterns": ["model.safetensors", "config.json"]})
    ]
    hubconf.airnet(checkpoint=Path("hf://someone/tiny-airnet"))  # pathlib: "hf:/someone/..."
    assert trained_types("hf://someone/tiny-airnet") == TYPES
    assert [c[0] for c in calls[1:]] == ["someone/tiny-airnet"] * 2


def test_hub_failures_and_mistyped_paths_are_one_line(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(CheckpointError) as error:  # offline, not in the cache
        load_airnet("hf://someone/absent")
    assert str(error.value).startswith("hf://someone/absent: cannot fetch it from the Hub (")
    assert "\n" not in str(error.value)

    def never(*args, **kwargs):
        raise AssertionError("a local path must never reach the network")

    monkeypatch.setattr(hub, "snapshot_download", never)
    for mistyped in ("hf:/someone/absent", "someone/absent", "hf//someone/absent"):
        with pytest.raises(FileNotFoundError, match="checkpoint not found"):
            load_airnet(mistyped)
    with pytest.raises(CheckpointError, match="is written hf://owner/name"):
        load_airnet("hf://no-name")


def test_without_huggingface_hub_the_message_names_its_requirements(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError) as error:
        load_airnet("hf://someone/tiny-airnet")
    assert str(error.value) == (
        "hf://someone/tiny-airnet: fetching from the Hugging Face Hub needs huggingface_hub: "
        "pip install -r requirements-hub.txt"
    )
    assert (REPO / "requirements-hub.txt").read_text().splitlines()[-1] == "huggingface_hub"


def test_is_hub_reference_only_takes_the_hf_form():
    assert checkpoint.is_hub_reference("hf://a/b") and checkpoint.is_hub_reference(
        PurePath("hf://a/b")
    )
    assert not checkpoint.is_hub_reference("hf:/a/b") and not checkpoint.is_hub_reference("a/b")


def test_a_folder_whose_config_lies_about_the_size_is_one_line(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_feats": 16}))
    with pytest.raises(CheckpointError, match="records n_feats 16 but its tensors are n_feats 8"):
        load_airnet(folder)


def test_writing_needs_the_trained_types(tmp_path, source, capsys):
    (tmp_path / "card.md").write_text(CARD)
    argv = ["--ckpt", str(source[0]), "--card", str(tmp_path / "card.md"), "--output",
            str(tmp_path / "out")]  # fmt: skip
    assert make_hub_folder.main(argv) == 2
    assert "give --de_type" in capsys.readouterr().err
    recorded = tmp_path / "typed.safetensors"
    model = source[1]
    save_safetensors_atomic(model.state_dict(), recorded, model.config, de_type=["dehaze"])
    argv[1] = str(recorded)
    assert make_hub_folder.main(argv) == 0
    assert trained_types(tmp_path / "out") == ["dehaze"]


def test_demo_and_app_take_a_hub_folder(folder, tmp_path):
    """demo.py --ckpt FOLDER and app.py's weights choice reach load_airnet (they used to
    refuse anything but a file)."""
    import app
    import demo

    image = tmp_path / "photo.png"
    Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(image)
    out = tmp_path / "out"
    assert demo.main(demo.parse_args(["--test_path", str(image), "--output_path", str(out),
                                      "--ckpt", str(folder), "--device", "cpu"])) == 0  # fmt: skip
    assert (out / "photo.png").is_file()
    assert app.checkpoint_path(str(folder), None) == folder
