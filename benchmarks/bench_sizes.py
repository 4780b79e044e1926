"""Step time and test time of AirNet at several sizes on CPU (issue 32 item 3).

For each size ``FxGxB`` (n_feats x n_groups x n_blocks; the paper's is 64x5x5, the shipped small
file's 32x1x2), in one process with the sizes alternated round by round (``time_alternated``,
so a machine that speeds up or slows down affects every size alike):

- train: one optimiser step as train.py takes it in phase 2 (L1 + 0.1 * CE, Adam, bf16 autocast
  by default as the small runs), a batch of ``--batch`` patches of ``--patch``², median of
  ``--train-repeat`` steps in wall-clock and process CPU time;
- test: one float32 forward of a 321x481 image (the size of a BSD/CBSD68 photo and of
  Rain100L's), as test.py scores, median of ``--repeat``; and from it an estimate of a full
  paper-protocol test of one file: 68 x 3 noisy + 68 clean CBSD68, 100 Rain100L and 500 SOTS
  outdoor images (SOTS outdoor photos are about 413x550, 1.47x the pixels: counted so), from
  the forward's process CPU time (its cost on idle cores). Issue 32 asks that a full test
  take under an hour on two cores.

Parameters and each size's ratio to the first size are printed too. Random weights (offset
convs giving offsets of a few pixels): the time of a step does not depend on the weights.

    python benchmarks/bench_sizes.py --threads 1 --sizes 32x1x2 32x2x2 32x2x3 32x3x3 24x3x3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_precision import build_model, eval_fn, train_fn  # noqa: E402
from benchmarks.timing import cpu_model_name, median, time_alternated, utc_timestamp  # noqa: E402

# Images of a full paper-protocol test (test.py --mode 3 with --clean_path), counted in 321x481
# photos: CBSD68 at three σ and as clean photos, Rain100L test (100, 321x481), SOTS outdoor
# (500 hazy images of about 413x550 = 1.47 x 321x481 pixels).
FULL_TEST_PHOTOS = 68 * 3 + 68 + 100 + 500 * (413 * 550) / (321 * 481)


def parse_size(text: str) -> tuple[int, int, int]:
    """``"32x1x2"`` -> (32, 1, 2); argparse.ArgumentTypeError for anything else."""
    try:
        n_feats, n_groups, n_blocks = (int(part) for part in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not FxGxB, e.g. 32x1x2") from error
    if min(n_feats, n_groups, n_blocks) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every part must be at least 1")
    return n_feats, n_groups, n_blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=["32x1x2", "32x2x3"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=6, help="patches per training step")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--train-repeat", type=int, default=5, help="timed steps per size")
    parser.add_argument("--repeat", type=int, default=3, help="timed test forwards per size")
    args = parser.parse_args()
    sizes = [parse_size(s) if isinstance(s, str) else s for s in args.sizes]
    torch.set_num_threads(args.threads)
    print(f"# AirNet sizes on CPU: {cpu_model_name()}; torch {torch.__version__}, "
          f"{args.threads} thread(s), {utc_timestamp()}")  # fmt: skip
    steps, tests, params = {}, {}, {}
    image = torch.rand(1, 3, 321, 481, generator=torch.Generator().manual_seed(0))
    for n_feats, n_groups, n_blocks in sizes:
        name = f"{n_feats}x{n_groups}x{n_blocks}"
        size = argparse.Namespace(
            ckpt=None, n_feats=n_feats, n_groups=n_groups, n_blocks=n_blocks,
            batch=args.batch, patch=args.patch,
        )  # fmt: skip
        train_model = build_model(size).train()
        steps[name] = train_fn(train_model, size, args.precision)
        tests[name] = eval_fn(build_model(size).eval(), image, "fp32")
        params[name] = sum(p.numel() for p in train_model.parameters())
    step_times = time_alternated(steps, args.train_repeat)
    test_times = time_alternated(tests, args.repeat)
    first = next(iter(steps))
    print(
        f"\n## Training step ({args.batch} x {args.patch}², {args.precision}) and test forward "
        f"(1 x 321 x 481, fp32), medians of {args.train_repeat} and {args.repeat}\n"
    )
    print("| size | parameters | step wall s | step CPU s | step vs first | test forward wall s "
          "| test forward CPU s | full test (est., CPU) min | test vs first |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name in steps:
        step, cpu = median(step_times[name].wall), median(step_times[name].cpu)
        test, test_cpu = median(test_times[name].wall), median(test_times[name].cpu)
        ratio_step = step / median(step_times[first].wall)
        ratio_test = test / median(test_times[first].wall)
        full = test_cpu * FULL_TEST_PHOTOS / 60  # CPU time: holds on a shared core
        print(f"| {name} | {params[name]:,} | {step:.3f} | {cpu:.3f} | {ratio_step:.2f}x "
              f"| {test:.3f} | {test_cpu:.3f} | {full:.0f} | {ratio_test:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
