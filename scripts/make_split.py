"""Split training data into a training part and a held-out validation part, as folders.

    python scripts/make_split.py --clean_dir CBSD432/ --derain_dir Rain100L_train/ \\
        --lowlight_dir LOL/our485 --output ~/airnet_data --val_clean 32 --val_derain 20 \\
        --val_lowlight 15 --val_deblur

writes (symbolic links to the originals, nothing copied, except the synthetic images):

    OUTPUT/train/denoise/             clean photos for noise (and synthetic haze/rain/blur)
    OUTPUT/train/derain/{rainy,gt}/   rainy/rain-N.png <-> gt/norain-N.png
    OUTPUT/train/lowlight/{low,high}/ LOL training pairs, equal names
    OUTPUT/val/denoise/               held-out clean photos (train.py adds seeded noise)
    OUTPUT/val/derain/{input,target}/
    OUTPUT/val/dehaze/{input,target}/ synthetic haze on the held-out photos, written as PNG:
                                      input/STEM_A_B.png <-> target/STEM.png, A and beta seeded
    OUTPUT/val/deblur/{input,target}/ with --val_deblur: synthetic camera-shake blur on the
                                      held-out photos (utils/synthetic.py), seeded, as PNG
    OUTPUT/val/lowlight/{input,target}/ held-out LOL training pairs

The held-out images are drawn by a seeded permutation, so the split is the same on every
machine. LOL pairs are held out by groups: pairs whose low or high images are byte-identical
(in our485, 152 of the 485 pairs share their high image with another pair, in 66 groups of
2 to 6) stay on one side, so no validation target is also a training target.
``--lowlight_dir`` takes training pairs only: a LOL root means its ``our485/``, and a path
through ``eval15/`` or ``test/`` (the test set) is refused. Model selection uses OUTPUT/val;
the test sets stay untouched. Pairs are found by ``utils/pairing.py``, as training finds them.
``--exclude_test data/benchmarks`` (the benchmark fingerprints, or folders of test images)
leaves out every photo and pair with a side that is a test image: equal pixels, or the same
photo resized, re-encoded, flipped or turned (``utils/fingerprints.py``; decision 13).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.cli import SEED, ArgumentParser, Range  # noqa: E402
from utils.fingerprints import find_test_content, load_references  # noqa: E402
from utils.image_files import (  # noqa: E402
    ImageReadError,
    distinct_names,
    images_under,
    read_image,
    save_image,
)
from utils.outputs import check_writable_folder  # noqa: E402
from utils.pairing import LayoutError, Pair, PairScan, find_pairs  # noqa: E402
from utils.paths import name_bytes, show_names_in_output, shown  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402
from utils.synthetic import add_haze, motion_blur, random_haze_parameters  # noqa: E402

TEST_FOLDERS = {"eval15", "test"}  # LOL's test set as released and as extracted
BLUR_SALT = 1  # keeps the blur's random stream apart from the haze's of the same photo


def held_out(items: list, count: int, seed: int) -> set:
    """``count`` items drawn by a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(items))
    return {items[index] for index in order[:count]}


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(source.resolve())


def write_val_haze(clean_path: Path, name: str, folder: Path, seed: int) -> None:
    """A hazy copy of one held-out photo, its parameters (utils/synthetic.py) seeded by
    (seed, ``name``: its unique name in the split); A and beta rounded as RESIDE names them,
    and made with those values."""
    rng = np.random.default_rng([seed, zlib.crc32(name_bytes(name))])
    parameters = random_haze_parameters(rng)
    parameters["atmosphere"] = round(parameters["atmosphere"], 2)
    parameters["beta"] = round(parameters["beta"], 3)
    clean = read_image(clean_path)
    stem = Path(name).stem
    hazy = f"{stem}_{parameters['atmosphere']}_{parameters['beta']}.png"
    save_image(folder / "input" / hazy, add_haze(clean, **parameters))
    save_image(folder / "target" / f"{stem}.png", clean)


def write_val_blur(clean_path: Path, name: str, folder: Path, seed: int) -> None:
    """A motion-blurred copy of one held-out photo, the kernel seeded by (seed, ``name``: its
    unique name in the split)."""
    rng = np.random.default_rng([seed, zlib.crc32(name_bytes(name)), BLUR_SALT])
    clean = read_image(clean_path)
    stem = Path(name).stem
    save_image(folder / "input" / f"{stem}.png", motion_blur(clean, rng))
    save_image(folder / "target" / f"{stem}.png", clean)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def identical_groups(pairs: list[Pair]) -> list[tuple[Pair, ...]]:
    """Pairs grouped so that pairs sharing a byte-identical low or high image are together
    (connected components over the files' SHA-256), each group in name order."""
    parent = list(range(len(pairs)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_with: dict[tuple[str, str], int] = {}
    for index, pair in enumerate(pairs):
        for side, path in (("low", pair.degraded), ("high", pair.clean)):
            key = (side, _digest(path))
            if key in first_with:
                parent[root(index)] = root(first_with[key])
            else:
                first_with[key] = index
    groups: dict[int, list[Pair]] = {}
    for index, pair in enumerate(pairs):
        groups.setdefault(root(index), []).append(pair)
    return [tuple(group) for group in groups.values()]


def held_out_groups(groups: list[tuple[Pair, ...]], count: int, seed: int) -> set[Pair]:
    """Whole groups in a seeded order, each taken while the total stays within ``count``."""
    chosen: set[Pair] = set()
    for index in np.random.default_rng(seed).permutation(len(groups)):
        if len(chosen) == count:
            break
        if len(chosen) + len(groups[index]) <= count:
            chosen.update(groups[index])
    return chosen


def report_problems(what: str, problems: list[tuple[Path, str]]) -> None:
    for path, reason in problems:
        print(f"{what}: skipped {path}: {reason}", file=sys.stderr)


def split_derain(
    scan: PairScan, output: Path, count: int, seed: int, excluded: set[Path] | None = None
) -> str:
    """Rain pairs into train/ and val/, leaving out the pairs with a side in ``excluded``."""
    report_problems("derain", scan.problems)
    excluded = excluded or set()
    pairs = [p for p in scan.pairs if not {p.degraded, p.clean} & excluded]
    val = held_out(pairs, count, seed)
    for pair in pairs:
        if pair in val:
            link(pair.degraded, output / "val/derain/input" / pair.name)
            link(pair.clean, output / "val/derain/target" / pair.name)
        else:
            link(pair.degraded, output / "train/derain/rainy" / pair.name)
            clean_name = Path(pair.name).with_name(pair.clean.name)
            link(pair.clean, output / "train/derain/gt" / clean_name)
    left_out = len(scan.pairs) - len(pairs)
    return f"rain pairs {len(pairs) - len(val)} train / {len(val)} val ({left_out} left out)"


def lowlight_training_pairs(lowlight_dir: Path) -> PairScan:
    """LOL's training pairs; LayoutError for a folder that looks like the test set: a path
    through ``eval15/`` (the release) or ``test/`` (``extract_benchmarks.sh``'s test/LOL)."""
    scan = find_pairs("lowlight", lowlight_dir, "train")
    paths = [lowlight_dir.resolve()]
    paths += [path.resolve() for pair in scan.pairs for path in (pair.degraded, pair.clean)]
    if any(TEST_FOLDERS & set(path.parts) for path in paths):
        raise LayoutError(
            f"--lowlight_dir {lowlight_dir}: LOL's test set (eval15/ or test/ in its path); "
            f"give the training pairs (our485/, train/LOL or the LOL root)"
        )
    return scan


def split_lowlight(
    scan: PairScan, output: Path, count: int, seed: int, excluded: set[Path] | None = None
) -> str:
    """LOL pairs into train/ and val/ by groups (``identical_groups``), leaving out the pairs
    with a side in ``excluded``."""
    report_problems("lowlight", scan.problems)
    excluded = excluded or set()
    pairs = [p for p in scan.pairs if not {p.degraded, p.clean} & excluded]
    groups = identical_groups(pairs)
    val = held_out_groups(groups, count, seed)
    for pair in pairs:
        if pair in val:
            link(pair.degraded, output / "val/lowlight/input" / pair.name)
            link(pair.clean, output / "val/lowlight/target" / pair.name)
        else:
            link(pair.degraded, output / "train/lowlight/low" / pair.name)
            link(pair.clean, output / "train/lowlight/high" / pair.name)
    shared = sum(len(group) for group in groups if len(group) > 1)
    left_out = len(scan.pairs) - len(pairs)
    return (
        f"low-light pairs {len(pairs) - len(val)} train / {len(val)} val "
        f"({shared} pairs sharing identical images kept with their group, {left_out} left out)"
    )


HELD_OUT = Range(int, 0, 10**6)  # images or pairs held out for validation


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clean_dir",
        type=Path,
        required=True,
        help="clean photos, searched recursively (linked folders followed) as train.py's "
        "--denoise_dir",
    )
    parser.add_argument("--derain_dir", type=Path, help="rainy/rain-N.png + gt/norain-N.png")
    parser.add_argument(
        "--lowlight_dir",
        type=Path,
        help="LOL training pairs: low/ + high/ (our485, train/LOL), a LOL root, or "
        "input/ + target/; never eval15",
    )
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--val_clean", type=HELD_OUT, default=32, help="held-out clean photos")
    parser.add_argument("--val_derain", type=HELD_OUT, default=20, help="held-out rain pairs")
    parser.add_argument(
        "--val_lowlight", type=HELD_OUT, default=15, help="held-out low-light pairs (whole groups)"
    )
    parser.add_argument(
        "--val_deblur",
        action="store_true",
        help="also write synthetic motion blur on the held-out photos (val/deblur)",
    )
    parser.add_argument(
        "--exclude_test",
        type=Path,
        nargs="+",
        default=[],
        metavar="PATH",
        help="benchmark fingerprints (data/benchmarks, or one .json) or folders of test images "
        "(searched recursively): every training image that is a test image (equal pixels, or "
        "the same photo resized, re-encoded, flipped or turned: utils/fingerprints.py) is "
        "left out of the split and listed in OUTPUT/excluded_test_content.txt (decision 13)",
    )
    parser.add_argument("--seed", type=SEED, default=0)
    return parser


def exclude_test_content(images: list[Path], references: list[Path], output: Path) -> set[Path]:
    """The images among ``images`` that are test images of ``references`` (utils/fingerprints.py
    ``load_references``: fingerprint files or folders of test images), written to
    OUTPUT/excluded_test_content.txt as ``training file<TAB>benchmark<TAB>test image<TAB>match``
    lines, the nearest match of each."""
    if not references:
        return set()
    matches = find_test_content(images, load_references(references))
    output.mkdir(parents=True, exist_ok=True)
    lines = []
    for path, (match, *_) in sorted(matches.items()):
        how = "equal pixels" if match.exact else f"pHash {match.distance} bits"
        lines.append(shown(f"{path}\t{match.benchmark}\t{match.image}\t{how}"))
    text = "".join(line + "\n" for line in lines)
    (output / "excluded_test_content.txt").write_text(text, encoding="utf-8")
    return set(matches)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_writable_folder(args.output, "--output")
        # Subfolders and linked folders too, as train.py's --denoise_dir (the official
        # layout is Train/Denoise/{WED,BSD}/); photos of the same name in two folders keep
        # their folder in their name in the split (decision 9's rule).
        clean = images_under(args.clean_dir)
        if not clean:
            raise FileNotFoundError(f"--clean_dir {args.clean_dir}: no images")
        # Every folder is checked before anything is written.
        rain = None if args.derain_dir is None else find_pairs("derain", args.derain_dir)
        low = None if args.lowlight_dir is None else lowlight_training_pairs(args.lowlight_dir)
        paired = [pair for scan in (rain, low) if scan is not None for pair in scan.pairs]
        paired_files = [path for pair in paired for path in (pair.degraded, pair.clean)]
        excluded = exclude_test_content(clean + paired_files, args.exclude_test, args.output)
        kept_out = sum(path in excluded for path in clean)
        clean = [path for path in clean if path not in excluded]
        val_clean = held_out(clean, args.val_clean, args.seed)
        names = dict(zip(clean, distinct_names(clean, suffix=None), strict=True))
        for path in clean:
            part = "val" if path in val_clean else "train"
            link(path, args.output / part / "denoise" / names[path])
            if part == "val":
                write_val_haze(path, names[path], args.output / "val" / "dehaze", args.seed)
                if args.val_deblur:
                    write_val_blur(path, names[path], args.output / "val" / "deblur", args.seed)
        counts = [f"clean {len(clean) - len(val_clean)} train / {len(val_clean)} val"]
        if args.exclude_test:
            counts[0] += f" ({kept_out} left out: test content)"
        if rain is not None:
            counts.append(split_derain(rain, args.output, args.val_derain, args.seed, excluded))
        if low is not None:
            counts.append(split_lowlight(low, args.output, args.val_lowlight, args.seed, excluded))
    except (LayoutError, FileNotFoundError, OSError, ImageReadError, ValueError) as error:
        print(f"make_split.py: {error}", file=sys.stderr)
        return 2
    synthetic = "haze and blur" if args.val_deblur else "haze"
    print(f"{args.output}: " + ", ".join(counts) + f", synthetic {synthetic} on the val photos")
    return 0


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
