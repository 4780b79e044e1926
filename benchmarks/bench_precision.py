"""Benchmark AirNet on CPU in float32 against bfloat16 autocast (``--precision bf16``).

Prints the CPU's model name and its bf16-relevant flags, then in one process:

- eval: one forward of a 1x3xSxS image, fp32 and bf16 runs alternated, median of ``--repeat``
  in wall-clock and in process CPU time (the fair clock with one thread on a shared core);
  their ratio, and the PSNR of the bf16 output against the fp32 output (peak: the fp32 output's
  range, 1 for a restored image; the issue's target is >= 45 dB);
- train: one step of a batch of patches (L1 + 0.1 * CE, Adam; autocast over forward and loss,
  backward outside, as train.py), fp32 and bf16 alternated, median of ``--train-repeat``;
- with ``--profile``: self time of one eval forward (and one training step) per op category:
  GEMMs and convolutions, gathers (the DCN's embedding_bag and its sort), elementwise and copies.

The model is the paper's size (64 features, 5 groups x 5 blocks) with random weights whose
offset convs give offsets of a few pixels, or ``--ckpt`` (then ``--image`` is the eval input).

    python benchmarks/bench_precision.py --threads 2
    python benchmarks/bench_precision.py --sections train --n_feats 16 --n_groups 1 --n_blocks 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import (  # noqa: E402
    Times,
    cpu_model_name,
    median,
    time_alternated,
    utc_timestamp,
)
from net import AirNet  # noqa: E402
from net.model import load_airnet  # noqa: E402
from utils.image_files import image_to_array, read_image  # noqa: E402
from utils.precision import cpu_flags  # noqa: E402

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")
# Op-name substrings per category, tried in this order; the rest is "other".
CATEGORIES = {
    "GEMM / conv": ("conv", "mm", "matmul", "linear", "mkldnn"),
    "gather (DCN)": ("embedding_bag", "sort", "bincount", "cumsum", "index", "gather", "scatter"),
    "elementwise / copy": (
        "add", "sub", "mul", "div", "lerp", "clamp", "floor", "relu", "sigmoid", "copy", "to",
        "cat", "stack", "fill", "zero", "sum", "mean", "norm", "exp", "log", "abs", "sqrt",
        "where", "pow", "neg", "batch_norm", "empty", "arange", "repeat", "contiguous", "clone",
    ),
}  # fmt: skip


def build_model(args: argparse.Namespace) -> AirNet:
    """--ckpt, or a random AirNet whose offset convs give offsets of a few pixels."""
    if args.ckpt:
        return load_airnet(args.ckpt, dcn_impl="gather")
    torch.manual_seed(0)
    model = AirNet(n_feats=args.n_feats, n_groups=args.n_groups, n_blocks=args.n_blocks)
    for name, param in model.named_parameters():
        if "conv_offset_mask.weight" in name:
            torch.nn.init.normal_(param, std=0.02)
    return model


def print_times(t: dict[str, Times], extra_header: str = "", extra: str = "") -> None:
    """One row: median wall and CPU seconds of fp32 and bf16, and bf16's speed-up in each clock."""
    w32, c32 = median(t["fp32"].wall), median(t["fp32"].cpu)
    w16, c16 = median(t["bf16"].wall), median(t["bf16"].cpu)
    print(
        "| fp32 wall s | bf16 wall s | speed-up (wall) | fp32 CPU s | bf16 CPU s "
        f"| speed-up (CPU time) |{extra_header}"
    )
    print("|---|---|---|---|---|---|" + "---|" * extra_header.count("|"))
    print(
        f"| {w32:.2f} | {w16:.2f} | {w32 / w16:.2f}x | {c32:.2f} | {c16:.2f} | {c32 / c16:.2f}x |"
        + extra
    )


def eval_fn(model: AirNet, x: torch.Tensor, precision: str) -> Callable[[], torch.Tensor]:
    dtype = PRECISIONS[precision]

    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype, enabled=dtype is not None):
            return model(x).float()

    return run


def train_fn(model: AirNet, args: argparse.Namespace, precision: str) -> Callable[[], None]:
    """One optimiser step as train.py takes it (full phase: restorer and encoder)."""
    dtype = PRECISIONS[precision]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.patch, args.patch)
    query, key, clean = (torch.rand(shape, generator=gen) for _ in "qkc")

    def step() -> None:
        with torch.autocast("cpu", dtype, enabled=dtype is not None):
            restored, logits, labels = model(query, key)
            loss = F.l1_loss(restored.float(), clean) + 0.1 * F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def psnr_db(got: torch.Tensor, want: torch.Tensor) -> float:
    peak = (want.max() - want.min()).item()
    mse = (got - want).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak**2 / mse)).item()


def category(op_name: str) -> str:
    name = op_name.removeprefix("aten::")
    for cat, keys in CATEGORIES.items():
        if any(k in name for k in keys):
            return cat
    return "other"


def profile_breakdown(fn: Callable[[], object]) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Self CPU ms per category, and the five ops with the most self time, of one call."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    per_cat: dict[str, float] = {cat: 0.0 for cat in [*CATEGORIES, "other"]}
    ops = []
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3
        per_cat[category(event.key)] += ms
        ops.append((event.key, ms))
    return per_cat, sorted(ops, key=lambda op: -op[1])[:5]


def print_profile(title: str, fns: dict[str, Callable[[], object]]) -> None:
    results = {name: profile_breakdown(fn) for name, fn in fns.items()}
    # The profiler times each op by the clock, so a shared core inflates them; the shares hold.
    print(f"\n### Profile: {title} (self time of each op, one call)\n")
    print("| category | " + " | ".join(f"{p} ms | {p} %" for p in results) + " |")
    print("|---|" + "---|---|" * len(results))
    for cat in [*CATEGORIES, "other"]:
        cells = []
        for per_cat, _ in results.values():
            total = sum(per_cat.values())
            cells.append(f"{per_cat[cat]:.0f} | {100 * per_cat[cat] / total:.0f}")
        print(f"| {cat} | " + " | ".join(cells) + " |")
    for name, (_, top) in results.items():
        print(f"\n{name}, top ops: " + ", ".join(f"{op} {ms:.0f} ms" for op, ms in top))


def eval_section(args: argparse.Namespace) -> None:
    model = build_model(args).eval()
    if args.image:
        x = torch.from_numpy(image_to_array(read_image(args.image)))  # (1, 3, H, W)
    else:
        x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    fns = {p: eval_fn(model, x, p) for p in PRECISIONS}
    psnr = psnr_db(fns["bf16"](), fns["fp32"]())  # also the warm-up
    t = time_alternated(fns, args.repeat, warmup=0)
    print(f"\n## Eval forward, {tuple(x.shape)}, median of {args.repeat}\n")
    print_times(t, " PSNR bf16 vs fp32 dB |", f" {psnr:.1f} |")
    if args.profile:
        print_profile(f"eval {tuple(x.shape)}", fns)


def train_section(args: argparse.Namespace) -> None:
    model = build_model(args).train()
    fns = {p: train_fn(model, args, p) for p in PRECISIONS}
    t = time_alternated(fns, args.train_repeat)
    print(
        f"\n## Training step, batch {args.batch} of {args.patch}^2, median of {args.train_repeat} "
        "after a warm-up step each\n"
    )
    print_times(t)
    if args.profile:
        print_profile(f"training step {args.batch}x3x{args.patch}x{args.patch}", fns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5, help="timed eval runs per precision")
    parser.add_argument("--train-repeat", type=int, default=3, help="timed steps per precision")
    parser.add_argument("--size", type=int, default=256, help="eval image side")
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--n_feats", type=int, default=64)
    parser.add_argument("--n_groups", type=int, default=5)
    parser.add_argument("--n_blocks", type=int, default=5)
    parser.add_argument("--ckpt", help="trained weights instead of the random model")
    parser.add_argument("--image", help="eval input image instead of a random SIZExSIZE one")
    parser.add_argument(
        "--sections", nargs="+", default=["eval", "train"], choices=["eval", "train"]
    )
    parser.add_argument("--profile", action="store_true", help="time per op category")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    shown = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FLAGS)
    model = f"ckpt {args.ckpt}" if args.ckpt else (
        f"random AirNet n_feats {args.n_feats}, {args.n_groups} groups x {args.n_blocks} blocks"
    )  # fmt: skip
    print(f"# AirNet fp32 vs bf16 autocast on CPU: {cpu_model_name()}; flags: {shown}")
    print(
        f"# torch {torch.__version__}, {args.threads} threads, oneDNN bf16 "
        f"{'yes' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'no'}, {model}, "
        f"DCN gather, {utc_timestamp()}"
    )
    if "eval" in args.sections:
        eval_section(args)
    if "train" in args.sections:
        train_section(args)


if __name__ == "__main__":
    main()
