"""Write a folder ready to upload to the Hugging Face Hub as a model repository.

    python scripts/make_hub_folder.py --output hub/airnet-small   # the shipped weights and card
    python scripts/make_hub_folder.py --ckpt runs/ckpt/airnet_best.pth --card my_card.md \\
        --de_type denoise_15 denoise_25 denoise_50 derain dehaze --output hub/my-airnet

The folder holds what the Hub and ``load_airnet`` expect (InstructIR and timm share weights so):

- ``model.safetensors``: the weights (official key names) with the model size and the trained
  types in its metadata;
- ``config.json``: ``n_feats``, ``n_groups``, ``n_blocks``, ``de_type`` and the parameter count;
- ``README.md``: the model card (``--card``) under the Hub's YAML metadata header: ``license:
  other`` linking ``LICENSE.md`` (the card's "Terms:" paragraph: the training data's terms),
  library, pipeline tag, tags, and the card's test-set table as ``model-index`` results;
- ``LICENSE.md`` and the images the card shows.

The folder is loaded back and its output compared with the source weights' before the script
reports success. Then ``load_airnet("hub/airnet-small")``, ``torch.hub.load(..., "airnet",
checkpoint="hub/airnet-small")``, and after an upload (``hf upload OWNER/NAME hub/airnet-small``)
``load_airnet("hf://OWNER/NAME")`` with requirements-hub.txt installed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from net import AirNet, load_airnet  # noqa: E402
from utils.checkpoint import (  # noqa: E402
    HUB_CONFIG,
    HUB_WEIGHTS,
    SHIPPED_WEIGHTS,
    CheckpointError,
    load_model_state,
    read_weights,
    save_safetensors_atomic,
)
from utils.cli import ArgumentParser  # noqa: E402
from utils.outputs import check_writable_folder  # noqa: E402
from utils.paths import show_names_in_output  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402

EXIT_OK, EXIT_MISMATCH, EXIT_SETUP = 0, 1, 2
TAGS = [
    "image-restoration",
    "all-in-one-image-restoration",
    "denoising",
    "deraining",
    "dehazing",
    "airnet",
    "safetensors",
]
KEPT_FACTS = ("epoch", "step")  # of a file's recorded facts, those worth publishing


class CardError(ValueError):
    """The model card lacks something the Hub folder needs; the message says what."""


def card_terms(card: str) -> str:
    """The card's "Terms:" paragraph (from that word to the blank line), on one line."""
    match = re.search(r"^Terms:(.*?)(?:\n\s*\n|\Z)", card, re.MULTILINE | re.DOTALL)
    if not match:
        raise CardError('no paragraph starting with "Terms:" (the data\'s terms of use)')
    terms = " ".join(match[1].split())
    return terms[:1].upper() + terms[1:]


def card_results(card: str) -> list[dict[str, Any]]:
    """The rows of the card's "## Test sets" table: set, task, PSNR (dB) and SSIM.

    The table is the first one in that section whose header names "set", "task" and
    "PSNR / SSIM"; each of its rows gives "PSNR / SSIM" as two numbers.
    """
    section = re.search(r"^## Test sets.*?(?=^## |\Z)", card, re.MULTILINE | re.DOTALL)
    if not section:
        raise CardError('no "## Test sets" section')
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section[0].splitlines()
        if line.startswith("|")
    ]
    header = next((row for row in rows if row[:3] == ["set", "task", "PSNR / SSIM"]), None)
    if header is None:
        raise CardError('no table with the columns "set | task | PSNR / SSIM" under Test sets')
    results = []
    for row in rows[rows.index(header) + 1 :]:
        if set(row[0]) <= set("-: "):  # the separator row
            continue
        numbers = re.fullmatch(r"([\d.]+) / ([\d.]+)", row[2])
        if not numbers:
            break  # the end of the table
        results.append(
            {"set": row[0], "task": row[1], "psnr": float(numbers[1]), "ssim": float(numbers[2])}
        )
    if not results:
        raise CardError("the Test sets table has no PSNR / SSIM rows")
    return results


def yaml_scalar(value: Any) -> str:
    """A YAML scalar: JSON's strings and numbers are YAML's double-quoted strings and numbers."""
    return json.dumps(value, ensure_ascii=False)


def task_name(task: str) -> str:
    """The card's task column as the Hub shows it alone: "σ 15" -> "denoise σ 15"."""
    return f"denoise {task}" if task.startswith("σ") else task


def hub_header(name: str, results: list[dict[str, Any]]) -> str:
    """The Hub's YAML metadata block (between ``---`` lines) of README.md."""
    lines = [
        "---",
        "license: other",
        "license_name: research-use-data-terms",
        "license_link: LICENSE.md",
        "library_name: pytorch",
        "pipeline_tag: image-to-image",
        "tags:",
        *(f"- {yaml_scalar(tag)}" for tag in TAGS),
        "model-index:",
        f"- name: {yaml_scalar(name)}",
        "  results:",
    ]
    for result in results:
        lines += [
            "  - task:",
            "      type: image-to-image",
            f"      name: {yaml_scalar(task_name(result['task']))}",
            "    dataset:",
            f"      name: {yaml_scalar(result['set'])}",
            f"      type: {yaml_scalar(result['set'].split(' (')[0])}",
            "    metrics:",
            "    - type: psnr",
            f"      value: {yaml_scalar(result['psnr'])}",
            "      name: PSNR (dB)",
            "    - type: ssim",
            f"      value: {yaml_scalar(result['ssim'])}",
            "      name: SSIM",
        ]
    return "\n".join([*lines, "---"]) + "\n"


def usage(folder: Path, name: str) -> str:
    """The "How to load" section put after the card."""
    return f"""
## How to load

With the code of this model's repository (AirNet in PyTorch):

```python
from net import load_airnet
from utils.restore import restore

model = load_airnet("hf://OWNER/{name}")  # or this folder: load_airnet("{folder.name}")
restored = restore(rgb_uint8, model)  # (H, W, 3) uint8 in, (H, W, 3) uint8 out
```

`hf://` needs `pip install -r requirements-hub.txt`. `{HUB_CONFIG}` gives the model size and the
degradation types it was trained on; `{HUB_WEIGHTS}` holds the same in its metadata.
"""


def write_folder(
    ckpt: Path, card_path: Path, output: Path, de_type: list[str] | None, name: str
) -> None:
    """Write the Hub folder of ``ckpt`` with the model card ``card_path`` into ``output``.

    Raises:
        CardError: the card lacks its terms or its test-set table.
        CheckpointError, FileNotFoundError: the weights cannot be read.
        ValueError: no trained types are recorded and none were given.
    """
    card = card_path.read_text()
    terms, results = card_terms(card), card_results(card)
    weights = read_weights(ckpt)
    state_dict, size = load_model_state(ckpt)
    types = de_type or weights.de_type
    if not types:
        raise ValueError(f"{ckpt}: its trained types are not recorded; give --de_type")
    output.mkdir(parents=True, exist_ok=True)
    facts = {k: v for k, v in (weights.metadata or {}).items() if k in KEPT_FACTS}
    save_safetensors_atomic(state_dict, output / HUB_WEIGHTS, size, types, facts)
    model = AirNet(**size)
    config = {
        "model_type": "airnet",
        "architecture": "AirNet: CBDE + DGRN (Li et al., All-in-One Image Restoration for "
        "Unknown Corruption, CVPR 2022)",
        **{key: size[key] for key in ("n_feats", "n_groups", "n_blocks")},
        "de_type": types,
        "parameters": sum(p.numel() for p in model.parameters()),
        "input": "RGB, float32 (N, 3, H, W) in [0, 1], any H and W",
        "output": "RGB, float32 (N, 3, H, W) in [0, 1], the restored image",
    }
    (output / HUB_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    readme = hub_header(name, results) + "\n" + card.rstrip("\n") + "\n" + usage(output, name)
    (output / "README.md").write_text(readme)
    (output / "LICENSE.md").write_text(
        "# Terms of use\n\nThese weights were trained on research datasets; their terms, as the "
        f'model card (README.md, "Data") states them:\n\n{terms}\n'
    )
    for image in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", card):
        source = card_path.parent / image
        if "://" not in image and source.is_file():
            shutil.copyfile(source, output / image)


def outputs_match(ckpt: Path, folder: Path) -> bool:
    """The folder's model and the source's give the same output on a seeded 33x47 image."""
    source, copy = load_airnet(ckpt), load_airnet(folder)
    x = torch.rand(1, 3, 33, 47, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return torch.equal(source(x), copy(x))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--ckpt", type=Path, default=SHIPPED_WEIGHTS, help="any weights file")
    parser.add_argument(
        "--card", type=Path, default=SHIPPED_WEIGHTS.parent / "MODEL_CARD.md", help="model card"
    )
    parser.add_argument("--output", type=Path, required=True, help="the folder to write")
    parser.add_argument(
        "--de_type", nargs="+", default=None, help="trained types, when the file does not say"
    )
    parser.add_argument("--name", default=None, help="model name (default: the folder's name)")
    args = parser.parse_args(argv)
    if not args.card.is_file():
        print(f"{args.card}: model card not found", file=sys.stderr)
        return EXIT_SETUP
    try:
        check_writable_folder(args.output, "--output")
        write_folder(args.ckpt, args.card, args.output, args.de_type, args.name or args.output.name)
    except CardError as error:
        print(f"{args.card}: {error}", file=sys.stderr)
        return EXIT_SETUP
    except (CheckpointError, OSError, ValueError) as error:
        print(error, file=sys.stderr)
        return EXIT_SETUP
    if not outputs_match(args.ckpt, args.output):
        print(f"{args.output}: its output differs from {args.ckpt}'s; do not upload it")
        return EXIT_MISMATCH
    files = ", ".join(sorted(p.name for p in args.output.iterdir()))
    print(f"{args.output}: {files}; its output equals {args.ckpt}'s")
    return EXIT_OK


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
