"""Export AirNet's inference graph to ONNX, then check ONNX Runtime's output against PyTorch's.

    python export.py --ckpt ckpt/All.pth --output airnet.onnx              # opset 19, DeformConv
    python export.py --ckpt ckpt/All.pth --output airnet16.onnx --opset 16  # GridSample instead
    python export.py --ckpt ckpt/All.pth --check airnet.onnx                # check an existing file

The graph is the eval forward pass: the query encoder (CBDE) and the restorer (DGRN); the key
encoder and the MoCo queue are training-only and left out. Input ``input`` and output ``output``
are float32 (1, 3, height, width) in [0, 1], with height and width dynamic.

Two steps, as timm's onnx_export.py / onnx_validate.py:
1. export: ``torch.onnx.export(dynamo=True)``. Opset 19 has ONNX's ``DeformConv`` operator, which
   the ``torchvision`` DCN implementation maps to. Opset 16 has no DeformConv: the ``grid_sample``
   implementation maps to ``GridSample`` (opset 16), for runtimes that lack DeformConv. The
   ``gather`` implementation (``embedding_bag``) does not export, so the exporter switches.
2. check: ONNX Runtime runs the file on real photos (``data/demo``, cropped) at several sizes,
   one of them not a multiple of 16 and one non-square, and its output must equal PyTorch's to
   ``--tolerance`` (max abs, [0, 1] scale). The table is printed; a failure exits with 1.

Without ``--ckpt`` a random model of ``--n_feats/--n_groups/--n_blocks`` is exported (for tests).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from net import AirNet, load_airnet
from net.deform_conv import DCN_layer
from utils.checkpoint import trained_types
from utils.cli import N_BLOCKS, N_FEATS, N_GROUPS, SEED, ArgumentParser, Range
from utils.image_files import image_to_array, list_images, read_image
from utils.optional import exit_missing_package
from utils.outputs import OutputError, check_writable_file, writing
from utils.paths import show_names_in_output
from utils.stop import run_interruptible

try:
    import onnx
    import onnxruntime as ort
    import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) needs it; named up front
except ImportError as error:
    exit_missing_package(error, "requirements-onnx.txt")

logger = logging.getLogger("export")

# DCN implementation per opset: DeformConv arrived in opset 19.
DCN_FOR_OPSET = {19: "torchvision", 16: "grid_sample"}
DEFAULT_SIZES = ("64x64", "45x77", "96x50")  # (height x width): square, odd, non-square
MAX_CHECK_SIDE = 2048  # the check runs whole images in both runtimes: 4 MP at most
EXIT_OK, EXIT_MISMATCH, EXIT_SETUP = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Export AirNet to ONNX and check ONNX Runtime against PyTorch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint (official or ours)")
    parser.add_argument("--output", type=Path, default=Path("airnet.onnx"), help="ONNX file")
    parser.add_argument(
        "--opset",
        type=int,
        default=19,
        choices=sorted(DCN_FOR_OPSET),
        help="19: ONNX DeformConv; 16: GridSample (for runtimes without DeformConv)",
    )
    parser.add_argument(
        "--check",
        type=Path,
        default=None,
        help="only check this existing ONNX file against the checkpoint (no export)",
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=list(DEFAULT_SIZES),
        help="HxW sizes of the check; include one not a multiple of 16 and one non-square",
    )
    parser.add_argument(
        "--check_images",
        type=Path,
        default=Path("data/demo"),
        help="photos cropped for the check (random pixels if the folder has none)",
    )
    parser.add_argument(
        "--tolerance", type=Range(float, 0, 1), default=1e-4, help="max abs difference"
    )
    parser.add_argument("--n_feats", type=N_FEATS, default=64, help="without --ckpt: random model")
    parser.add_argument("--n_groups", type=N_GROUPS, default=5, help="without --ckpt: random model")
    parser.add_argument("--n_blocks", type=N_BLOCKS, default=5, help="without --ckpt: random model")
    parser.add_argument("--seed", type=SEED, default=0, help="without --ckpt: weights' seed")
    return parser


def parse_size(text: str) -> tuple[int, int]:
    """'45x77' -> (45, 77) as (height, width); each side from 1 to MAX_CHECK_SIDE."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or not all(1 <= int(side) <= MAX_CHECK_SIDE for side in match.groups()):
        raise ValueError(
            f"--sizes {text!r}: expected HEIGHTxWIDTH, each side from 1 to {MAX_CHECK_SIDE}, "
            "e.g. 45x77"
        )
    return int(match[1]), int(match[2])


def build_model(args: argparse.Namespace) -> AirNet:
    """The checkpoint's model, or a random one of the given size, in eval mode on the CPU."""
    if args.ckpt is not None:
        return load_airnet(args.ckpt, "cpu")
    torch.manual_seed(args.seed)
    model = AirNet(n_feats=args.n_feats, n_groups=args.n_groups, n_blocks=args.n_blocks)
    return model.eval()


class InferenceGraph(nn.Module):
    """AirNet's eval forward pass with one input, as exported: (1, 3, H, W) -> (1, 3, H, W)."""

    def __init__(self, model: AirNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


# ---------------------------------------------------------------------------------------------
# Step 1: export
# ---------------------------------------------------------------------------------------------


def runtime_max_ir_version() -> int | None:
    """The highest ONNX IR version the installed ONNX Runtime loads, read from its own refusal.

    ONNX Runtime has no call that returns it, but names it when it refuses a model that is too
    new; a one-node model with an impossible IR version asks. None if the message changes.
    """
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node], "probe", [value("x", onnx.TensorProto.FLOAT, [1])], [value("y", 1, [1])]
    )
    probe = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    probe.ir_version = 1000
    try:
        ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own pybind exception types
        match = re.search(r"max supported IR version: (\d+)", str(error))
        return int(match[1]) if match else None
    return None


def drop_split_num_outputs(model: onnx.ModelProto) -> int:
    """Split's ``num_outputs`` attribute is opset 18; below it, Split splits equally by the
    number of outputs. The exporter leaves the attribute in graphs of older opsets, which
    ONNX Runtime refuses; returns how many nodes were fixed (the check verifies the result)."""
    fixed = 0
    for node in model.graph.node:
        if node.op_type == "Split" and len(node.input) == 1:
            kept = [a for a in node.attribute if a.name != "num_outputs"]
            if len(kept) != len(node.attribute):
                del node.attribute[:]
                node.attribute.extend(kept)
                fixed += 1
    return fixed


def export_onnx(model: AirNet, output: Path, opset: int, metadata: dict[str, str]) -> None:
    """Write ``model``'s inference graph to ``output`` with dynamic height and width."""
    previous = {layer: layer.impl for layer in model.modules() if isinstance(layer, DCN_layer)}
    model.set_dcn_impl(DCN_FOR_OPSET[opset])
    try:
        example = torch.rand(1, 3, 64, 48)
        height, width = torch.export.Dim("height", min=1), torch.export.Dim("width", min=1)
        program = torch.onnx.export(
            InferenceGraph(model).eval(),
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({2: height, 3: width},),
            verbose=False,
        )
    finally:
        for layer, impl in previous.items():
            layer.impl = impl
    program.save(str(output))

    graph = onnx.load(str(output))
    if opset < 18 and drop_split_num_outputs(graph):
        logger.info("opset %d: removed Split's num_outputs attribute (opset 18)", opset)
    max_ir = runtime_max_ir_version()
    if max_ir is not None and graph.ir_version > max_ir:
        logger.info("IR version %d -> %d (this ONNX Runtime's limit)", graph.ir_version, max_ir)
        graph.ir_version = max_ir
    onnx.helper.set_model_props(graph, metadata)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(output))
    operators = sorted({node.op_type for node in graph.graph.node})
    logger.info("wrote %s (opset %d, IR %d): %s", output, opset, graph.ir_version, operators)


# ---------------------------------------------------------------------------------------------
# Step 2: check ONNX Runtime against PyTorch
# ---------------------------------------------------------------------------------------------


def check_inputs(sizes: list[tuple[int, int]], folder: Path) -> list[np.ndarray]:
    """(1, 3, h, w) float32 inputs: crops of the photos in ``folder`` (tiled if too small)."""
    photos = [read_image(p) for p in list_images(folder)] if folder.is_dir() else []
    rng = np.random.default_rng(0)
    inputs = []
    for i, (height, width) in enumerate(sizes):
        if photos:
            photo = photos[i % len(photos)]
            reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
            rgb = np.tile(photo, reps)[:height, :width]
        else:
            rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        inputs.append(image_to_array(rgb))
    return inputs


def check_onnx(
    path: Path, model: AirNet, sizes: list[tuple[int, int]], folder: Path, tolerance: float
) -> bool:
    """Run ONNX Runtime and PyTorch on the same inputs; print a table; True if all agree."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    print(f"check {path} with ONNX Runtime {ort.__version__} against PyTorch {torch.__version__}")
    print(f"{'size (HxW)':>12} {'max abs diff':>14} {'tolerance':>10}  result")
    ok = True
    for x in check_inputs(sizes, folder):
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        actual = session.run(None, {input_name: x})[0]
        if actual.shape != expected.shape:
            diff, passed = float("inf"), False
        else:
            diff = float(np.abs(actual - expected).max())
            passed = diff <= tolerance
        ok &= passed
        size = f"{x.shape[2]}x{x.shape[3]}"
        print(f"{size:>12} {diff:>14.3e} {tolerance:>10.0e}  {'ok' if passed else 'FAILED'}")
    return ok


def main(args: argparse.Namespace) -> int:
    """Export (unless --check) and check; returns the exit code (0 ok, 1 mismatch, 2 setup)."""
    try:
        sizes = [parse_size(s) for s in args.sizes]
        if args.check is None:  # before the model is built and exported
            check_writable_file(args.output, "--output")
        model = build_model(args)
    except (ValueError, RuntimeError, OSError) as error:
        logger.error("%s", error)
        return EXIT_SETUP
    path = args.check
    if path is None:
        path = args.output
        metadata = {
            "model": "AirNet (CVPR 2022), inference graph: CBDE query encoder + DGRN",
            "source": str(args.ckpt) if args.ckpt else f"random weights, seed {args.seed}",
            "opset": str(args.opset),
            "dcn": DCN_FOR_OPSET[args.opset],
            **{key: str(value) for key, value in model.config.items()},
        }
        types = trained_types(args.ckpt) if args.ckpt else None
        if types:  # decision 5: the export says what the weights were trained on
            metadata["de_type"] = json.dumps(types)
        try:
            with writing(path):
                export_onnx(model, path, args.opset, metadata)
        except OutputError as error:  # disk full, a folder removed while exporting
            logger.error("%s", error)
            return EXIT_SETUP
    elif not path.is_file():
        logger.error("%s: ONNX file not found", path)
        return EXIT_SETUP
    if not check_onnx(path, model, sizes, args.check_images, args.tolerance):
        logger.error(
            "CHECK FAILED: ONNX Runtime's output differs from PyTorch's by more than %g; "
            "do not use %s",
            args.tolerance,
            path,
        )
        return EXIT_MISMATCH
    logger.info(
        "check passed: ONNX Runtime equals PyTorch within %g on %d sizes",
        args.tolerance,
        len(sizes),
    )
    return EXIT_OK


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    show_names_in_output()
    for noisy in ("onnx_ir", "onnxscript"):  # a line per rewritten node or shared weight
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.exit(run_interruptible(lambda: main(build_parser().parse_args())))
