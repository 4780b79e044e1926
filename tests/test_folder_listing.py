"""What a folder lists (issue 33 items 3 and 9): linked folders are followed everywhere images
are listed, a link cycle ends, a link that leads nowhere is named like any unreadable file,
and a folder lists every format the installed Pillow decodes, as a file named alone is read."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from tests.test_demo import demo
from tests.test_five_task_data import make_split
from utils.image_files import IMAGE_EXTENSIONS, images_under, list_images
from utils.pairing import find_pairs
from utils.train_dataset import scan_training_data


def write(path: Path, seed: int = 0, size: int = 24, image_format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, image_format)
    return path


def run_demo(test_path: Path, out: Path, ckpt: Path) -> int:
    argv = ["--test_path", str(test_path), "--output_path", str(out), "--ckpt", str(ckpt)]
    return demo.main(demo.build_parser().parse_args([*argv, "--device", "cpu"]))


# ---------------------------------------------------------------------------------------------
# Item 3: symbolic links
# ---------------------------------------------------------------------------------------------


def linked_photo_folder(tmp_path: Path) -> Path:
    """denoise/ with 2 photos of its own and WED/, BSD/ linking to folders elsewhere (2 each),
    plus a link back to denoise/ itself (a cycle)."""
    denoise = tmp_path / "denoise"
    for k in range(2):
        write(denoise / f"own{k}.png", k)
        write(tmp_path / "elsewhere/wed" / f"wed{k}.png", 10 + k)
        write(tmp_path / "elsewhere/bsd" / f"bsd{k}.png", 20 + k)
    (denoise / "WED").symlink_to(tmp_path / "elsewhere/wed")
    (denoise / "BSD").symlink_to(tmp_path / "elsewhere/bsd")
    (denoise / "WED" / "back").symlink_to(denoise)  # a cycle through a linked folder
    return denoise


def test_training_follows_linked_folders_without_looping(tmp_path):
    """A --denoise_dir whose WED/ and BSD/ are links trained on 2 of 6 photos, silently."""
    denoise = linked_photo_folder(tmp_path)
    (scan,) = scan_training_data(["denoise_25"], {"denoise": denoise})
    assert sorted(clean.name for _, clean in scan.items) == [
        "bsd0.png", "bsd1.png", "own0.png", "own1.png", "wed0.png", "wed1.png",
    ]  # fmt: skip
    assert scan.skipped == []
    assert len(images_under(denoise)) == 6  # each real folder once, the cycle ends


def test_make_split_takes_every_photo_under_its_clean_dir(tmp_path):
    """scripts/make_split.py --clean_dir listed only the folder's own files (2 of 6 here, the
    official Train/Denoise/{WED,BSD}/ layout none); photos of one name in two folders keep
    their folder in their split name."""
    denoise = linked_photo_folder(tmp_path)
    write(tmp_path / "elsewhere/bsd" / "own0.png", 30)  # the name of denoise/own0.png
    split = tmp_path / "split"
    argv = ["--clean_dir", str(denoise), "--output", str(split), "--val_clean", "2"]
    assert make_split.main(argv) == 0
    train, val = (
        sorted(p.name for p in (split / part / "denoise").iterdir()) for part in ("train", "val")
    )
    assert len(train) == 5 and len(val) == 2 and not set(train) & set(val)
    assert {"BSD_own0.png", "denoise_own0.png"} <= set(train + val)
    assert len(list((split / "val/dehaze/input").iterdir())) == 2


def test_pairing_follows_a_linked_part_folder(tmp_path):
    write(tmp_path / "parts/part2/0002_0.9_0.1.png")
    write(tmp_path / "haze/synthetic/part1/0001_0.8_0.2.png")
    (tmp_path / "haze/synthetic/part2").symlink_to(tmp_path / "parts/part2")
    for stem in ("0001", "0002"):
        write(tmp_path / f"haze/original/{stem}.png", 1)
    scan = find_pairs("dehaze", tmp_path / "haze")
    names = [pair.name for pair in scan.pairs]
    assert names == ["part1/0001_0.8_0.2.png", "part2/0002_0.9_0.1.png"]


def test_a_link_that_leads_nowhere_is_named_as_unreadable(tmp_path, tiny_ckpt, caplog):
    """demo.py restored the good file and never mentioned the dangling link; training passed
    over it in silence."""
    folder = tmp_path / "in"
    write(folder / "good.png")
    (folder / "gone.png").symlink_to(tmp_path / "deleted.png")
    (folder / "self.png").symlink_to(folder / "self.png")  # a link to itself
    with caplog.at_level(logging.ERROR):
        assert run_demo(folder, tmp_path / "out", tiny_ckpt) == 1
    assert (tmp_path / "out/good.png").is_file()
    assert f"{folder / 'gone.png'}: a link that leads nowhere" in caplog.text
    assert f"{folder / 'self.png'}: a link that leads nowhere (a loop of links" in caplog.text
    (scan,) = scan_training_data(["denoise_25"], {"denoise": folder})
    assert [path.name for path, _ in scan.skipped] == ["gone.png", "self.png"]
    assert all(reason.startswith("a link that leads nowhere") for _, reason in scan.skipped)


# ---------------------------------------------------------------------------------------------
# Item 9: formats a folder lists
# ---------------------------------------------------------------------------------------------


def test_a_folder_lists_every_format_pillow_decodes(tmp_path, tiny_ckpt, caplog):
    """A folder of .avif photos gave "no images" although each file alone was restored."""
    write(tmp_path / "in/photo.avif", image_format="AVIF")
    write(tmp_path / "in/scan.tga", 1, image_format="TGA")
    write(tmp_path / "in/frame.ppm", 2, image_format="PPM")
    (tmp_path / "in/data.h5").write_bytes(b"\x89HDF\r\n\x1a\n")  # Pillow only identifies HDF5
    assert {".avif", ".tga", ".ppm", ".qoi"} <= IMAGE_EXTENSIONS
    assert not {".h5", ".mpg", ".txt"} & IMAGE_EXTENSIONS
    with caplog.at_level(logging.INFO):
        listed = [path.name for path in list_images(tmp_path / "in")]
    assert listed == ["frame.ppm", "photo.avif", "scan.tga"]
    assert "skipping " + str(tmp_path / "in/data.h5") in caplog.text
    assert run_demo(tmp_path / "in", tmp_path / "out", tiny_ckpt) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "frame.png", "photo.png", "scan.png",
    ]  # fmt: skip
