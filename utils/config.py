"""Recipes as files: a flat YAML file read into the same arguments as the command line.

    python train.py --config configs/smoke_cpu.yaml --max_steps 2

Each key is a flag of ``train.py`` without ``--`` (``lr: 2e-3``, ``de_type: [derain, dehaze]``,
``sync_bn: true``). Every value goes through the flag's own argparse type and choices, so a file
and a command line can never mean different things. YAML 1.1 turns ``2e-3`` into a string and
``no``/``off`` into false: strings are handed to the flag's type as the command line would (so
``2e-3`` is 0.002), and a boolean is accepted only by an on/off flag, else it is an error that
says to quote the value; a value out of the flag's range (utils/cli.py) is refused as on the
command line. Relative paths stay relative to the current folder, as on the command line. The
file is UTF-8 (a byte-order mark is allowed) or UTF-16 with its byte-order mark (Windows
editors, PowerShell); any other encoding is refused in one line, as is an unknown key (with the
closest flag, when one is close). (The layout follows the flat option files of InstructIR and
BasicSR, without their nesting.)
"""

from __future__ import annotations

import argparse
import codecs
import difflib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file that cannot be read or holds a key or value the parser refuses."""


def decode_config(path: Path, data: bytes) -> str:
    """The text of a config file: UTF-8 (with or without a byte-order mark), or UTF-16 with
    its byte-order mark (what Windows editors and PowerShell's ``>`` write).

    Raises:
        ConfigError: any other encoding (Latin-1, UTF-16 without its mark), in one line that
            names the file and the first byte that is not UTF-8.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ConfigError(f"--config {path}: not valid UTF-16 ({error.reason})") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"--config {path}: not UTF-8 (byte 0x{data[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8"
        ) from error
    if "\0" in text:  # valid UTF-8, but the zero bytes of UTF-16 written without its mark
        raise ConfigError(f"--config {path}: not UTF-8 (it holds zero bytes); save it as UTF-8")
    return text


def read_config(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML file (``{}`` when empty), read as ``decode_config`` says.

    Raises:
        ConfigError: the file is missing, is not UTF-8 or UTF-16, is not YAML, or is not a
            flat mapping.
    """
    import yaml  # PyYAML, in requirements.txt

    path = Path(path)
    try:
        values = yaml.safe_load(decode_config(path, path.read_bytes()))
    except OSError as error:
        raise ConfigError(f"--config {path}: cannot read it ({error.strerror})") from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"--config {path}: not valid YAML{line}") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of flag: value")
    return values


def config_to_argv(
    values: dict[str, Any], parser: argparse.ArgumentParser, path: str | Path
) -> list[str]:
    """The command-line tokens that say what ``values`` say, each checked against its flag.

    Raises:
        ConfigError: one line naming the file and the key: an unknown key, a nested value, a
            list for a one-value flag, a YAML boolean for a flag that takes a value, or a
            value the flag's type or choices refuse.
    """
    actions = {
        action.dest: action
        for action in parser._actions
        if action.option_strings and action.dest not in ("help", "config")
    }
    argv: list[str] = []
    for key, value in values.items():
        where = f"--config {path}: {key}"
        action = actions.get(str(key))
        if action is None:
            close = closest_flag(str(key), list(actions))
            hint = f"did you mean {close}?" if close else "keys are train.py flags"
            raise ConfigError(f"--config {path}: unknown key {key!r} ({hint})")
        flag = action.option_strings[0]
        if action.nargs == 0:  # an on/off flag (store_true)
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            if value:
                argv.append(flag)
            continue
        if value is None:
            continue  # null: the flag's default
        many = action.nargs in ("+", "*")
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not many:
            raise ConfigError(f"{where}: takes one value, got a list")
        if not items and many:
            raise ConfigError(f"{where}: the list is empty")
        for item in items:
            if isinstance(item, bool):
                raise ConfigError(
                    f"{where}: YAML reads {item!r} as a boolean; quote it if you mean a string"
                )
            if isinstance(item, dict | list):
                raise ConfigError(f"{where}: nested values are not flags")
            _check_value(action, str(item), where)
        argv += [flag, *(str(item) for item in items)]
    return argv


def closest_flag(key: str, names: list[str]) -> str | None:
    """The flag an unknown key most likely means: the same name written otherwise (``LR``,
    ``--lr``, ``patch-size``), a close spelling (``epoch``), or the initials of its words
    (``learning_rate`` -> ``lr``); None when nothing is close."""
    plain = key.strip().lstrip("-").lower().replace("-", "_")
    if plain in names:
        return plain
    close = difflib.get_close_matches(plain, names, n=1)
    if close:
        return close[0]
    initials = "".join(word[0] for word in plain.split("_") if word)
    return initials if len(initials) > 1 and initials in names else None


def _check_value(action: argparse.Action, text: str, where: str) -> None:
    """Apply the flag's type and choices to ``text`` as argparse would, naming the file."""
    try:
        value = action.type(text) if action.type is not None else text
    except argparse.ArgumentTypeError as error:  # a Range (utils/cli.py) names the range
        raise ConfigError(f"{where}: {error}") from error
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: invalid value {text!r}") from error
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {text!r} is not one of {choices}")
