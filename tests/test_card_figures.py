"""scripts/card_figures.py: the training curve joins the stages of a run that continued with
--init_from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_card_figures():
    spec = importlib.util.spec_from_file_location("card_figures", REPO / "scripts/card_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_log(path: Path, steps: list[int]) -> Path:
    lines = [json.dumps({"kind": "train", "step": step, "l1": 0.1, "ce": 5.0}) for step in steps]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_later_stage_continues_from_its_start_and_drops_what_it_replaced(tmp_path):
    card_figures = load_card_figures()
    first = write_log(tmp_path / "first.jsonl", [100, 200, 300, 400])
    second = write_log(tmp_path / "second.jsonl", [100, 200])
    records = card_figures.read_stages([first, second], [0, 200])
    # the first stage's own 300 and 400 are replaced by the second stage's 100 and 200
    assert [r["step"] for r in records] == [100, 200, 300, 400]
    assert [r["step"] for r in card_figures.read_stages([first], [0])] == [100, 200, 300, 400]
    records = card_figures.read_stages([first, second], [0, 400])
    assert [r["step"] for r in records] == [100, 200, 300, 400, 500, 600]


def test_a_resumed_attempt_replaces_the_records_it_repeats(tmp_path):
    card_figures = load_card_figures()
    log = write_log(tmp_path / "log.jsonl", [10, 20, 30, 20, 30, 40])  # resumed at step 10
    records = card_figures.read_stages([log], [0])
    assert [r["step"] for r in records] == [10, 20, 30, 40]


def test_uncertainty_series_per_type():
    card_figures = load_card_figures()
    records = [
        {"kind": "train", "step": 10, "l1": 0.1, "u/derain": 0.03, "u/clean": 0.01},
        {"kind": "val", "step": 10, "psnr/derain": 25.0},
        {"kind": "train", "step": 20, "l1": 0.1, "u/derain": 0.02, "u/clean": 0.01},
    ]
    series = card_figures.uncertainty_series(records)
    assert series == {"derain": ([10, 20], [0.03, 0.02]), "clean": ([10, 20], [0.01, 0.01])}
    assert card_figures.uncertainty_series([{"kind": "train", "step": 1, "l1": 0.1}]) == {}
