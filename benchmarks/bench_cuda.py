"""Benchmark AirNet on CUDA: DCN layer, model eval and training step, float32 and mixed precision.

Old and new paths are measured in the same run on the same card (its name is printed first):
"torchvision" is the CUDA path before the Triton DCN (float32 under autocast), "triton" the
DCN of net/dcn_triton.py (16-bit columns under autocast). Prints markdown tables:
- DCN layer 64->64 3x3 + mask per implementation vs conv2d of the same shape and dtype (fp32:
  float32 conv, TF32 off; bf16: bfloat16 cuDNN conv, and the DCN under bf16 autocast), forward
  and forward+backward ms and ratios, max difference to torchvision float32;
- eval forward of the full model per implementation and precision (ms, ms per megapixel,
  GFLOP/s at 6.44 M multiply-adds per pixel, peak memory, PSNR of the output against the
  float32 output of the same implementation);
- one training step (batch of 128^2 patches, L1 + 0.1 * CE, Adam; fp16 with a GradScaler as
  train.py --precision fp16 does, bf16 without) with its peak memory;
- the targets of issue 13 as ratios from the tables above;
- with --compile: eval and training step in bf16, eager vs ``torch.compile`` of the model (the
  Triton DCN runs as it is between compiled graphs), and the compile time.

Weights are random (offsets of a few pixels), so the PSNR column measures arithmetic, not
restoration quality; test.py --precision gives the latter with real weights.

    python benchmarks/bench_cuda.py [--compile]
"""

from __future__ import annotations

import argparse
import math
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_dcn import make_inputs, max_diff, run_layer  # noqa: E402
from benchmarks.bench_model import build_model  # noqa: E402
from benchmarks.timing import cuda_time, time_calls, utc_timestamp  # noqa: E402
from net import load_airnet  # noqa: E402
from utils.image_io import image_to_tensor, list_images, read_image  # noqa: E402
from utils.restore import PRECISIONS, restore_tensor  # noqa: E402

MACS_PER_PIXEL = 6.44e6  # full model, counted by benchmarks/bench_model.py


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.clamp(0, 1).float(), b.clamp(0, 1).float()).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def eval_forward(
    model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None
) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cuda", dtype, enabled=dtype is not None):
        return model(x)


def train_step(model, optimizer, scaler, dtype, batch: list[torch.Tensor]) -> None:  # noqa: ANN001
    query, key, clean = batch
    with torch.autocast("cuda", dtype, enabled=dtype is not None):
        restored, logits, labels = model(query, key)
        loss = F.l1_loss(restored, clean) + 0.1 * F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def layer_call(
    impl: str, inputs: list[torch.Tensor], backward: bool, dtype: torch.dtype
) -> list[torch.Tensor]:
    """``run_layer`` on inputs of ``dtype``; 16-bit runs under autocast, as the model does."""
    with torch.autocast("cuda", dtype, enabled=dtype != torch.float32):
        return run_layer(impl, inputs, backward)


def dcn_section(args: argparse.Namespace, results: dict) -> None:
    print("\n## DCN layer 64->64 3x3 + mask vs conv2d of the same shape and dtype\n")
    print(
        "| shape | dtype | impl | fwd ms | fwd / conv | fwd+bwd ms | fwd+bwd / conv "
        "| max diff to torchvision fp32 (abs / rel) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        n, h, w = (int(v) for v in shape.split("x"))
        inputs32 = [t.cuda() for t in make_inputs(n, 64, h, w)]
        for precision in ("fp32", "bf16"):
            dtype = torch.float32 if precision == "fp32" else torch.bfloat16
            inputs = [t.to(dtype) for t in inputs32]
            # On the same (rounded) values: the difference measures arithmetic only.
            reference = run_layer("torchvision", [t.float() for t in inputs], backward=True)
            conv_f = 1e3 * cuda_time(
                partial(layer_call, "conv2d", inputs, False, dtype), args.repeat
            )
            conv_b = 1e3 * cuda_time(
                partial(layer_call, "conv2d", inputs, True, dtype), args.repeat
            )
            conv_row = f"| {conv_f:.2f} | 1.00 | {conv_b:.2f} | 1.00 | - |"
            print(f"| {shape} | {precision} | conv2d {conv_row}")
            for impl in args.dcn_impls:
                fwd = 1e3 * cuda_time(partial(layer_call, impl, inputs, False, dtype), args.repeat)
                fb = 1e3 * cuda_time(partial(layer_call, impl, inputs, True, dtype), args.repeat)
                got = [t.float() for t in layer_call(impl, inputs, True, dtype)]
                absolute, relative = max_diff(got, reference)
                results["dcn", shape, precision, impl] = (fwd / conv_f, fb / conv_b)
                print(
                    f"| {shape} | {precision} | {impl} | {fwd:.2f} | {fwd / conv_f:.2f} "
                    f"| {fb:.2f} | {fb / conv_b:.2f} | {absolute:.1e} / {relative:.1e} |"
                )


def eval_section(args: argparse.Namespace, results: dict) -> None:
    print("\n## Eval forward, full model (5 groups x 5 blocks), batch 1\n")
    print("| size | impl | precision | ms | ms / MPixel | GFLOP/s | peak GB | PSNR vs fp32 dB |")
    print("|---|---|---|---|---|---|---|---|")
    for impl in args.impls:
        model = build_model(impl, 5, 5, channels_last=False).cuda().eval()
        for size in args.sizes:
            x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).cuda()
            outputs = {}
            for precision, dtype in PRECISIONS.items():
                ms = 1e3 * cuda_time(partial(eval_forward, model, x, dtype), args.repeat)
                peak = torch.cuda.max_memory_allocated() / 2**30
                outputs[precision] = eval_forward(model, x, dtype).float()
                results["eval", size, precision, impl] = ms
                gflops = 2 * MACS_PER_PIXEL * size**2 / ms / 1e6
                vs = (
                    "-"
                    if precision == "fp32"
                    else f"{psnr(outputs[precision], outputs['fp32']):.1f}"
                )
                print(
                    f"| {size}^2 | {impl} | {precision} | {ms:.1f} | {ms * 1e6 / size**2:.0f} "
                    f"| {gflops:.0f} | {peak:.2f} | {vs} |"
                )
        del model
        torch.cuda.empty_cache()


def train_section(args: argparse.Namespace, results: dict) -> None:
    print(
        f"\n## Training step, full model, batch {args.batch} of {args.patch}^2, "
        "L1 + 0.1 * CE, Adam\n"
    )
    print("| impl | precision | ms / step | peak GB |")
    print("|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.patch, args.patch)
    batch = [torch.rand(shape, generator=gen).cuda() for _ in "qkc"]
    for impl in args.impls:
        for precision, dtype in PRECISIONS.items():
            model = build_model(impl, 5, 5, channels_last=False).cuda().train()
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.Adam(params, lr=1e-4)
            scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
            step = partial(train_step, model, optimizer, scaler, dtype, batch)
            ms = 1e3 * cuda_time(step, args.train_repeat)
            peak = torch.cuda.max_memory_allocated() / 2**30
            results["train", precision, impl] = ms
            print(f"| {impl} | {precision} | {ms:.1f} | {peak:.2f} |")
            del model, optimizer, step
            torch.cuda.empty_cache()


def targets_section(args: argparse.Namespace, results: dict) -> None:
    """Issue 13's targets, each a ratio of two measurements of this run."""
    rows = []  # (target, measured ratio, goal as text, met)
    for key, value in results.items():
        if key[0] == "dcn" and key[3] == "triton":
            fwd, fb = value
            name = f"DCN {key[1]} {key[2]}, triton"
            rows.append((f"{name}: fwd / conv2d", fwd, "<= 2", fwd <= 2))
            rows.append((f"{name}: fwd+bwd / conv2d", fb, "<= 3", fb <= 3))
    for size in args.sizes:
        old = results.get(("eval", size, "bf16", "torchvision"))
        new = results.get(("eval", size, "bf16", "triton"))
        if old and new:
            rows.append(
                (f"eval {size}^2 bf16: torchvision / triton", old / new, ">= 2", old >= 2 * new)
            )
    old = results.get(("train", "bf16", "torchvision"))
    new = results.get(("train", "bf16", "triton"))
    if old and new:
        name = f"train step {args.batch}x{args.patch}^2 bf16: torchvision / triton"
        rows.append((name, old / new, ">= 1.8", old >= 1.8 * new))
    if not rows:
        return
    print("\n## Targets (issue 13): ratios from the tables above\n")
    print("| target | measured | goal | met |")
    print("|---|---|---|---|")
    for name, value, goal, met in rows:
        print(f"| {name} | {value:.2f} | {goal} | {'yes' if met else 'no'} |")


def compile_section(args: argparse.Namespace) -> None:
    """Does ``torch.compile`` pay for the rest of the network? bf16, eager vs compiled."""
    print(f"\n## torch.compile of the whole model, bf16, dcn_impl={args.compile_impl}\n")
    print("| run | eager ms | compiled ms | eager / compiled | compile s |")
    print("|---|---|---|---|---|")
    size = max(args.sizes)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).cuda()
    model = build_model(args.compile_impl, 5, 5, channels_last=False).cuda().eval()
    compiled = torch.compile(model)
    eager = 1e3 * cuda_time(partial(eval_forward, model, x, torch.bfloat16), args.repeat)
    run_compiled = partial(eval_forward, compiled, x, torch.bfloat16)
    # The first call compiles the model: its time is the compile time.
    compile_s = time_calls(run_compiled, 1, sync=torch.cuda.synchronize).wall[0]
    fast = 1e3 * cuda_time(run_compiled, args.repeat)
    print(f"| eval {size}^2 | {eager:.1f} | {fast:.1f} | {eager / fast:.2f} | {compile_s:.0f} |")
    del model, compiled
    torch.cuda.empty_cache()

    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.patch, args.patch)
    batch = [torch.rand(shape, generator=gen).cuda() for _ in "qkc"]
    times = []
    for use_compile in (False, True):
        model = build_model(args.compile_impl, 5, 5, channels_last=False).cuda().train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=1e-4)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        net = torch.compile(model) if use_compile else model
        step = partial(train_step, net, optimizer, scaler, torch.bfloat16, batch)
        first_s = time_calls(step, 1, sync=torch.cuda.synchronize).wall[0]
        times.append((1e3 * cuda_time(step, args.train_repeat), first_s))
        del model, optimizer, net, step
        torch.cuda.empty_cache()
    (eager, _), (fast, compile_s) = times
    print(
        f"| train {args.batch}x{args.patch}^2 | {eager:.1f} | {fast:.1f} | {eager / fast:.2f} "
        f"| {compile_s:.0f} |"
    )


def device_name() -> str:
    return torch.cuda.get_device_name()


def checkpoint_section(args: argparse.Namespace) -> None:
    """Real weights on real photos: PSNR to the clean image per precision, and to fp32's output."""
    model = load_airnet(args.ckpt, "cuda")
    paths = list_images(args.images)[: args.max_images]
    rng = np.random.default_rng(0)
    to_clean, to_fp32 = {p: [] for p in PRECISIONS}, {p: [] for p in PRECISIONS}
    for path in paths:
        clean = image_to_tensor(read_image(path))  # (1, 3, H, W)
        noise = torch.from_numpy(rng.normal(0, args.sigma / 255, clean.shape).astype("float32"))
        noisy = (clean + noise).clamp(0, 1)
        fp32 = restore_tensor(noisy, model)
        for precision in PRECISIONS:
            out = fp32 if precision == "fp32" else restore_tensor(noisy, model, precision=precision)
            to_clean[precision].append(psnr(out, clean))
            to_fp32[precision].append(psnr(out, fp32))
    print(
        f"\n## {Path(args.ckpt).name} on {len(paths)} images of {args.images}, "
        f"Gaussian noise sigma {args.sigma}\n"
    )
    print("| precision | mean PSNR to clean dB | mean PSNR to fp32 output dB |")
    print("|---|---|---|")
    for precision in PRECISIONS:
        vs = "-" if precision == "fp32" else f"{np.mean(to_fp32[precision]):.1f}"
        print(f"| {precision} | {np.mean(to_clean[precision]):.3f} | {vs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--train-repeat", type=int, default=5)
    parser.add_argument("--shapes", nargs="+", default=["1x256x256", "5x128x128"], help="NxHxW")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument(
        "--impls", nargs="+", default=["torchvision", "triton"], help="for eval and train"
    )
    parser.add_argument(
        "--dcn-impls", nargs="+", default=["torchvision", "triton"], help="for the DCN layer"
    )
    parser.add_argument("--sections", nargs="*", default=["dcn", "eval", "train"])
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also measure torch.compile of the model (bf16, largest size, training step)",
    )
    parser.add_argument("--compile-impl", default="triton", help="DCN used in the --compile runs")
    parser.add_argument("--ckpt", help="with --images: also measure real weights on photos")
    parser.add_argument("--images", help="folder of clean photos (e.g. CBSD68)")
    parser.add_argument("--max_images", type=int, default=68)
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument(
        "--tf32", action="store_true", help="allow TF32 in cuDNN convs and matmuls (default off)"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_cuda.py: no CUDA device, nothing to measure")
        return
    # TF32 off: float32 means float32 here, so the fp32 rows are the exact baseline.
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    print(
        f"# AirNet CUDA benchmark: {device_name()}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, TF32 {'on' if args.tf32 else 'off'}, cudnn.benchmark on, "
        f"{utc_timestamp()}; times: median of {args.repeat} "
        f"(train: {args.train_repeat}) after 2 warm-ups"
    )
    sections = {"dcn": dcn_section, "eval": eval_section, "train": train_section}
    results: dict = {}
    for name in args.sections:
        sections[name](args, results)
    targets_section(args, results)
    if args.compile:
        compile_section(args)
    if args.ckpt and args.images:
        checkpoint_section(args)


if __name__ == "__main__":
    main()
