"""Benchmark the whole AirNet on CPU: eval forward and one training step, per DCN implementation.

Eval: ms per megapixel, achieved GFLOP/s (2 FLOP per multiply-add, counted by
torch.utils.flop_counter on the model itself) and the fraction of the throughput of a 64->64 3x3
conv2d at the same resolution, measured in the same run. Train: one step of batch 5 of 128^2
patches, L1 + 0.1 * CE, Adam, with the peak resident memory of the process. Every measurement
runs in a fresh process so that the peak memory is its own.

    python benchmarks/bench_model.py --threads 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import best, peak_rss_mb, time_calls, utc_timestamp  # noqa: E402
from net import AirNet  # noqa: E402


def build_model(impl: str, n_groups: int, n_blocks: int, channels_last: bool) -> AirNet:
    """AirNet with offsets of a few pixels (the zero init would sample on the pixel grid)."""
    torch.manual_seed(0)
    model = AirNet(n_groups=n_groups, n_blocks=n_blocks, dcn_impl=impl)
    for name, param in model.named_parameters():
        if "conv_offset_mask.weight" in name:
            torch.nn.init.normal_(param, std=0.02)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def eval_worker(cfg: dict) -> dict:
    """Eval forward of one (1, 3, size, size) image; also the conv2d reference and MAC count."""
    torch.set_num_threads(cfg["threads"])
    size, fmt = (
        cfg["size"],
        torch.channels_last if cfg["channels_last"] else torch.contiguous_format,
    )
    model = build_model(cfg["impl"], cfg["n_groups"], cfg["n_blocks"], cfg["channels_last"]).eval()
    x = torch.rand(1, 3, size, size).contiguous(memory_format=fmt)
    with torch.inference_mode():
        model.set_dcn_impl(
            "gather"
        )  # its GEMMs are visible to the counter; torchvision's op is not
        with FlopCounterMode(display=False) as counter:
            model(torch.rand(1, 3, 64, 64).contiguous(memory_format=fmt))
        macs_per_pixel = counter.get_total_flops() / 2 / 64**2
        model.set_dcn_impl(cfg["impl"])
        model(torch.rand(1, 3, 32, 32).contiguous(memory_format=fmt))  # warm-up
        ms = 1e3 * best(time_calls(lambda: model(x), cfg["repeat"]).wall)
        feat = torch.rand(1, 64, size, size).contiguous(memory_format=fmt)
        weight = torch.rand(64, 64, 3, 3).contiguous(memory_format=fmt)
        conv_ms = 1e3 * best(time_calls(lambda: F.conv2d(feat, weight, padding=1), 10).wall)
    return {"ms": ms, "macs_per_pixel": macs_per_pixel, "conv_ms": conv_ms, "rss": peak_rss_mb()}


def train_worker(cfg: dict) -> dict:
    """One training step: batch of patches, L1 + 0.1 * CE, Adam."""
    torch.set_num_threads(cfg["threads"])
    fmt = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    model = build_model(cfg["impl"], cfg["n_groups"], cfg["n_blocks"], cfg["channels_last"])
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    shape = (cfg["batch"], 3, cfg["patch"], cfg["patch"])
    query, key, clean = (
        torch.rand(shape, generator=gen).contiguous(memory_format=fmt) for _ in "qkc"
    )
    saved = []

    def step() -> None:
        restored, logits, labels = model(query, key)
        loss = F.l1_loss(restored, clean) + 0.1 * F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def count_saved() -> None:
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            restored, logits, labels = model(query, key)
        saved.append(sum(seen.values()) / 2**20)

    rss_before = peak_rss_mb()
    if cfg["warmup"]:
        step()  # warm-up (also creates Adam's state)
    ms = 1e3 * best(time_calls(step, cfg["repeat"]).wall)
    count_saved()
    return {"ms": ms, "rss": peak_rss_mb(), "rss_before": rss_before, "saved_mb": saved[0]}


def run_isolated(worker: Callable[[dict], dict], cfg: dict) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(worker, (cfg,))


def eval_section(args: argparse.Namespace) -> None:
    print(f"\n## Eval forward, 1x3x{args.size}x{args.size}, full model (5 groups x 5 blocks)\n")
    print(
        "| impl | memory format | ms | ms / MPixel | MMAC / pixel | GFLOP/s | conv2d GFLOP/s "
        "| fraction of conv2d | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    pixels = args.size**2
    for impl, channels_last in args.eval_configs:
        repeat = 1 if impl == "torchvision" else args.repeat
        cfg = dict(vars(args), impl=impl, channels_last=channels_last, repeat=repeat)
        cfg.update(n_groups=5, n_blocks=5)
        r = run_isolated(eval_worker, cfg)
        gflops = 2 * r["macs_per_pixel"] * pixels / r["ms"] / 1e6
        conv_gflops = 2 * 64 * 64 * 9 * pixels / r["conv_ms"] / 1e6
        fmt = "channels_last" if channels_last else "NCHW"
        print(
            f"| {impl} | {fmt} | {r['ms']:.0f} | {r['ms'] * 1e6 / pixels:.0f} "
            f"| {r['macs_per_pixel'] / 1e6:.2f} | {gflops:.1f} | {conv_gflops:.1f} "
            f"| {gflops / conv_gflops:.2f} | {r['rss']:.0f} |"
        )


def train_section(args: argparse.Namespace) -> None:
    print(
        f"\n## Training step, batch {args.batch} of {args.patch}^2 patches, "
        "L1 + 0.1 * CE, Adam (query and key encoders, MoCo queue)\n"
    )
    print(
        "| model depth | impl | memory format | ms / step | vs torchvision | saved for backward MB "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for n_groups, n_blocks, impls in args.train_configs:
        times = {}
        for impl, channels_last in impls:
            # torchvision's full-depth CPU step takes minutes: one timed step, no warm-up.
            slow = impl == "torchvision" and n_groups * n_blocks > 1
            repeat = 1 if slow else args.train_repeat
            cfg = dict(vars(args), impl=impl, channels_last=channels_last, repeat=repeat)
            cfg["warmup"] = not slow
            cfg.update(n_groups=n_groups, n_blocks=n_blocks)
            r = run_isolated(train_worker, cfg)
            times[impl, channels_last] = r["ms"]
            tv = times.get(("torchvision", False))
            speedup = f"{tv / r['ms']:.1f}x faster" if tv and impl != "torchvision" else "-"
            fmt = "channels_last" if channels_last else "NCHW"
            print(
                f"| {n_groups} groups x {n_blocks} blocks ({2 * n_groups * n_blocks} DCN) | {impl} "
                f"| {fmt} | {r['ms']:.0f} | {speedup} | {r['saved_mb']:.0f} | {r['rss']:.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed eval runs")
    parser.add_argument("--train-repeat", type=int, default=1, help="timed steps after a warm-up")
    parser.add_argument("--size", type=int, default=256, help="eval image side")
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--sections", nargs="+", default=["eval", "train"])
    parser.add_argument(
        "--full-torchvision",
        action="store_true",
        help="also time a full-depth training step with torchvision (~6 min on 2 cores)",
    )
    parser.add_argument(
        "--with-torchvision",
        action="store_true",
        help="also time torchvision (eval ~50 s at 256^2; training only on a shallow model)",
    )
    args = parser.parse_args()
    args.eval_configs = [("gather", False), ("gather", True)]
    # torchvision's CPU backward takes ~10 s per DCN layer at this size, so the full 50-layer step
    # (~10 min) is compared on a 2-DCN model of the same blocks; the full model runs ours only.
    shallow = [("gather", False)]
    if args.with_torchvision:
        args.eval_configs.append(("torchvision", False))
        shallow = [("torchvision", False), *shallow]
    full = [("torchvision", False)] if args.full_torchvision else []
    args.train_configs = [(1, 1, shallow), (5, 5, [*full, ("gather", False)])]
    print(
        "# 'memory format' is that of the input and the model's parameters; on CPU the DGRN body "
        "runs channels-last internally either way."
    )
    print(
        f"# AirNet CPU benchmark: {args.threads} threads, torch {torch.__version__}, "
        f"{platform.machine()}, {utc_timestamp()}; "
        f"eval: best of {args.repeat} (torchvision: 1 run); train: best of {args.train_repeat} "
        "after a warm-up step (full-depth torchvision: 1 step, no warm-up)"
    )
    if "eval" in args.sections:
        eval_section(args)
    if "train" in args.sections:
        train_section(args)


if __name__ == "__main__":
    main()
