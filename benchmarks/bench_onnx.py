"""ONNX Runtime vs our PyTorch path on CPU: time and peak memory of one whole-image restoration.

    python benchmarks/bench_onnx.py --onnx airnet.onnx --sizes 256 512 --repeat 2 --threads 1

With ``--threads 1`` the CPU time (``time.process_time``) is the fair measure on a shared
machine: it does not grow when other jobs take turns on the core; wall time does.
Each (runtime, size) runs in its own process, so its peak resident memory (``ru_maxrss``) is its
own; the table also gives the resident memory before the first run (imports and weights), so
"added" is what the restoration itself took. Time is the best of ``--repeat`` runs after one
warm-up. Both runtimes get the same photo (a demo photo tiled to size), the same weights and the
same number of threads; the PyTorch path is ``utils.restore.restore_tensor`` (CPU default DCN,
``gather``), ONNX Runtime runs the exported file. The outputs are compared too.

Without ``--ckpt``, a random AirNet of the paper's size is exported first (seconds do not depend
on the weights' values). ``--onnx`` must hold the same weights as ``--ckpt``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import best, peak_rss_mb, time_calls  # noqa: E402
from utils.image_files import image_to_array, read_image  # noqa: E402

PHOTO = ROOT / "data/demo/31.png"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", type=Path, default=None, help="exported file (else exported)")
    parser.add_argument("--ckpt", type=Path, default=None, help="weights (default: random)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square sizes")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs after one warm-up")
    parser.add_argument("--threads", type=int, default=1, help="threads for both runtimes")
    parser.add_argument("--worker", choices=["torch", "onnx"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    return parser


def photo_input(size: int) -> np.ndarray:
    """(1, 3, size, size) float32: the demo photo tiled to size."""
    photo = read_image(PHOTO)
    reps = (-(-size // photo.shape[0]), -(-size // photo.shape[1]), 1)
    return image_to_array(np.tile(photo, reps)[:size, :size])


def worker(args: argparse.Namespace) -> None:
    """One runtime, one size: print {"ms", "cpu_ms" (best), "rss_before_mb", "peak_rss_mb"}."""
    x = photo_input(args.size)
    if args.worker == "torch":
        import torch

        from net import AirNet, load_airnet
        from utils.restore import restore_tensor

        torch.set_num_threads(args.threads)
        if args.ckpt:
            model = load_airnet(args.ckpt)
        else:
            torch.manual_seed(0)
            model = AirNet().eval()

        def run() -> np.ndarray:
            return restore_tensor(torch.from_numpy(x), model, auto_tile=False).numpy()
    else:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(args.onnx), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run() -> np.ndarray:
            return session.run(None, {name: x})[0]

    rss_before = peak_rss_mb()
    output = run()  # warm-up; the timed runs compute the same output
    times = time_calls(run, args.repeat)
    np.save(args.save, output)
    result = {
        "ms": 1000 * best(times.wall),
        "cpu_ms": 1000 * best(times.cpu),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(result))


def export_random(path: Path) -> None:
    """A random paper-size AirNet (seed 0, as the torch worker builds it) to ONNX, checked."""
    command = [sys.executable, "export.py", "--output", str(path), "--sizes", "32x32", "21x37"]
    command += ["40x24"]
    subprocess.run(command, cwd=ROOT, check=True)


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        tmp = Path(tmp)
        if args.onnx is None:
            if args.ckpt is not None:
                sys.exit("--ckpt needs --onnx exported from it (python export.py --ckpt ...)")
            args.onnx = tmp / "airnet.onnx"
            export_random(args.onnx)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        rows = []
        for size in args.sizes:
            results = {}
            for runtime in ("torch", "onnx"):
                command = [sys.executable, __file__, "--worker", runtime, "--size", str(size)]
                command += ["--repeat", str(args.repeat), "--threads", str(args.threads)]
                command += ["--onnx", str(args.onnx), "--save", str(tmp / f"{runtime}.npy")]
                if args.ckpt:
                    command += ["--ckpt", str(args.ckpt)]
                done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
                results[runtime] = json.loads(done.stdout.strip().splitlines()[-1])
            diff = np.abs(np.load(tmp / "torch.npy") - np.load(tmp / "onnx.npy")).max()
            rows.append((size, results, diff))

    print(f"threads {args.threads}, best of {args.repeat} after a warm-up, whole image")
    print(
        "| size | runtime | wall ms | CPU ms | ONNX Runtime / PyTorch (CPU time) | peak RSS MB "
        "| RSS before run MB | added MB | max abs diff |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size, results, diff in rows:
        for runtime, label in (("torch", "PyTorch (gather)"), ("onnx", "ONNX Runtime")):
            r = results[runtime]
            ratio = r["cpu_ms"] / results["torch"]["cpu_ms"]
            before, peak = r["rss_before_mb"], r["peak_rss_mb"]
            print(
                f"| {size}² | {label} | {r['ms']:,.0f} | {r['cpu_ms']:,.0f} | {ratio:.2f} "
                f"| {peak:,.0f} | {before:,.0f} | {peak - before:,.0f} | {diff:.1e} |"
            )


if __name__ == "__main__":
    parsed = build_parser().parse_args()
    if parsed.worker:
        worker(parsed)
    else:
        main(parsed)
