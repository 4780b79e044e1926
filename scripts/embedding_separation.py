"""Does the degradation encoder tell the types apart? Nearest-centroid accuracy on held-out images.

    python scripts/embedding_separation.py CKPT... --val_denoise_dir D --val_derain_dir R \\
        --val_dehaze_dir H [--val_deblur_dir B --val_lowlight_dir L] [--de_type ...] [--clean] \\
        [--val_images 15 --val_crop 256] [--patch 64 --patches 4 --seed 0] [--features fea]

AirNet is blind: DGRN is steered only by what CBDE extracts from the degraded input, so a type
whose embedding cannot be told from another's gets the other's restoration. This measures that
directly. From the validation split train.py uses (utils/train_dataset.py's
``build_validation_set``: same images, crops and seeded noise), ``--patches`` random
``--patch``² crops are taken from every image, as training crops its patches, and embedded with
the query encoder in eval mode:

- ``--features fea``: CBDE's pooled vector (N, 4·n_feats), the representation the contrastive
  loss trains (before MoCo's projection head);
- ``--features inter``: what DGRN actually receives, the per-pixel map ``inter`` (N, n_feats,
  H, W), summarised per patch by its channel means and standard deviations (N, 2·n_feats).

Each vector is L2-normalised; a patch is classified by the nearest type centroid (cosine),
the centroids computed without the patch's own image (leave one image out, so an image cannot
vote for itself). Printed: a markdown row per file with each type's accuracy and chance
(1 / number of types). This is a diagnostic of the encoder, not a metric of restoration; a
linear probe could separate more than a centroid does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from average_weights import add_validation_arguments, validation_types  # noqa: E402

from net import AirNet, load_airnet  # noqa: E402
from utils.checkpoint import CheckpointError  # noqa: E402
from utils.cli import PATCH_SIZE, SEED, ArgumentParser, Range  # noqa: E402
from utils.paths import show_names_in_output  # noqa: E402
from utils.stop import run_interruptible  # noqa: E402
from utils.train_dataset import TYPE_FOLDERS, DataError, build_validation_set  # noqa: E402

FEATURES = ("fea", "inter")


def random_patches(
    image: np.ndarray, patch: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` random patch x patch crops of uint8 (H, W, 3) -> uint8 (count, patch, patch, 3).

    Raises:
        ValueError: the image is smaller than ``patch`` on a side.
    """
    height, width = image.shape[:2]
    if min(height, width) < patch:
        raise ValueError(f"a {width}x{height} image is smaller than --patch {patch}")
    tops = rng.integers(0, height - patch + 1, count)
    lefts = rng.integers(0, width - patch + 1, count)
    return np.stack([image[t : t + patch, s : s + patch] for t, s in zip(tops, lefts, strict=True)])


@torch.no_grad()
def embed(model: AirNet, patches: np.ndarray, features: str = "fea") -> torch.Tensor:
    """uint8 (N, P, P, 3) patches -> L2-normalised float32 (N, D) embeddings.

    ``features`` "fea": CBDE's pooled vector, D = 4·n_feats; "inter": DGRN's steering map
    summarised by channel means and standard deviations, D = 2·n_feats.
    """
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, P, P) in [0, 1]
    fea, inter = model.eval().E(x)
    if features == "inter":
        fea = torch.cat([inter.mean(dim=(2, 3)), inter.std(dim=(2, 3))], dim=1)
    elif features != "fea":
        raise ValueError(f"features must be one of {FEATURES}, not {features!r}")
    return F.normalize(fea.float().flatten(1), dim=1)


def nearest_centroid_accuracy(
    vectors: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """Leave-one-group-out nearest-centroid accuracy per label.

    Args:
        vectors: (N, D) L2-normalised embeddings.
        labels: (N,) int64 type index in [0, T).
        groups: (N,) int64 image id; a vector's own group is left out of every centroid.

    Returns:
        (T,) float64: the fraction of each label's vectors whose nearest centroid (largest
        cosine) is their own label's.

    Raises:
        ValueError: a label has vectors of one group only (no centroid without it).
    """
    n_labels = int(labels.max()) + 1
    correct = torch.zeros(n_labels, dtype=torch.float64)
    total = torch.zeros(n_labels, dtype=torch.float64)
    for label in range(n_labels):
        if len(torch.unique(groups[labels == label])) < 2:
            raise ValueError(f"type {label} needs at least two images")
    for index in range(len(vectors)):
        keep = groups != groups[index]
        centroids = torch.stack(
            [vectors[keep & (labels == label)].mean(0) for label in range(n_labels)]
        )  # (T, D)
        predicted = int((F.normalize(centroids, dim=1) @ vectors[index]).argmax())
        correct[labels[index]] += predicted == int(labels[index])
        total[labels[index]] += 1
    return correct / total


def separation(path: Path, images: list, types: list[str], args: argparse.Namespace) -> list:
    """Per-type accuracy of one file on the validation ``images`` (ValidationImage list)."""
    for de_type in types:
        found = sum(image.de_type == de_type for image in images)
        if found < 2:
            key = TYPE_FOLDERS[de_type]
            raise ValueError(
                f"{de_type}: {found} validation image in --val_{key}_dir; the accuracy leaves "
                "one image out, so it needs at least two images per type"
            )
    model = load_airnet(path)
    rng = np.random.default_rng(args.seed)  # the same patches for every file
    vectors, labels, groups = [], [], []
    for group, image in enumerate(images):
        patches = random_patches(image.degraded, args.patch, args.patches, rng)
        vectors.append(embed(model, patches, args.features))
        labels += [types.index(image.de_type)] * args.patches
        groups += [group] * args.patches
    accuracy = nearest_centroid_accuracy(
        torch.cat(vectors), torch.tensor(labels), torch.tensor(groups)
    )
    return accuracy.tolist()


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_validation_arguments(parser, val_images=15)
    parser.add_argument(
        "--patch", type=PATCH_SIZE, default=64, help="patch side in px (training's)"
    )
    parser.add_argument("--patches", type=Range(int, 1, 1000), default=4, help="patches per image")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the patch positions")
    parser.add_argument("--features", choices=FEATURES, default="fea")
    args = parser.parse_args(argv)
    try:
        types = validation_types(args.ckpts, args)
        folders = {
            key: getattr(args, f"val_{key}_dir") for key in dict.fromkeys(TYPE_FOLDERS.values())
        }
        images = build_validation_set(types, folders, args.val_images, args.val_crop)
        print(f"| file | {' | '.join(types)} | chance |")
        print("|---|" + "---|" * (len(types) + 1))
        for path in args.ckpts:
            cells = " | ".join(f"{a:.2f}" for a in separation(path, images, types, args))
            print(f"| {path} | {cells} | {1 / len(types):.2f} |", flush=True)
    except (DataError, CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    show_names_in_output()
    sys.exit(run_interruptible(main))
