"""scripts/average_weights.py: the weight average, its file format, and validation of exports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from net import AirNet, load_airnet
from utils.checkpoint import read_weights, save_safetensors_atomic, save_weights_as
from utils.run_state import export_model

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import average_weights  # noqa: E402

SIZE = {"n_feats": 8, "n_groups": 1, "n_blocks": 1, "queue_size": 16}


def tiny_export(path: Path, seed: int, **size: int) -> AirNet:
    torch.manual_seed(seed)
    kwargs = {**SIZE, **size}
    model = AirNet(**kwargs)
    model.E.E.queue_ptr.fill_(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_()
    export_model(model, argparse.Namespace(**kwargs), path, epoch=seed, step=seed)
    return model


def test_average_of_exports(tmp_path: Path) -> None:
    models = [tiny_export(tmp_path / f"m{seed}.pth", seed) for seed in (1, 2, 3)]
    output = tmp_path / "avg.pth"
    average_weights.main(["average", *(str(tmp_path / f"m{s}.pth") for s in (1, 2, 3)),
                          "--output", str(output)])  # fmt: skip
    averaged = load_airnet(output).state_dict()  # loads strictly, with the stored size
    states = [model.state_dict() for model in models]
    for key, value in averaged.items():
        if key in ("E.E.queue", "E.E.queue_ptr") or not value.is_floating_point():
            assert torch.equal(value, states[-1][key]), key  # the last file's
        else:
            mean = sum(state[key].double() for state in states) / 3
            torch.testing.assert_close(value.double(), mean, rtol=1e-6, atol=1e-7)
    bn_key = next(key for key in averaged if key.endswith("running_mean"))
    assert not torch.equal(averaged[bn_key], states[-1][bn_key])  # statistics averaged too
    stored = torch.load(output, weights_only=True)["args"]
    assert stored["averaged"] == [str(tmp_path / f"m{s}.pth") for s in (1, 2, 3)]


def test_average_of_a_safetensors_and_a_pth_export(tmp_path: Path) -> None:
    """A safetensors file stores its keys sorted, a .pth in module order: the same model in the
    two formats averages (the first file's format is written), and the mean is per key. The
    average keeps the first file's records but not its shipping-rule verdict."""
    first = tiny_export(tmp_path / "a.pth", 1)
    save_safetensors_atomic(first.state_dict(), tmp_path / "a.safetensors", first.config)
    second = tiny_export(tmp_path / "b.pth", 2)
    output = tmp_path / "avg.safetensors"
    average_weights.main(["average", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pth"),
                          "--output", str(output)])  # fmt: skip
    averaged = load_airnet(output).state_dict()
    key = "R.tail.0.weight"
    mean = (first.state_dict()[key].double() + second.state_dict()[key].double()) / 2
    torch.testing.assert_close(averaged[key].double(), mean, rtol=1e-6, atol=1e-7)
    for name in ("a.safetensors", "b.pth"):
        add_verdict(tmp_path / name, True)
    average_weights.main(["average", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pth"),
                          "--output", str(output)])  # fmt: skip
    metadata = read_weights(output).metadata
    assert "qualifies" not in metadata  # a verdict on other weights; validate the average
    assert metadata["averaged"] == [str(tmp_path / "a.safetensors"), str(tmp_path / "b.pth")]


def add_verdict(path: Path, verdict: bool) -> None:
    """Record a shipping-rule verdict in an export, as train.py's exports carry one."""
    weights = read_weights(path)
    save_weights_as(weights, weights.state_dict, path, {"qualifies": verdict})
    assert read_weights(path).metadata["qualifies"] is verdict


def test_average_names_the_keys_that_differ() -> None:
    with pytest.raises(ValueError, match=r"file 1 has other keys than the last file \(-b, \+c\)"):
        average_weights.average_state_dicts(
            [{"a": torch.zeros(1), "c": torch.zeros(1)}, {"a": torch.ones(1), "b": torch.ones(1)}]
        )


def test_average_refuses_different_sizes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tiny_export(tmp_path / "a.pth", 1)
    tiny_export(tmp_path / "b.pth", 2, n_feats=16)
    with pytest.raises(SystemExit) as stop:
        average_weights.main(["average", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"),
                              "--output", str(tmp_path / "c.pth")])  # fmt: skip
    assert stop.value.code == 2
    assert "different sizes" in capsys.readouterr().err
    assert not (tmp_path / "c.pth").exists()


def test_validate_prints_a_row_per_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for seed in (1, 2):
        tiny_export(tmp_path / f"m{seed}.pth", seed)
    average_weights.main([
        "validate", str(tmp_path / "m1.pth"), str(tmp_path / "m2.pth"),
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
        "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
        "--val_images", "1", "--val_crop", "32",
    ])  # fmt: skip
    rows = [line for line in capsys.readouterr().out.splitlines() if ".pth" in line]
    assert len(rows) == 2
    verdicts = [row.strip("|").split("|")[-1].strip() for row in rows]
    assert verdicts == ["no", "no"]  # untrained weights do not beat the rainy input
    values = [[float(v) for v in row.strip("|").split("|")[1:-1]] for row in rows]
    assert all(len(v) == 6 and min(v) > 0 and max(v) < 100 for v in values)
    assert values[0] != values[1]  # different weights, different scores
    assert values[0][5] == pytest.approx(sum(values[0][:5]) / 5, abs=0.01)


def test_validate_with_clean_photos_prints_the_clean_column(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiny_export(tmp_path / "m1.pth", 1)
    average_weights.main([
        "validate", str(tmp_path / "m1.pth"), "--clean",
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
        "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
        "--val_images", "1", "--val_crop", "32",
    ])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert "clean (dB / grey levels)" in lines[0] and lines[0].rstrip().endswith("qualifies |")
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    psnr_clean, brightness = (float(part) for part in cells[6].split("/"))
    assert psnr_clean > 0 and brightness >= 0
    assert cells[-1] == "no"


def test_validate_takes_the_types_the_file_records(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    size = {**SIZE}
    export_model(
        AirNet(**size), argparse.Namespace(**size, de_type=["derain", "dehaze"]), tmp_path / "m.pth"
    )
    average_weights.main([
        "validate", str(tmp_path / "m.pth"),
        "--val_derain_dir", str(REPO / "data/test/derain/Rain100L"),
        "--val_dehaze_dir", str(REPO / "data/test/dehaze/SOTS_outdoor"),
        "--val_images", "1", "--val_crop", "32",
    ])  # fmt: skip
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "| file | derain | dehaze | mean | qualifies |"


def test_validate_without_a_needed_folder_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiny_export(tmp_path / "m.pth", 1)
    with pytest.raises(SystemExit) as stop:
        average_weights.main(["validate", str(tmp_path / "m.pth"), "--de_type", "deblur"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--val_deblur_dir" in error


def box_filter_export(path: Path, blend: float) -> None:
    """A tiny export whose output is (1 - blend) * input + blend * its 3x3 box mean, per
    channel: the head copies RGB into the first channels, every group and the body's last
    convolution are zero (each adds nothing to its skip), the tail is the filter. Box means
    remove noise of sigma 50 (blend 1 more than blend 0.5); blend 0 is the input itself."""
    model = AirNet(**SIZE)
    with torch.no_grad():
        for parameter in model.R.parameters():
            parameter.zero_()
        for channel in range(3):
            model.R.head[0].weight[channel, channel, 1, 1] = 1.0
            model.R.tail[0].weight[channel, channel] = blend / 9
            model.R.tail[0].weight[channel, channel, 1, 1] += 1.0 - blend
    export_model(model, argparse.Namespace(**SIZE, de_type=["denoise_50"]), path)


def validate_table(argv: list[str], capsys: pytest.CaptureFixture) -> dict[str, list[str]]:
    """Run ``validate`` on the sigma-50 split; {first cell: the other cells} of each row."""
    average_weights.main([
        "validate", *argv,
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_images", "1", "--val_crop", "32",
    ])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| file | denoise_50 | mean | qualifies |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: row[1:] for row in rows}


def test_validate_against_the_shipped_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Decision 14 through ``validate --reference``: each type's column holds the export, the
    shipped file and the input; a shipped file that is better makes an export that beats its
    input fail, one that is worse leaves it passing."""
    export, better, worse = tmp_path / "mild.pth", tmp_path / "box.pth", tmp_path / "none.pth"
    for path, blend in ((export, 0.5), (better, 1.0), (worse, 0.0)):
        box_filter_export(path, blend)
    alone = validate_table([str(export)], capsys)
    assert list(alone) == [str(export), "input (degraded)"]
    assert alone[str(export)][-1] == "yes"  # above its input, nothing shipped to compare
    psnr_export, psnr_input = float(alone[str(export)][0]), float(alone["input (degraded)"][0])
    assert psnr_export > psnr_input

    table = validate_table([str(export), "--reference", str(better)], capsys)
    assert list(table) == [f"shipped: {better}", str(export), "input (degraded)"]
    assert float(table[f"shipped: {better}"][0]) > psnr_export + 0.05
    assert table[str(export)] == alone[str(export)][:-1] + ["no"]
    assert table["input (degraded)"] == alone["input (degraded)"]

    table = validate_table([str(export), "--reference", str(worse)], capsys)
    assert float(table[f"shipped: {worse}"][0]) < psnr_export
    assert table[str(export)][-1] == "yes"


def test_validate_with_an_unreadable_reference_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    box_filter_export(tmp_path / "m.pth", 0.5)
    with pytest.raises(SystemExit) as stop:
        validate_table(
            [str(tmp_path / "m.pth"), "--reference", str(tmp_path / "absent.pth")], capsys
        )
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "absent.pth" in error


def ship(argv: list[str]) -> None:
    average_weights.main([
        "ship", *argv,
        "--val_denoise_dir", str(REPO / "data/test/denoise/CBSD68"),
        "--val_images", "1", "--val_crop", "32",
    ])  # fmt: skip


def test_ship_writes_a_qualifying_export_with_its_facts_and_refuses_others(tmp_path: Path) -> None:
    """``ship``: an export that passes the rule (against the shipped file) is written as
    safetensors with its size, types, version and verdict (decision 4); one that does not is
    refused with exit 1 and nothing is written."""
    export, better, worse = tmp_path / "mild.pth", tmp_path / "box.pth", tmp_path / "none.pth"
    for path, blend in ((export, 0.5), (better, 1.0), (worse, 0.0)):
        box_filter_export(path, blend)
    shipped = tmp_path / "ckpt" / "shipped.safetensors"
    ship([str(export), "--reference", str(worse), "--output", str(shipped), "--version", "3"])
    weights = read_weights(shipped)
    assert weights.format == "safetensors" and weights.de_type == ["denoise_50"]
    assert weights.size == {"n_feats": 8, "n_groups": 1, "n_blocks": 1}
    assert weights.metadata["version"] == 3 and weights.metadata["qualifies"] is True
    assert weights.metadata["judged_against"] == "none.pth"
    assert set(weights.metadata["validation_psnr"]) == {"denoise_50"}
    original = load_airnet(export).state_dict()
    assert all(torch.equal(load_airnet(shipped).state_dict()[k], v) for k, v in original.items())

    refused = tmp_path / "ckpt" / "refused.safetensors"
    with pytest.raises(SystemExit) as stop:
        ship([str(export), "--reference", str(better), "--output", str(refused), "--version", "4"])
    assert stop.value.code == 1 and not refused.exists()
