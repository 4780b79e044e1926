"""Numbers that cannot work (issue 33, item 7): every numeric flag of every entry point has a
stated range (utils/cli.py's Range), checked before any work, from the command line and from
train.py's --config alike: one line, exit 2. NaN and infinity are refused everywhere."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from option import parse_args
from utils.cli import Range

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ["train.py", "option.py", "test.py", "demo.py", "export.py", "restore_onnx.py"]
ENTRY_POINTS += [
    "app.py",
    "utils/tiling.py",
    *sorted(p.name for p in (REPO / "scripts").glob("*.py")),
]


def source_files() -> list[Path]:
    return [
        REPO / name if (REPO / name).exists() else REPO / "scripts" / name for name in ENTRY_POINTS
    ]


def test_every_numeric_flag_has_a_range():
    """No parser takes a bare int or float: a number is a Range, or one of fixed choices."""
    bare = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
            ):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            kind = keywords.get("type")
            if (
                isinstance(kind, ast.Name)
                and kind.id in ("int", "float")
                and "choices" not in keywords
            ):
                bare.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bare, f"numeric flags without a Range: {bare}"


def test_the_range_type():
    lr = Range(float, above=0, maximum=1)
    assert lr("2e-3") == 0.002
    for text in ("nan", "inf", "-inf", "-0.01", "0", "1.5", "fast"):
        with pytest.raises(Exception, match="expected a number > 0 and <= 1"):
            lr(text)
    crop = Range(int, 16, 256, zero=True)
    assert crop("0") == 0 and crop("16") == 16
    for text in ("8", "257", "16.5", "nan"):
        with pytest.raises(Exception, match="expected 0 or an integer from 16 to 256"):
            crop(text)


# The examples, and the other numbers that crashed or ran silently.
BAD_TRAINING = [
    (["--lr", "nan"], "--lr"),
    (["--lr", "-0.01"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--patch_size", "100000"], "--patch_size"),
    (["--patch_size", "8"], "--patch_size"),
    (["--ema_decay", "nan"], "--ema_decay"),
    (["--checkpoint_every_minutes", "nan"], "--checkpoint_every_minutes"),
    (["--tur_floor", "inf"], "--tur_floor"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**40)], "--seed"),
    (["--n_feats", "100000"], "--n_feats"),
    (["--queue_size", "0"], "--queue_size"),
    (["--val_crop", "5"], "--val_crop"),
    (["--num_workers", "-1"], "--num_workers"),
    (["--epochs", "0"], "--epochs"),
    (["--batch_size", "40", "--patch_size", "256"], "--batch_size 40 x --patch_size 256"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD_TRAINING, ids=[" ".join(a) for a, _ in BAD_TRAINING])
def test_training_numbers_out_of_range_are_one_line_exit_2(argv, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], lines


@pytest.mark.parametrize(
    ("argv", "flag"), BAD_TRAINING[:-1], ids=[" ".join(a) for a, _ in BAD_TRAINING[:-1]]
)
def test_the_same_numbers_in_a_config_file_are_refused_alike(tmp_path, argv, flag, capsys):
    config = tmp_path / "r.yaml"
    config.write_text(f"{argv[0].removeprefix('--')}: {argv[1]}\n")
    with pytest.raises(SystemExit) as stop:
        parse_args(["--config", str(config)])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and flag.removeprefix("--") in lines[0]
    assert "expected" in lines[0], lines


def test_yaml_nan_and_inf_are_refused(tmp_path, capsys):
    config = tmp_path / "r.yaml"
    for text in ("lr: .nan\n", "lr: .inf\n", "checkpoint_every_minutes: -.inf\n"):
        config.write_text(text)
        with pytest.raises(SystemExit):
            parse_args(["--config", str(config)])
        assert "expected a number" in capsys.readouterr().err


def test_help_states_the_ranges():
    from option import get_parser

    text = " ".join(get_parser().format_help().split())  # not wrapped
    assert "[an integer from 16 to 256]" in text  # --patch_size
    assert "[a number > 0 and <= 1]" in text  # --lr


def load(name: str):
    path = REPO / name if (REPO / name).exists() else REPO / "scripts" / name
    spec = importlib.util.spec_from_file_location(f"airnet_ranges_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# (script, arguments, the flag the line must name); parse only: nothing runs.
OTHER_ENTRY_POINTS = [
    ("test.py", ["--sigmas", "-5"], "--sigmas"),
    ("test.py", ["--seed", "nan"], "--seed"),
    ("demo.py", ["--tile", "-64"], "--tile"),
    ("demo.py", ["--tile_overlap", "100000"], "--tile_overlap"),
    ("export.py", ["--tolerance", "nan"], "--tolerance"),
    ("export.py", ["--n_feats", "0"], "--n_feats"),
    ("restore_onnx.py", ["--input", "x", "--threads", "-1"], "--threads"),
    ("app.py", ["--port", "70000"], "--port"),
    ("make_split.py", ["--clean_dir", "c", "--output", "o", "--seed", "-1"], "--seed"),
]


@pytest.mark.parametrize(
    ("script", "argv", "flag"),
    OTHER_ENTRY_POINTS,
    ids=[f"{s} {a[-2]}" for s, a, _ in OTHER_ENTRY_POINTS],
)
def test_every_entry_point_refuses_out_of_range_numbers(script, argv, flag, capsys):
    if script == "app.py":
        pytest.importorskip("gradio")
    if script in ("export.py", "restore_onnx.py"):
        pytest.importorskip("onnxruntime")
    parser = load(script).build_parser()
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"argument {flag}" in lines[0] and "expected" in lines[0], lines


@pytest.mark.parametrize(
    ("script", "argv", "flag"),
    [
        ("embedding_separation.py", ["x.pth", "--patch", "8"], "--patch"),
        ("baselines.py", ["--images", "-1"], "--images"),
        ("average_weights.py", ["validate", "x.pth", "--val_crop", "nan"], "--val_crop"),
        (
            "make_deblur_testset.py",
            ["--clean_dir", "c", "--output", "o", "--seed", "inf"],
            "--seed",
        ),
    ],
)
def test_scripts_refuse_out_of_range_numbers(script, argv, flag, capsys, monkeypatch):
    if script == "baselines.py":
        pytest.importorskip("scipy")
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # as when run: its folder comes first
    with pytest.raises(SystemExit) as stop:
        load(script).main(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"argument {flag}" in lines[0], lines


def test_export_sizes_have_a_bound(capsys):
    pytest.importorskip("onnxruntime")
    export = load("export.py")
    with pytest.raises(ValueError, match="each side from 1 to 2048"):
        export.parse_size("100000x100000")


@pytest.mark.parametrize(
    "script", ["train.py", "test.py", "demo.py", "restore_onnx.py", "export.py"]
)
def test_docs_state_every_range(script):
    """docs/errors.md's row of each entry point names each numeric flag with its range."""
    if script in ("export.py", "restore_onnx.py"):
        pytest.importorskip("onnxruntime")
    from option import get_parser

    parser = get_parser() if script == "train.py" else load(script).build_parser()
    rows = (REPO / "docs/errors.md").read_text().split("## Numeric flags")[1].splitlines()
    row = next(line for line in rows if line.startswith(f"| `{script}` |"))
    for action in parser._actions:
        if isinstance(action.type, Range):
            flag, words = action.option_strings[0], action.type.describe()
            entry = row.split(f"`{flag}`", 1)[1].split("·")[0]
            assert words in entry, (flag, words, entry)
