"""Figures for ckpt/MODEL_CARD.md: the training curve and input | restored | target strips.

    python scripts/card_figures.py curve --log runs/logs/log.jsonl --output ckpt/curve.png
    python scripts/card_figures.py curve --log stage1/log.jsonl stage2/log.jsonl \\
        --start 0 1200 --output ckpt/curve.png
    python scripts/card_figures.py strips --images output/test/images --sets SET_DIRS... \\
        --output ckpt/examples.jpg

``curve`` plots the training L1 and contrastive loss and the validation PSNR of every type
against the step, and for a --loss_weighting tur run each type's mean uncertainty ū (needs
matplotlib: requirements-tools.txt). ``strips`` takes the first image of
each task that test.py --save_images restored, with its degraded input made as test.py makes it
(same crop, same seeded noise), and stacks input | restored | target rows, with PIL only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.cli import ArgumentParser, Range  # noqa: E402
from utils.degradations import add_gaussian_noise, crop_to_multiple, noise_rng  # noqa: E402
from utils.eval_dataset import (  # noqa: E402
    LayoutError,
    find_dehaze_sets,
    find_denoise_sets,
    find_derain_sets,
)
from utils.image_io import ImageReadError, read_image  # noqa: E402
from utils.optional import require  # noqa: E402
from utils.outputs import OutputError, check_writable_file  # noqa: E402
from utils.paths import show_names_in_output  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402


def read_stages(logs: list[Path], starts: list[int]) -> list[dict]:
    """The records of every stage's log.jsonl, their steps shifted to the whole run's count.

    A stage that began with --init_from counts its steps from 0; ``start`` is the step of the
    earlier stage that it was initialised from, and the earlier stage's records after that
    step are dropped (they are not in the later stage's history). Likewise, within a log, a
    resumed run's record replaces those of its kind that the interrupted attempt wrote at the
    same or a later step.
    """
    records: list[dict] = []
    for log, start in zip(logs, starts, strict=True):
        records = [r for r in records if r["step"] <= start]
        for line in log.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                record = {**record, "step": record["step"] + start}
                records = [
                    r for r in records if r["kind"] != record["kind"] or r["step"] < record["step"]
                ]
                records.append(record)
    return records


def uncertainty_series(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """Per type, (steps, ū) of the training records that hold ``u/TYPE`` (--loss_weighting
    tur); empty for a run with the paper's plain L1."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        if record["kind"] != "train":
            continue
        for name, value in record.items():
            if name.startswith("u/"):
                steps, values = series.setdefault(name[2:], ([], []))
                steps.append(record["step"])
                values.append(value)
    return series


def plot_curve(logs: list[Path], starts: list[int], output: Path) -> None:
    matplotlib = require("matplotlib", "requirements-tools.txt")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_stages(logs, starts)
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val" and r["step"] > 0]
    uncertainty = uncertainty_series(records)
    panels = 3 if uncertainty else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    loss_axis, val_axis = axes[0], axes[1]
    phase_2 = [r for r in train if r["l1"] > 0]
    loss_axis.plot([r["step"] for r in phase_2], [r["l1"] for r in phase_2], label="L1", lw=0.8)
    steps = [r["step"] for r in train]
    loss_axis.plot(steps, [r["ce"] / 10 for r in train], label="contrastive / 10", lw=0.8)
    loss_axis.set(xlabel="step", ylabel="loss", title="training (mean of --log_every steps)")
    loss_axis.set_ylim(0, 0.6)
    names = sorted({k for r in val for k in r if k.startswith("psnr/")})
    for name in names:
        val_axis.plot([r["step"] for r in val], [r[name] for r in val], marker=".", label=name[5:])
    val_axis.set(xlabel="step", ylabel="PSNR (dB)", title="validation split (held-out train data)")
    if uncertainty:
        u_axis = axes[2]
        for de_type, (steps, values) in uncertainty.items():
            u_axis.plot(steps, values, lw=0.8, label=de_type)
        u_axis.set(xlabel="step", ylabel="mean u of the type", title="task uncertainty (tur)")
        u_axis.legend(fontsize=8)
    for start in starts[1:]:  # where a later stage took over (--init_from)
        for axis in axes:
            axis.axvline(start, color="grey", ls=":", lw=0.8)
    loss_axis.legend()
    val_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=90)


def first_pairs(
    sets: list[Path], clean_sets: list[Path] | None = None
) -> list[tuple[str, np.ndarray, Path]]:
    """(task, degraded input as test.py makes it, target path) of the first image per task;
    for ``clean_sets`` (test.py --clean_path) the input is the photo itself."""
    out = []
    for image_set in find_denoise_sets([p for p in sets if p.name.upper().startswith("CBSD")]):
        pair = image_set.pairs[0]
        clean = crop_to_multiple(read_image(pair.target), 16)
        for sigma in (15, 25, 50):
            noisy = add_gaussian_noise(clean, sigma, noise_rng(pair.name, sigma, 0))
            out.append((f"{image_set.name}/denoise_{sigma}", noisy, pair.target))
    finders = {"derain": find_derain_sets, "dehaze": find_dehaze_sets}
    for task, finder in finders.items():
        for image_set in finder([p for p in sets if not p.name.upper().startswith("CBSD")]):
            if not image_set.pairs:  # a folder of the other task
                continue
            pair = image_set.pairs[0]
            degraded = crop_to_multiple(read_image(pair.degraded), 16)
            out.append((f"{image_set.name}/{task}", degraded, pair.target))
    for image_set in find_denoise_sets(clean_sets or []):
        pair = image_set.pairs[0]
        out.append(
            (f"{image_set.name}/clean", crop_to_multiple(read_image(pair.target), 16), pair.target)
        )
    return out


def strips(
    images: Path,
    sets: list[Path],
    output: Path,
    width: int = 320,
    clean_sets: list[Path] | None = None,
) -> None:
    """Stack input | restored | target rows (a clean photo's row: photo | output | photo)."""
    rows = []
    for task_path, degraded, target_path in first_pairs(sets, clean_sets):
        set_name, task = task_path.split("/")
        restored_path = images / set_name / task / f"{target_path.stem}.png"
        if task in ("derain", "dehaze"):
            matches = sorted((images / set_name / task).glob("*.png"))
            if not matches:  # test.py did not run this task on this set
                continue
            restored_path = matches[0]
        restored = np.asarray(Image.open(restored_path).convert("RGB"))
        target = crop_to_multiple(read_image(target_path), 16)
        row = np.concatenate([degraded, restored, target], axis=1)
        scale = 3 * width / row.shape[1]
        size = (3 * width, round(row.shape[0] * scale))
        rows.append(np.asarray(Image.fromarray(row).resize(size, Image.Resampling.LANCZOS)))
    Image.fromarray(np.concatenate(rows, axis=0)).save(output)


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    curve = sub.add_parser("curve")
    curve.add_argument(
        "--log", type=Path, nargs="+", required=True, help="log.jsonl of each stage, in order"
    )
    curve.add_argument(
        "--start",
        type=Range(int, 0, 10**9),
        nargs="+",
        help="the step each stage began from (0 for the first; a later stage's --init_from "
        "checkpoint step); default: 0 each",
    )
    curve.add_argument("--output", type=Path, required=True)
    strip = sub.add_parser("strips")
    strip.add_argument("--images", type=Path, required=True, help="test.py's OUTPUT/images")
    strip.add_argument("--sets", type=Path, nargs="+", required=True)
    strip.add_argument(
        "--clean_sets", type=Path, nargs="*", default=[], help="test.py's --clean_path folders"
    )
    strip.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    try:
        check_writable_file(args.output, "--output")
    except OutputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.what == "curve":
        starts = args.start or [0] * len(args.log)
        if len(starts) != len(args.log):
            parser.error("give one --start per --log")
        require("matplotlib", "requirements-tools.txt")  # before any other check
        missing = [str(log) for log in args.log if not log.is_file()]
        if missing:
            parser.error(f"--log: no such file: {' '.join(missing)}")
        plot_curve(args.log, starts, args.output)
    else:
        try:
            strips(args.images, args.sets, args.output, clean_sets=args.clean_sets)
        except (LayoutError, ImageReadError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)  # a missing folder or image
            raise SystemExit(2) from None


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
