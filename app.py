"""A local web page for AirNet: upload photos, restore them, compare and download.

    python app.py                          # http://127.0.0.1:7860, weights from ckpt/
    python app.py --ckpt my_run/airnet_best.pth --port 7861

The page restores with the same ``utils.restore.restore`` as ``demo.py`` (tiles for big images,
CPU or GPU) and reads images with the same code (EXIF orientation, grayscale, 16-bit, alpha).
Weights: a ``.pth`` or ``.safetensors`` in ``ckpt/`` (``All.pth`` first when present), one given
with ``--ckpt``, or a checkpoint uploaded in the page; every one is read by ``net.load_airnet``
(``weights_only``, so a checkpoint cannot run code) and must be at most ``MAX_CKPT_MB``. The
page's model info names the chosen weights and the types they were trained on, as recorded in
the file ("not recorded" for the official files). A wrong file, an image over the limits or a
checkpoint that is not AirNet's shows a message in the page; the server goes on.

The page fetches nothing from outside: analytics and Gradio's version check are off, and the
default theme's fonts are served by the app itself.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Before gradio is imported: no telemetry and no version check against the package index.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import torch  # noqa: E402

from net import AirNet, load_airnet  # noqa: E402
from utils.checkpoint import (  # noqa: E402
    TASK_FILES,
    TASKS,
    describe_trained_types,
    is_hub_reference,
    trained_types,
)
from utils.cli import ArgumentParser, Range  # noqa: E402
from utils.image_files import (  # noqa: E402
    ImageReadError,
    distinct_names,
    image_size,
    read_image_alpha,
    save_image,
)
from utils.optional import exit_missing_package  # noqa: E402
from utils.outputs import OutputError  # noqa: E402
from utils.paths import show_names_in_output, shown  # noqa: E402
from utils.restore import resolve_device, restore  # noqa: E402
from utils.stop import EXIT_INTERRUPTED, run_interruptible  # noqa: E402
from utils.tiling import check_tile  # noqa: E402

try:
    import gradio as gr
except ImportError as error:
    exit_missing_package(error, "requirements-app.txt")

logger = logging.getLogger("app")

CKPT_DIR = Path("ckpt")
MAX_IMAGES = 8  # per request
MAX_MEGAPIXELS = 4.0  # per image: about 2048 x 2048 (several minutes on a CPU)
MAX_IMAGE_MB = 50  # per uploaded file; the server refuses larger uploads
MAX_CKPT_MB = 200  # uploaded checkpoint; the official All.pth is about 36 MB
TILE_OVERLAP = 32
UPLOADED = "uploaded checkpoint"
LIMITS = (
    f"Up to {MAX_IMAGES} images of at most {MAX_MEGAPIXELS:g} megapixels and {MAX_IMAGE_MB} MB "
    f"each; checkpoints up to {MAX_CKPT_MB} MB."
)


class AppError(ValueError):
    """A problem to show the user as it is (its message names the file and the limit)."""


def weight_choices(
    ckpt_dir: Path = CKPT_DIR, extra: list[Path] | None = None, task: str = "all"
) -> list[str]:
    """Checkpoints offered in the page, the first the default: ``--ckpt`` files, then the
    file of ``task`` (official, then ours; utils/checkpoint.TASK_FILES), then the other tasks'
    files (the all-in-one first), then any other .pth and .safetensors file, by name."""
    files = [*ckpt_dir.glob("*.pth"), *ckpt_dir.glob("*.safetensors")]
    order = [task, *(other for other in TASKS if other != task)]
    names = [name for t in order for name in TASK_FILES[t]]
    rank = {name: index for index, name in enumerate(names)}
    found = sorted(files, key=lambda p: (rank.get(p.name, len(rank)), p.name))
    paths = [*(extra or []), *found]
    return [*dict.fromkeys(str(p) for p in paths), UPLOADED]


class ModelCache:
    """The last few loaded models, keyed by file, modification time and device."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.models: dict[tuple, AirNet] = {}

    def get(self, path: Path, device: torch.device) -> AirNet:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))
        if key not in self.models:
            if len(self.models) >= self.size:
                self.models.pop(next(iter(self.models)))
            self.models[key] = load_airnet(path, device)
        return self.models[key]


MODELS = ModelCache()


def checkpoint_path(choice: str | None, upload: str | None) -> Path:
    """The file behind the weights' choice; an uploaded one is checked for its size."""
    if choice == UPLOADED or not choice:
        if not upload:
            raise AppError("Choose weights, or upload a checkpoint (.pth or .safetensors) first.")
        path = Path(upload)
        megabytes = path.stat().st_size / 2**20
        if megabytes > MAX_CKPT_MB:
            raise AppError(
                f"{path.name}: {megabytes:.0f} MB is over the checkpoint limit of {MAX_CKPT_MB} MB."
            )
        return path
    path = Path(choice)
    if not (path.exists() or is_hub_reference(path)):  # a file, a Hub folder or hf://
        raise AppError(f"{path}: checkpoint not found (see ckpt/README.md).")
    return path


def load_model(choice: str | None, upload: str | None, device_name: str) -> AirNet:
    """AirNet from the chosen weights on the chosen device, or AppError saying why not."""
    try:
        device = resolve_device(device_name)
    except ValueError as error:
        raise AppError(str(error)) from error
    path = checkpoint_path(choice, upload)
    try:
        return MODELS.get(path, device)
    except (RuntimeError, FileNotFoundError, KeyError, TypeError) as error:
        raise AppError(f"{path.name} is not an AirNet checkpoint: {error}") from error


def model_info(choice: str | None, upload: str | None) -> str:
    """The page's model info: the chosen weights' file and the degradation types they record
    as trained (decision 5; "not recorded" for the official files and older exports), or why
    they cannot be read."""
    try:
        path = checkpoint_path(choice, upload)
    except AppError as error:
        return shown(str(error))
    try:
        types = trained_types(path)
    except (RuntimeError, FileNotFoundError, KeyError, TypeError, ValueError) as error:
        return shown(f"{path.name} is not an AirNet checkpoint: {error}")
    return shown(f"Weights `{path.name}`, {describe_trained_types(types)}")


def read_checked(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """read_image_alpha with the page's size limits; AppError for every refusal."""
    megabytes = path.stat().st_size / 2**20
    if megabytes > MAX_IMAGE_MB:
        raise AppError(f"{path.name}: {megabytes:.0f} MB is over the limit of {MAX_IMAGE_MB} MB.")
    try:
        width, height = image_size(path)  # from the header, before decoding
        if width * height > MAX_MEGAPIXELS * 1e6:
            raise AppError(
                f"{path.name}: {width}x{height} = {width * height / 1e6:.1f} megapixels is over "
                f"the limit of {MAX_MEGAPIXELS:g}; use demo.py for big images."
            )
        return read_image_alpha(path)
    except ImageReadError as error:
        raise AppError(f"{path.name} is not an image we can read ({error}).") from error


def tile_size(value: float | str | None) -> int | None:
    """The page's tile size: None (whole image) for 0 or nothing, else a whole number of pixels
    larger than the overlap; AppError saying why for anything else (the API takes any value)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise AppError(f"Tile size {value!r}: expected a whole number of pixels (0: whole image).")
    try:
        return check_tile(int(number), TILE_OVERLAP)
    except ValueError as error:
        raise AppError(f"Tile size {int(number)}: {error}.") from error


def restore_files(
    files: list[str] | None,
    choice: str | None,
    upload: str | None,
    device_name: str = "cpu",
    tile: float | str | None = 0,
    out_dir: Path | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[Path], list[str]]:
    """Restore the uploaded images: ([(input, result)], result PNG paths, messages).

    ``tile``: 0 or None restores whole images (tiles only when memory is short), else tiles of
    that size (see ``tile_size``). Each result is ``NAME_restored.png``, a distinct name per
    upload (``utils.image_files.distinct_names``: ``photo_png_restored.png`` and
    ``photo_jpg_restored.png``; the same name twice gets ``photo_2_restored.png``). Files that
    fail are named in the messages and skipped; AppError when nothing can be done (no images,
    too many, a bad tile size, bad weights) or no image could be restored.
    """
    if not files:
        raise AppError("Upload one or more images first.")
    if len(files) > MAX_IMAGES:
        raise AppError(f"{len(files)} images: at most {MAX_IMAGES} per request.")
    tile = tile_size(tile)
    model = load_model(choice, upload, device_name)
    try:
        out_dir = Path(out_dir or tempfile.mkdtemp(prefix="airnet_app_"))
    except OSError as error:  # the server's temporary folder is full or read-only
        raise AppError(f"The server cannot write its results ({error.strerror}).") from error
    pairs, outputs, messages = [], [], []
    # Uploads of one name sit in different cache folders: the names the user gave tell them
    # apart, or a number does (photo_restored.png, photo_2_restored.png).
    uploaded = [Path(Path(name).name) for name in files]
    for name, out_name in zip(files, distinct_names(uploaded, "_restored.png"), strict=True):
        path = Path(name)
        try:
            rgb, alpha = read_checked(path)
        except AppError as error:
            messages.append(str(error))
            continue
        start = time.perf_counter()
        report = {}
        restored = restore(rgb, model, tile, TILE_OVERLAP, report=report)
        seconds = time.perf_counter() - start
        out_path = out_dir / out_name
        try:
            save_image(out_path, restored, alpha)
        except OutputError as error:  # the server's temporary folder is full or gone
            messages.append(f"{path.name}: {error}")
            continue
        pairs.append((rgb, restored))
        outputs.append(out_path)
        tiles = f", tiles of {report['tile']} ({report['tile_reason']})" if report["tile"] else ""
        messages.append(f"{path.name}: {rgb.shape[1]}x{rgb.shape[0]} in {seconds:.1f} s{tiles}")
    if not pairs:
        raise AppError(" ".join(messages))
    return pairs, outputs, messages


def on_restore(files, choice, upload, device_name, tile):
    """The button's handler: errors become a message in the page (gr.Error), not a crash."""
    try:
        pairs, outputs, messages = restore_files(files, choice, upload, device_name, tile)
    except AppError as error:
        raise gr.Error(shown(str(error)), print_exception=False) from error
    gallery = [str(p) for p in outputs]
    status = shown("\n".join(f"- {m}" for m in messages))  # names as the logs show them
    return pairs[0], gallery, gallery, status, pairs


def on_select(pairs, event: gr.SelectData):
    """Show the chosen result of the gallery in the slider."""
    return pairs[event.index] if pairs else None


def build_app(choices: list[str]) -> gr.Blocks:
    """The page, offering the weights of ``choices`` (paths, as ``weight_choices`` gives them).

    The dropdown shows and sends each path as ``shown`` writes it (a name that is not UTF-8
    cannot travel to the browser as it is: the page's JSON must be valid UTF-8); the choice is
    mapped back to the path before a file is opened."""
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    paths = {shown(path): path for path in choices}

    def unshown(choice: str | None) -> str | None:
        return paths.get(choice, choice) if choice is not None else None

    def restore_choice(files, choice, upload, device, tile):
        return on_restore(files, unshown(choice), upload, device, tile)

    def info_of_choice(choice, upload):
        return model_info(unshown(choice), upload)

    with gr.Blocks(title="AirNet image restoration", analytics_enabled=False) as page:
        gr.Markdown(
            "# AirNet: all-in-one image restoration\n"
            "Removes noise, rain and haze without being told which (Li et al., CVPR 2022). "
            f"{LIMITS}"
        )
        with gr.Row():
            with gr.Column():
                files = gr.File(
                    label="Images", file_count="multiple", file_types=["image"], elem_id="images"
                )
                choice = gr.Dropdown(
                    list(paths),
                    value=shown(choices[0]),
                    label="Weights (all-in-one for unknown or mixed degradations; a task's "
                    "one-by-one file when you know what is wrong)",
                )
                upload = gr.File(
                    label="Checkpoint (.pth or .safetensors), with 'uploaded checkpoint'"
                )
                info = gr.Markdown(model_info(choices[0], None), elem_id="model_info")
                device = gr.Radio(devices, value=devices[-1], label="Device")
                tile = gr.Slider(
                    0,
                    2048,
                    value=0,
                    step=64,
                    label="Tile size (0: whole image; tiles are chosen when memory is short)",
                )
                button = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column():
                slider = gr.ImageSlider(
                    label="Input | restored", type="numpy", format="png", elem_id="slider"
                )
                gallery = gr.Gallery(label="Results", columns=4, height="auto")
                downloads = gr.File(label="Download", file_count="multiple")
                status = gr.Markdown(elem_id="status")
        pairs = gr.State([])
        button.click(
            restore_choice,
            [files, choice, upload, device, tile],
            [slider, gallery, downloads, status, pairs],
            api_name="restore",
        )
        gallery.select(on_select, pairs, slider, api_visibility="undocumented")
        for event in (choice.change, upload.change):
            event(info_of_choice, [choice, upload], info, api_visibility="undocumented")
    return page


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Serve AirNet in a local web page (Gradio).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ckpt", type=Path, action="append", help="offer this checkpoint too")
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="all",
        help="the weights selected first: 'all' (the all-in-one: unknown or mixed "
        "degradations) or the one-by-one file of a task you know (denoise, derain, dehaze)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=Range(int, 1, 65535), default=7860, help="port")
    return parser


def main(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; returns 130 then (a port that cannot be bound: SystemExit(2))."""
    choices = weight_choices(CKPT_DIR, args.ckpt, args.task)
    logger.info("weights offered: %s", shown(", ".join(choices)))
    try:
        build_app(choices).launch(
            server_name=args.host,
            server_port=args.port,
            max_file_size=f"{max(MAX_IMAGE_MB, MAX_CKPT_MB)}mb",  # images are checked again
            show_error=True,
        )
    except OSError as error:  # the port is taken, the address cannot be bound
        logger.error("--host %s --port %d: %s", args.host, args.port, str(error).splitlines()[0])
        raise SystemExit(2) from None
    # launch() serves until Ctrl-C, which gradio reports in one line before it returns.
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    show_names_in_output()
    sys.exit(run_interruptible(lambda: main(build_parser().parse_args())))
