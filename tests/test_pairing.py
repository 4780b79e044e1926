"""utils/pairing.py: the one pairing rule of training, validation, testing and --check_data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.pairing import (
    MIN_SIDE,
    LayoutError,
    check_pairs,
    describe_layouts,
    find_pairs,
    has_layout,
    pair_files,
    partner_stems,
    reside_ids,
    too_small,
)


def write(path: Path, height: int = 20, width: int = 24, seed: int = 0) -> Path:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def names(scan) -> list[tuple[str, str]]:
    """(pair name, clean file relative to the scanned folder) of every pair."""
    return [(p.name, p.clean.relative_to(scan.folder).as_posix()) for p in scan.pairs]


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("0001_0.8_0.2", ["0001", "0001_0.8"]),  # SOTS/OTS outdoor <id>_<A>_<beta>
        ("0002_1_0.04", ["0002", "0002_1"]),
        ("1_1_0.90179", ["1", "1_1"]),  # ITS <id>_<k>_<beta>
        ("1400_10", ["1400"]),  # SOTS indoor <id>_<k>
        ("my_photo_01", ["my_photo"]),  # issue 20 item 4: "photo" is not a number
        ("img_2020_x1", []),
        ("0001", []),
        ("_1", []),
    ],
)
def test_reside_namings_only_where_they_match(stem, expected):
    assert reside_ids(stem) == expected


def test_sots_indoor_naming_pairs_with_its_clear_image(tmp_path):
    """Issue 33 item 10: SOTS indoor's hazy 1400_1.png ... 1400_10.png beside clear 1400.png
    were all skipped ("no clean partner"), the RESIDE rule knowing only <id>_<A>_<B>."""
    for k in (1, 2, 10):
        write(tmp_path / f"hazy/1400_{k}.png")
    write(tmp_path / "hazy/1_1_0.90179.png")  # ITS training naming
    write(tmp_path / "gt/1400.png")
    write(tmp_path / "gt/1.png")
    scan = find_pairs("dehaze", tmp_path, "test")
    assert scan.problems == []
    assert names(scan) == [
        ("1400_1.png", "gt/1400.png"),
        ("1400_10.png", "gt/1400.png"),
        ("1400_2.png", "gt/1400.png"),
        ("1_1_0.90179.png", "gt/1.png"),
    ]


def test_an_exact_same_stem_partner_wins_over_the_reside_id(tmp_path):
    write(tmp_path / "input/1400_1.png")
    write(tmp_path / "input/0001_0.8_0.2.png")
    write(tmp_path / "target/1400_1.png")
    write(tmp_path / "target/1400.png")
    write(tmp_path / "target/0001_0.8_0.2.png")
    write(tmp_path / "target/0001.png")
    scan = find_pairs("dehaze", tmp_path)
    assert names(scan) == [
        ("0001_0.8_0.2.png", "target/0001_0.8_0.2.png"),
        ("1400_1.png", "target/1400_1.png"),
    ]
    assert partner_stems("dehaze", Path("1400_1.png")) == ["1400_1", "1400"]


def test_own_dehaze_pairs_with_equal_names(tmp_path):
    """Issue 20 item 4: synthetic/my_photo_01.png + original/my_photo_01.png pair."""
    write(tmp_path / "synthetic/my_photo_01.png")
    write(tmp_path / "original/my_photo_01.png")
    scan = find_pairs("dehaze", tmp_path)
    assert names(scan) == [("my_photo_01.png", "original/my_photo_01.png")]
    assert scan.problems == []


def test_reside_training_layout_with_parts_and_other_extensions(tmp_path):
    write(tmp_path / "synthetic/part1/0001_0.8_0.2.jpg")
    write(tmp_path / "synthetic/part2/0001_1_0.04.jpg")
    write(tmp_path / "synthetic/part2/0002_0.9_0.1.png")
    write(tmp_path / "original/0001.jpg")
    write(tmp_path / "original/0002.jpg")
    write(tmp_path / "original/0002.png")  # PNG wins over another extension
    scan = find_pairs("dehaze", tmp_path)
    assert scan.layout == "synthetic/ + original/"
    assert names(scan) == [
        ("part1/0001_0.8_0.2.jpg", "original/0001.jpg"),
        ("part2/0001_1_0.04.jpg", "original/0001.jpg"),
        ("part2/0002_0.9_0.1.png", "original/0002.png"),
    ]


def test_partner_in_the_matching_subfolder_first(tmp_path):
    write(tmp_path / "input/a/x.png")
    write(tmp_path / "input/b/x.png")
    write(tmp_path / "target/a/x.png")
    write(tmp_path / "target/x.png")
    scan = find_pairs("derain", tmp_path)
    assert names(scan) == [("a/x.png", "target/a/x.png"), ("b/x.png", "target/x.png")]


def test_missing_partner_names_every_candidate_tried(tmp_path):
    write(tmp_path / "hazy/sub/0003_0.9_0.2.png")
    write(tmp_path / "gt/0004.png")
    scan = find_pairs("dehaze", tmp_path)
    assert scan.pairs == []
    ((path, reason),) = scan.problems
    assert path == tmp_path / "hazy/sub/0003_0.9_0.2.png"
    for folder in (tmp_path / "gt/sub", tmp_path / "gt"):
        for stem in ("0003", "0003_0.9_0.2"):
            assert str(folder / f"{stem}.*") in reason


def test_derain_official_names_and_both_layouts(tmp_path):
    write(tmp_path / "train/rainy/rain-1.png")
    write(tmp_path / "train/gt/norain-1.png")
    write(tmp_path / "test/input/rain-2.png")
    write(tmp_path / "test/target/rain-2.png")  # the same name wins over norain-2
    write(tmp_path / "test/target/norain-2.png")
    assert names(find_pairs("derain", tmp_path / "train")) == [("rain-1.png", "gt/norain-1.png")]
    assert names(find_pairs("derain", tmp_path / "test")) == [("rain-2.png", "target/rain-2.png")]
    assert partner_stems("derain", Path("rain-3.png")) == ["rain-3", "norain-3"]
    assert partner_stems("deblur", Path("rain-3.png")) == ["rain-3"]


def test_gopro_sequences_keep_their_names_and_ignore_blur_gamma(tmp_path):
    gopro = tmp_path / "GOPRO_Large/test"
    for sequence in ("GOPR0384_11_00", "GOPR0385_11_01"):
        for frame in ("000001.png", "000002.png"):
            write(gopro / sequence / "blur" / frame)
            write(gopro / sequence / "blur_gamma" / frame)
            write(gopro / sequence / "sharp" / frame)
    write(gopro / "GOPR0386_11_00/blur/000001.png")  # no sharp/: a problem, not an error
    scan = find_pairs("deblur", gopro)
    assert [p.name for p in scan.pairs] == [
        "GOPR0384_11_00/000001.png",
        "GOPR0384_11_00/000002.png",
        "GOPR0385_11_01/000001.png",
        "GOPR0385_11_01/000002.png",
    ]
    assert all(p.degraded.parent.name == "blur" for p in scan.pairs)
    assert all(p.clean.parent.name == "sharp" for p in scan.pairs)
    assert all(p.degraded.parent.parent == p.clean.parent.parent for p in scan.pairs)
    ((path, reason),) = scan.problems
    assert path.parts[-3:] == ("GOPR0386_11_00", "blur", "000001.png")
    assert "GOPR0386_11_00/sharp/000001.*" in reason
    # the GoPro root: train/ for training, test/ for testing, neither for validation
    write(tmp_path / "GOPRO_Large/train/GOPR0372_07_00/blur/000047.png")
    write(tmp_path / "GOPRO_Large/train/GOPR0372_07_00/sharp/000047.png")
    root = tmp_path / "GOPRO_Large"
    assert [p.name for p in find_pairs("deblur", root).pairs] == ["GOPR0372_07_00/000047.png"]
    assert len(find_pairs("deblur", root, "test").pairs) == 4
    with pytest.raises(LayoutError):
        find_pairs("deblur", root, "val")


def test_deblur_single_folder_and_input_target(tmp_path):
    write(tmp_path / "a/blur/1.png")
    write(tmp_path / "a/sharp/1.png")
    write(tmp_path / "b/input/1.png")
    write(tmp_path / "b/target/1.png")
    assert names(find_pairs("deblur", tmp_path / "a")) == [("1.png", "sharp/1.png")]
    assert names(find_pairs("deblur", tmp_path / "b")) == [("1.png", "target/1.png")]


def test_lol_folder_and_root_per_split(tmp_path):
    root = tmp_path / "LOLdataset"
    write(root / "our485/low/2.png")
    write(root / "our485/high/2.png")
    write(root / "eval15/low/1.png")
    write(root / "eval15/high/1.jpg")  # the extension may differ
    assert names(find_pairs("lowlight", root / "our485")) == [("2.png", "high/2.png")]
    train = find_pairs("lowlight", root)
    assert [(p.name, p.clean.parent.parent.name) for p in train.pairs] == [("2.png", "our485")]
    test = find_pairs("lowlight", root, split="test")
    assert [(p.name, p.clean.name) for p in test.pairs] == [("1.png", "1.jpg")]
    assert "eval15/" in test.layout
    with pytest.raises(LayoutError, match="validation takes a held-out folder"):
        find_pairs("lowlight", root, split="val")  # never eval15 nor the training part
    assert has_layout("lowlight", root, "test") and not has_layout("lowlight", root, "val")


def test_rain100l_as_the_other_repositories_ship_it(tmp_path):
    """Rain100L's other public copies: JORDER/RGR's rain/ + norain/ with equal names, and
    PReNet's rain-N beside norain-N in one folder (RainTrainL) or rainy/ with norain-N
    beside it (the test set); a file never pairs with itself."""
    write(tmp_path / "rgr/rain/norain-1.png")
    write(tmp_path / "rgr/norain/norain-1.png")
    assert names(find_pairs("derain", tmp_path / "rgr")) == [
        ("norain-1.png", "norain/norain-1.png")
    ]

    flat = tmp_path / "RainTrainL"
    for name in ("rain-1", "norain-1", "rain-2", "norain-2", "rain-3", "rainstreak-1"):
        write(flat / f"{name}.png")
    scan = find_pairs("derain", flat)
    assert names(scan) == [("rain-1.png", "norain-1.png"), ("rain-2.png", "norain-2.png")]
    assert [(path.name, "norain-3" in reason) for path, reason in scan.problems] == [
        ("rain-3.png", True)  # unpaired, and not paired with itself
    ]
    assert "in one folder" in scan.layout

    test = tmp_path / "Rain100L"
    write(test / "rainy/rain-001.png")
    write(test / "norain-001.png")
    assert names(find_pairs("derain", test)) == [("rain-001.png", "norain-001.png")]
    assert has_layout("derain", test) and not has_layout("dehaze", test)
    assert "PReNet" in describe_layouts("derain") and "rain/ + norain/" in describe_layouts(
        "derain"
    )

    # Photos with no norain-N file are not a derain folder.
    write(tmp_path / "photos/rain-forest.png")
    assert not has_layout("derain", tmp_path / "photos")


def test_lol_v2_low_and_normal(tmp_path):
    """LOL-v2 (Real_captured/Train): Low/low00001.png + Normal/normal00001.png."""
    write(tmp_path / "Low/low00001.png")
    write(tmp_path / "Normal/normal00001.png")
    assert names(find_pairs("lowlight", tmp_path)) == [("low00001.png", "Normal/normal00001.png")]
    assert partner_stems("lowlight", Path("low7.png")) == ["low7", "normal7"]
    assert partner_stems("lowlight", Path("7.png")) == ["7"]


def test_folder_names_in_any_case(tmp_path):
    write(tmp_path / "Hazy/0001_0.8_0.2.jpg")
    write(tmp_path / "GT/0001.png")
    assert names(find_pairs("dehaze", tmp_path)) == [("0001_0.8_0.2.jpg", "GT/0001.png")]


def test_layouts_are_per_type(tmp_path):
    write(tmp_path / "low/1.png")
    write(tmp_path / "high/1.png")
    assert has_layout("lowlight", tmp_path)
    for de_type in ("derain", "dehaze", "deblur"):
        assert not has_layout(de_type, tmp_path)
    with pytest.raises(LayoutError) as error:
        find_pairs("derain", tmp_path)
    assert str(tmp_path) in str(error.value)
    assert "rainy/ + gt/" in str(error.value) and "input/ + target/" in str(error.value)
    with pytest.raises(LayoutError, match="not found"):
        find_pairs("derain", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="denoise_25"):
        find_pairs("denoise_25", tmp_path)
    assert "GoPro" in describe_layouts("deblur") and "our485/" in describe_layouts("lowlight")


def test_too_small_is_a_side_under_16():
    assert MIN_SIDE == 16
    assert too_small(15, 400) and too_small(400, 15) and too_small(12, 12)
    assert not too_small(16, 16) and not too_small(16, 4000)


def test_check_pairs_reads_headers_and_names_the_file_at_fault(tmp_path):
    write(tmp_path / "input/good.png", 20, 24)
    write(tmp_path / "target/good.png", 20, 24)
    write(tmp_path / "input/tiny.png", 12, 12)
    write(tmp_path / "target/tiny.png", 12, 12)
    write(tmp_path / "input/edge.png", 16, 30)
    write(tmp_path / "target/edge.png", 16, 30)
    write(tmp_path / "input/size.png", 20, 24)
    write(tmp_path / "target/size.png", 24, 20)
    write(tmp_path / "input/broken.png")
    (tmp_path / "target/broken.png").write_bytes(b"not a png")
    kept, problems = check_pairs(find_pairs("lowlight", tmp_path).pairs)
    assert sorted(p.name for p in kept) == ["edge.png", "good.png"]
    reasons = {path.relative_to(tmp_path).as_posix(): reason for path, reason in problems}
    assert set(reasons) == {"target/broken.png", "input/tiny.png", "input/size.png"}
    assert "cannot read" in reasons["target/broken.png"]
    assert "too small" in reasons["input/tiny.png"] and "12x12" in reasons["input/tiny.png"]
    assert "target/size.png is 20x24" in reasons["input/size.png"]


def test_pair_files_from_a_list(tmp_path):
    listed = [
        write(tmp_path / "synthetic/part1/0001_0.8_0.2.jpg"),
        tmp_path / "synthetic/part1/0009_0.8_0.2.jpg",  # listed, absent
    ]
    write(tmp_path / "original/0001.jpg")
    scan = pair_files("dehaze", listed, tmp_path / "synthetic", tmp_path / "original")
    assert [p.name for p in scan.pairs] == ["part1/0001_0.8_0.2.jpg"]
    assert scan.problems == [(listed[1], "listed but not found")]
