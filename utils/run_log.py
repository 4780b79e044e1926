"""What a training run writes as it goes: TensorBoard scalars, ``log.jsonl`` and sample images."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from utils.image_io import save_image
from utils.outputs import writing
from utils.paths import shown_all
from utils.train_dataset import ValidationImage


class RunLog:
    """TensorBoard scalars and a JSON-lines file with the same numbers (rank 0 only)."""

    def __init__(self, log_dir: Path, args: argparse.Namespace) -> None:
        self.path = log_dir / "log.jsonl"
        with writing(log_dir / "args.json"):
            log_dir.mkdir(parents=True, exist_ok=True)
            # Names that are not UTF-8 (a data folder's) are written as utils.paths.shown does.
            text = json.dumps(shown_all(vars(args)), indent=2) + "\n"
            (log_dir / "args.json").write_text(text)
        self.writer = SummaryWriter(str(log_dir))
        with writing(self.path):
            self.jsonl = self.path.open("a")
        self.start = time.time()

    def write(
        self, kind: str, step: int, epoch: int, values: dict[str, float | bool | None]
    ) -> None:
        """One record: every number to TensorBoard (booleans as 0/1; None, a value that does
        not exist such as a clean photo's input PSNR, only to log.jsonl as null)."""
        for name, value in values.items():
            if value is not None:
                self.writer.add_scalar(f"{kind}/{name}", float(value), step)
        record = {"kind": kind, "step": step, "epoch": epoch, **values}
        record["wall_s"] = round(time.time() - self.start, 2)
        with writing(self.path):
            self.jsonl.write(json.dumps(shown_all(record)) + "\n")
            self.jsonl.flush()

    def close(self) -> None:
        self.writer.close()
        self.jsonl.close()


def log_validation(
    writer: SummaryWriter,
    output_path: Path,
    images: list[ValidationImage],
    restored: dict[str, list[np.ndarray]],
    step: int,
) -> None:
    """TensorBoard: the first image of each type as degraded | restored | clean; all restored
    images of the latest validation as files under output_path/val/TYPE/."""
    seen: dict[str, int] = {}
    for image in images:
        index = seen.get(image.de_type, 0)
        seen[image.de_type] = index + 1
        result = restored[image.de_type][index]
        save_image(output_path / "val" / image.de_type / f"{image.name}.png", result)
        if index == 0:
            row = np.concatenate([image.degraded, result, image.clean], axis=1)  # (H, 3W, 3)
            writer.add_image(f"val/{image.de_type}", row, step, dataformats="HWC")
