"""Where the CUDA time goes: torch.profiler tables of the DCN layer and the eval forward.

Kernel by kernel (CUDA time, calls) for what benchmarks/bench_cuda.py times as a whole: one DCN
layer 64->64 forward per shape and dtype (both orders of shapes, so that a one-off cost of the
first call shows), and the full model's eval forward at one size per precision.

    python benchmarks/profile_cuda.py [--impl triton] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_cuda import eval_forward, layer_call  # noqa: E402
from benchmarks.bench_dcn import make_inputs  # noqa: E402
from benchmarks.bench_model import build_model  # noqa: E402
from benchmarks.timing import cuda_time  # noqa: E402
from utils.restore import PRECISIONS  # noqa: E402


def table(fn, runs: int, rows: int) -> str:  # noqa: ANN001
    """Top ``rows`` operators by CUDA time over ``runs`` calls of fn (after two warm-ups)."""
    fn()
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            fn()
        torch.cuda.synchronize()
    return prof.key_averages().table(
        sort_by="cuda_time_total", row_limit=rows, max_name_column_width=60
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="triton")
    parser.add_argument("--shapes", nargs="+", default=["5x128x128", "1x256x256"], help="NxHxW")
    parser.add_argument("--size", type=int, default=256, help="eval forward size")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("profile_cuda.py: no CUDA device, nothing to profile")
        return
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, impl {args.impl}")
    for shape in args.shapes:
        n, h, w = (int(v) for v in shape.split("x"))
        inputs32 = [t.cuda() for t in make_inputs(n, 64, h, w)]
        for dtype in (torch.bfloat16, torch.float32):
            inputs = [t.to(dtype) for t in inputs32]
            fn = partial(layer_call, args.impl, inputs, False, dtype)
            ms = 1e3 * cuda_time(fn, 20)
            print(f"\n## DCN layer forward {shape} {dtype}: {ms:.3f} ms (median of 20)\n")
            print(table(fn, args.runs, 8))
    model = build_model(args.impl, 5, 5, channels_last=False).cuda().eval()
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).cuda()
    for precision, dtype in PRECISIONS.items():
        fn = partial(eval_forward, model, x, dtype)
        ms = 1e3 * cuda_time(fn, 10)
        print(f"\n## eval forward {args.size}^2 {precision}: {ms:.1f} ms (median of 10)\n")
        print(table(fn, 3, 12))


if __name__ == "__main__":
    main()
