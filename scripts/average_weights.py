"""Validate model exports on a held-out split, and average the weights of several of them.

    python scripts/average_weights.py validate CKPT... --val_denoise_dir D --val_derain_dir R \\
        --val_dehaze_dir H [--val_deblur_dir B --val_lowlight_dir L] [--de_type ...] \\
        [--val_images 0 --val_crop 256] [--clean] [--reference SHIPPED]
    python scripts/average_weights.py average CKPT... --output averaged.pth
    python scripts/average_weights.py ship CKPT --output ckpt/NAME.safetensors --version N \
        [--reference SHIPPED] --val_..._dir ... [--clean]

``validate`` runs train.py's own validation (utils/validation.py: same images, crops, seeded
noise and metrics as the ``val`` records of log.jsonl) on each file and prints a markdown table:
a row per file with the shipping rule's verdict (decision 14, ``qualifies``: every type above its
input and, with ``--reference``, no more than 0.05 dB below the shipped file for the role; clean
photos, when ``--clean`` is given, kept within 30 dB and 3 grey levels), the shipped file's row
(scored once, on the same images) and the inputs' row, so that each type's column holds the
export, the shipped file and the input side by side. Exports of different runs, and averages of
them, are so compared on equal terms. The types are those the first file records
(``de_type``, decision 5; a five-task export needs ``--val_deblur_dir`` and ``--val_lowlight_dir``),
or ``--de_type``, or the paper's five.

``ship`` validates one export the same way and, only when it passes the rule (against
``--reference``, the file shipped for the role), writes it as safetensors with its size, trained
types, version, step, verdict and validation PSNR per type in the metadata (decision 4).

``average`` writes the uniform average of the weights of exports of one model size, in the
format of the first file (Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
Generalization", UAI 2018: checkpoints of one run late in training, at a low learning rate).
Floating-point parameters and BatchNorm statistics are averaged; integer buffers (the MoCo queue
pointer, BatchNorm's batch counter) and the MoCo queue, which only training reads, are the last
file's. The first file's other records are kept, its shipping-rule verdict (``qualifies``) is
not: it judged other weights. Exports in safetensors and ``.pth`` can be mixed. Pick what to ship
with ``validate``, never with the test sets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from net import load_airnet  # noqa: E402
from option import DE_TYPES, VAL_CROP, VAL_IMAGES  # noqa: E402
from utils.checkpoint import (  # noqa: E402
    MODEL_KWARGS,
    CheckpointError,
    infer_model_size,
    load_model_state,
    read_weights,
    save_safetensors_atomic,
    save_weights_as,
    trained_types,
)
from utils.cli import ArgumentParser, Range  # noqa: E402
from utils.outputs import check_writable_file  # noqa: E402
from utils.paths import show_names_in_output  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402
from utils.train_dataset import (  # noqa: E402
    CLEAN,
    TYPE_FOLDERS,
    DataError,
    build_validation_set,
)
from utils.validation import (  # noqa: E402
    REFERENCE_TOLERANCE,
    format_comparison,
    psnr_by_type,
    validate,
)

KEPT_FROM_LAST = ("E.E.queue",)  # read by training only; an average of queues means nothing
NOT_OF_THE_AVERAGE = ("qualifies",)  # an export's shipping-rule verdict (utils/validation.py)


def average_state_dicts(state_dicts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform average of floating-point tensors; other tensors (and KEPT_FROM_LAST) are the
    last dict's. All dicts must have the same keys and shapes."""
    if not state_dicts:
        raise ValueError("nothing to average")
    keys = list(state_dicts[-1])
    for index, state_dict in enumerate(state_dicts):
        # Sets, not lists: a safetensors file stores its keys sorted, a .pth in module order,
        # and the two formats of one model are averaged alike.
        missing, extra = set(keys) - set(state_dict), set(state_dict) - set(keys)
        if missing or extra:
            differ = [f"-{k}" for k in sorted(missing)[:3]] + [f"+{k}" for k in sorted(extra)[:3]]
            raise ValueError(
                f"file {index + 1} has other keys than the last file ({', '.join(differ)})"
            )
    averaged = {}
    for key in keys:
        last = state_dicts[-1][key]
        if not last.is_floating_point() or key in KEPT_FROM_LAST:
            averaged[key] = last.clone()
            continue
        stacked = torch.stack([state_dict[key].double() for state_dict in state_dicts])
        averaged[key] = stacked.mean(0).to(last.dtype)
    return averaged


def average_files(paths: list[Path], output: Path) -> None:
    """Write the average of ``paths`` to ``output`` in the first file's format."""
    loaded = [load_model_state(path) for path in paths]
    sizes = {str(kwargs) for _, kwargs in loaded}
    if len(sizes) > 1:
        raise ValueError(f"the files hold models of different sizes: {sorted(sizes)}")
    averaged = average_state_dicts([state_dict for state_dict, _ in loaded])
    first = read_weights(paths[0])  # safetensors, {"model", "args"} or a flat state dict
    if first.metadata is not None:  # the first file's verdict is not the average's: validate it
        first.metadata = {k: v for k, v in first.metadata.items() if k not in NOT_OF_THE_AVERAGE}
    save_weights_as(first, averaged, output, {"averaged": [str(path) for path in paths]})


def validation_types(paths: list[Path], args: argparse.Namespace) -> list[str]:
    """--de_type if given, else the types the first file records (decision 5), else the
    paper's five; ``clean`` is added with --clean and validated in its own column."""
    types = args.de_type or trained_types(paths[0]) or list(DE_TYPES)
    types = [t for t in types if t != CLEAN]
    return [*types, CLEAN] if args.clean else types


def validate_files(paths: list[Path], args: argparse.Namespace) -> None:
    """Print a markdown table of PSNR (dB) per type, clean, mean and the shipping rule: the
    shipped file's row (``--reference``) first, a row per file, the inputs' row last.

    Raises:
        DataError: a validation folder the types need is missing or empty.
        CheckpointError, FileNotFoundError: a file (or the reference) cannot be read.
    """
    keys = dict.fromkeys(TYPE_FOLDERS.values())
    folders = {key: getattr(args, f"val_{key}_dir") for key in keys}
    types = validation_types(paths, args)
    degradations = [t for t in types if t != CLEAN]
    images = build_validation_set(types, folders, args.val_images, args.val_crop)
    cpu = torch.device("cpu")
    header = " | ".join(degradations) + (" | clean (dB / grey levels)" if args.clean else "")
    print(f"| file | {header} | mean | qualifies |")
    print("|---|" + "---|" * (len(types) + 2))
    reference = None
    if args.reference is not None:  # scored once; every file is judged against it
        reference, _ = validate(load_airnet(args.reference), images, cpu)
        cells = psnr_cells(reference, degradations, args.clean)
        print(markdown_row(f"shipped: {args.reference}", cells, reference["psnr/mean"], "-"))
    for path in paths:
        metrics, _ = validate(load_airnet(path), images, cpu, reference)
        cells = psnr_cells(metrics, degradations, args.clean)
        verdict = "yes" if metrics["qualifies"] else "no"
        print(markdown_row(str(path), cells, metrics["psnr/mean"], verdict), flush=True)
    inputs = [float(metrics[f"input_psnr/{t}"]) for t in degradations]  # the same for every file
    cells = [f"{value:.2f}" for value in inputs] + (["-"] if args.clean else [])  # clean: itself
    print(markdown_row("input (degraded)", cells, sum(inputs) / len(inputs), "-"))


def ship_file(path: Path, output: Path, version: int, args: argparse.Namespace) -> dict:
    """Validate ``path`` as ``validate`` does and, when it passes the shipping rule (against
    ``--reference`` when given), write it to ``output`` as safetensors with its size, trained
    types, ``version``, step, the verdict and its validation PSNR per type in the metadata
    (decision 4). Returns the metrics.

    Raises:
        ShippingRefused: the export does not pass the rule (nothing is written).
        DataError, CheckpointError, FileNotFoundError: as ``validate_files``.
    """
    keys = dict.fromkeys(TYPE_FOLDERS.values())
    folders = {key: getattr(args, f"val_{key}_dir") for key in keys}
    images = build_validation_set(
        validation_types([path], args), folders, args.val_images, args.val_crop
    )
    cpu = torch.device("cpu")
    reference = None
    if args.reference is not None:
        reference, _ = validate(load_airnet(args.reference), images, cpu)
    metrics, _ = validate(load_airnet(path), images, cpu, reference)
    print(f"{path}: {format_comparison(metrics, reference)}")
    if not metrics["qualifies"]:
        raise ShippingRefused(f"{path} does not pass the shipping rule; nothing written")
    weights = read_weights(path)
    recorded = (*MODEL_KWARGS, "de_type", *NOT_OF_THE_AVERAGE)  # written by their own fields
    facts = {k: v for k, v in (weights.metadata or {}).items() if k not in recorded}
    facts |= {"version": version, "qualifies": True}
    facts["validation_psnr"] = {k: round(v, 2) for k, v in psnr_by_type(metrics).items()}
    if args.reference is not None:
        facts["judged_against"] = args.reference.name
    size = weights.size or infer_model_size(weights.state_dict)
    save_safetensors_atomic(weights.state_dict, output, size, weights.de_type, facts)
    return metrics


class ShippingRefused(RuntimeError):
    """An export that does not pass the shipping rule (utils/validation.py)."""


def psnr_cells(
    metrics: dict[str, float | bool | None], degradations: list[str], clean: bool
) -> list[str]:
    """``validate``'s PSNR (dB) of each type in ``degradations``, then, with ``clean``, the
    clean photos' PSNR / brightness change (grey levels), as table cells."""
    cells = [f"{metrics[f'psnr/{t}']:.2f}" for t in degradations]
    if clean:
        cells.append(f"{metrics['psnr/clean']:.2f} / {metrics['brightness/clean']:.1f}")
    return cells


def markdown_row(name: str, cells: list[str], mean: float, verdict: str) -> str:
    return f"| {name} | {' | '.join(cells)} | {mean:.2f} | {verdict} |"


def add_validation_arguments(parser: argparse.ArgumentParser, val_images: int) -> None:
    """The files and the validation split, as train.py's flags name it: ``ckpts``,
    ``--val_KEY_dir`` per folder key, ``--de_type``, ``--val_images``, ``--val_crop``,
    ``--clean`` (shared with scripts/embedding_separation.py)."""
    parser.add_argument("ckpts", nargs="+", type=Path)
    for key in dict.fromkeys(TYPE_FOLDERS.values()):
        parser.add_argument(f"--val_{key}_dir", help=f"held-out {key} images, as train.py's")
    parser.add_argument(
        "--de_type",
        nargs="+",
        choices=[t for t in TYPE_FOLDERS if t != CLEAN],
        help="types to validate (default: those the first file records, else the paper's five)",
    )
    parser.add_argument(
        "--val_images", type=VAL_IMAGES, default=val_images, help="images per type (0: all)"
    )
    parser.add_argument(
        "--val_crop", type=VAL_CROP, default=256, help="centre crop's side (0: whole images)"
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="also validate the clean photos of --val_denoise_dir given as their own input",
    )


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    val = commands.add_parser("validate", help="PSNR per type on a validation split")
    add_validation_arguments(val, val_images=0)
    val.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="the shipped file for the role (e.g. ckpt/airnet-small-repo-trained.safetensors): "
        "scored once on the same images and printed beside the files; a file qualifies only "
        f"when no type is more than {REFERENCE_TOLERANCE} dB below it (decision 14)",
    )
    ship = commands.add_parser(
        "ship", help="validate one export and, when it passes the rule, write it as safetensors"
    )
    add_validation_arguments(ship, val_images=0)
    ship.add_argument("--reference", type=Path, metavar="FILE", help="as validate's")
    ship.add_argument("--output", type=Path, required=True, help="the .safetensors to write")
    ship.add_argument(
        "--version", type=Range(int, 1, 10_000), required=True, help="recorded in the metadata"
    )
    avg = commands.add_parser("average", help="uniform average of the weights of exports")
    avg.add_argument("ckpts", nargs="+", type=Path)
    avg.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "ship":
        if len(args.ckpts) != 1:
            parser.error("ship takes one export")
        try:
            check_writable_file(args.output, "--output")  # before the files are scored
            ship_file(args.ckpts[0], args.output, args.version, args)
        except ShippingRefused as error:
            print(f"refused: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        except (DataError, CheckpointError, OSError) as error:  # OSError: OutputError too
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        print(f"{args.output}: written (version {args.version})")
    elif args.command == "validate":
        try:
            validate_files(args.ckpts, args)
        except (DataError, CheckpointError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
    else:
        try:
            check_writable_file(args.output, "--output")  # before the files are read
            average_files(args.ckpts, args.output)
        except (ValueError, CheckpointError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)  # a missing file, sizes that differ
            raise SystemExit(2) from None
        print(f"{args.output}: the average of {len(args.ckpts)} files")


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
