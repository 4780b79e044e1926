"""option.py: official flags and defaults, checks argparse cannot do, --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from option import (
    FROM_CHECKPOINT,
    FROM_CHECKPOINT_UNLESS_GIVEN,
    TYPE_CHOICES,
    data_folders,
    get_parser,
    parse_args,
)
from utils.train_dataset import SYNTHESIS, TYPE_FOLDERS

REPO = Path(__file__).resolve().parents[1]


def test_de_type_takes_several_values():
    args = parse_args(["--de_type", "derain", "dehaze"])
    assert args.de_type == ["derain", "dehaze"]
    assert args.batch_size == 2  # one patch per type, as official


def test_official_defaults():
    args = parse_args([])
    assert args.de_type == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert (args.epochs, args.epochs_encoder, args.lr) == (1000, 100, 1e-3)
    assert (args.patch_size, args.num_workers, args.batch_size) == (128, 16, 5)
    assert (args.n_feats, args.n_groups, args.n_blocks) == (64, 5, 5)
    assert args.epoch_size == 400


@pytest.mark.parametrize(
    "argv",
    [
        ["--de_type", "rain"],  # not a choice
        ["--de_type", "derain", "derain"],  # a type twice
        ["--de_type", "derain", "dehaze", "--batch_size", "3"],  # types unequally represented
        ["--batch_size", "0"],
        ["--max_steps", "0"],
        ["--de_type", "dehaze", "clean", "--sampling_weights", "1", "2", "1"],  # not one per type
        ["--de_type", "dehaze", "clean", "--sampling_weights", "1", "2", "--batch_size", "4"],
        ["--de_type", "dehaze", "clean", "--sampling_weights", "1", "0"],
    ],
)
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_batch_size_multiple_of_types():
    assert parse_args(["--de_type", "derain", "dehaze", "--batch_size", "4"]).batch_size == 4


def test_sampling_weights_set_the_default_batch_and_are_fixed_by_a_checkpoint():
    assert parse_args([]).sampling_weights is None  # every type equally, as the paper
    weighted = ["--de_type", "dehaze", "clean", "--sampling_weights", "1", "2"]
    assert parse_args(weighted).batch_size == 3
    assert parse_args([*weighted, "--batch_size", "6"]).sampling_weights == [1, 2]
    assert "sampling_weights" in FROM_CHECKPOINT


def test_help_documents_every_flag():
    parser = get_parser()
    flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert all(action.help for action in flags)
    result = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for action in flags:
        assert action.option_strings[0] in result.stdout


def test_precision_flag_and_the_amp_alias():
    assert parse_args([]).precision == "fp32"
    assert parse_args(["--precision", "bf16"]).precision == "bf16"
    assert parse_args(["--amp"]).precision == "fp16"
    with pytest.raises(SystemExit):
        parse_args(["--amp", "--precision", "bf16"])


def test_five_task_types_and_their_folders_come_from_one_mapping():
    """Decision 1: deblur and lowlight extend the choices only; each type's training and
    validation folders, and --synthetic's choices, follow TYPE_FOLDERS."""
    assert tuple(TYPE_FOLDERS) == TYPE_CHOICES
    assert {"clean", "deblur", "lowlight"} <= set(TYPE_CHOICES)
    five = ["denoise_25", "derain", "dehaze", "deblur", "lowlight"]
    args = parse_args(["--de_type", *five, "--deblur_dir", "g", "--val_lowlight_dir", "v"])
    assert args.de_type == five and args.batch_size == 5
    assert data_folders(args)["deblur"] == "g" and data_folders(args)["lowlight"] is None
    assert data_folders(args, validation=True)["lowlight"] == "v"
    assert set(data_folders(args)) == set(TYPE_FOLDERS.values())
    assert parse_args(["--synthetic", "deblur", "lowlight"]).synthetic == ["deblur", "lowlight"]
    choices = next(a for a in get_parser()._actions if a.dest == "synthetic").choices
    assert tuple(choices) == tuple(SYNTHESIS) == ("derain", "dehaze", "deblur", "lowlight")


def test_new_data_flags_follow_decision_6():
    """Data folders are taken from the checkpoint unless given again; --synthetic fixes the
    data stream (always the checkpoint's); --check_data is never restored."""
    for key in set(TYPE_FOLDERS.values()):
        assert f"{key}_dir" in FROM_CHECKPOINT_UNLESS_GIVEN
        assert f"val_{key}_dir" in FROM_CHECKPOINT_UNLESS_GIVEN
    assert "synthetic" in FROM_CHECKPOINT
    assert "check_data" not in FROM_CHECKPOINT + FROM_CHECKPOINT_UNLESS_GIVEN
    assert parse_args(["--check_data"]).check_data and not parse_args([]).check_data
