"""Benchmark the deformable-convolution implementations against conv2d of the same shape.

Prints a markdown table: forward and forward+backward time of each implementation, its ratio to
conv2d measured in the same run, the largest difference to torchvision (forward and the four
gradients, float32), and the bytes each implementation keeps for backward.

    python benchmarks/bench_dcn.py --threads 2
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import best, time_alternated, utc_timestamp  # noqa: E402
from net.deform_conv import DCN_IMPLS, modulated_deform_conv2d  # noqa: E402


def make_inputs(n: int, c: int, h: int, w: int, seed: int = 0) -> list[torch.Tensor]:
    """x, offset, mask, weight like a trained AirNet layer: offsets of a few pixels."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen)
    offset = 2 * torch.randn(n, 18, h, w, generator=gen)
    mask = torch.rand(n, 9, h, w, generator=gen)
    weight = torch.randn(c, c, 3, 3, generator=gen) / (3 * c**0.5)
    return [x, offset, mask, weight]


def run_layer(impl: str, inputs: list[torch.Tensor], backward: bool) -> list[torch.Tensor]:
    """One call (conv2d when impl == 'conv2d'); returns output and, with backward, gradients."""
    leaves = [t.detach().requires_grad_(backward) for t in inputs]
    x, offset, mask, weight = leaves
    if impl == "conv2d":
        out = F.conv2d(x, weight, padding=1)
        leaves = [x, weight]
    else:
        out = modulated_deform_conv2d(x, offset, mask, weight, impl=impl)
    if not backward:
        return [out]
    grads = torch.autograd.grad(out, leaves, torch.ones_like(out) / out.numel() ** 0.5)
    return [out.detach(), *grads]


def saved_bytes(impl: str, inputs: list[torch.Tensor]) -> int:
    """Bytes of tensors autograd keeps between forward and backward, inputs not counted."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    seen: dict[int, int] = {}
    input_ptrs = {t.data_ptr() for t in leaves}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in input_ptrs:
            seen[t.data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if impl == "conv2d":
            F.conv2d(leaves[0], leaves[3], padding=1)
        else:
            modulated_deform_conv2d(*leaves, impl=impl)
    return sum(seen.values())


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[float, float]:
    """Largest absolute difference, and largest one relative to each tensor's max |value|."""
    pairs = list(zip(a, b, strict=True))
    absolute = max((x - y).abs().max().item() for x, y in pairs)
    relative = max(((x - y).abs().max() / y.abs().max()).item() for x, y in pairs)
    return absolute, relative


def paired_times(
    fn: Callable[[], object], conv: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Best wall ms of ``fn`` and of ``conv`` over ``repeat`` alternated rounds after a warm-up."""
    times = time_alternated({"fn": fn, "conv": conv}, repeat)
    return 1e3 * best(times["fn"].wall), 1e3 * best(times["conv"].wall)


def bench_shape(shape: str, args: argparse.Namespace) -> None:
    """Table rows for one NxHxW shape: conv2d, then each implementation."""
    n, h, w = (int(v) for v in shape.split("x"))
    inputs = make_inputs(n, args.channels, h, w)
    reference = run_layer("torchvision", inputs, backward=True)
    conv_f, conv_b = (
        partial(run_layer, "conv2d", inputs, False),
        partial(run_layer, "conv2d", inputs, True),
    )
    rows, conv_fwd, conv_fb = [], [], []
    for impl in args.impls:
        repeat = 1 if impl == "torchvision" else args.repeat
        fwd, conv_fwd_i = paired_times(partial(run_layer, impl, inputs, False), conv_f, repeat)
        fb, conv_fb_i = paired_times(partial(run_layer, impl, inputs, True), conv_b, repeat)
        conv_fwd.append(conv_fwd_i)
        conv_fb.append(conv_fb_i)
        absolute, relative = max_diff(run_layer(impl, inputs, True), reference)
        mb = saved_bytes(impl, inputs) / 2**20
        rows.append(
            f"| {shape} | {impl} | {fwd:.1f} | {fwd / conv_fwd_i:.2f} | {fb:.1f} "
            f"| {fb / conv_fb_i:.2f} | {absolute:.1e} / {relative:.1e} | {mb:.1f} |"
        )
    conv_mb = saved_bytes("conv2d", inputs) / 2**20
    print(
        f"| {shape} | conv2d | {min(conv_fwd):.1f} | 1.00 | {min(conv_fb):.1f} | 1.00 | - "
        f"| {conv_mb:.1f} |"
    )
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--shapes", nargs="+", default=["1x256x256", "5x128x128"], help="NxHxW")
    parser.add_argument(
        "--impls",
        nargs="+",
        default=[i for i in DCN_IMPLS if i not in ("auto", "triton")],  # triton: CUDA only
        choices=DCN_IMPLS,
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# DCN layer {args.channels}->{args.channels} 3x3 + mask, float32, CPU, "
        f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or 'cpu'}, "
        f"{utc_timestamp()}; times: best of {args.repeat} "
        "(torchvision: 1 run after a warm-up)"
    )
    print(
        "\n| shape | impl | fwd ms | fwd / conv | fwd+bwd ms | fwd+bwd / conv "
        "| max diff vs torchvision (abs / rel) | kept for backward MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        bench_shape(shape, args)
    print(
        "\nGoals: fwd / conv <= 3, fwd+bwd / conv <= 4, equal to torchvision within 1e-4.\n"
        "Ratios divide by conv2d runs alternated with that implementation's runs (best of each).\n"
        "Diffs cover the output and the four gradients (grad_out = 1/sqrt(numel)); "
        "rel = diff / max|value|.\n'kept for backward' counts saved tensors other than the layer's "
        "own inputs (x, offset, mask, weight)."
    )


if __name__ == "__main__":
    main()
