"""Fixtures and stand-ins that several test files share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from net import AirNet


@pytest.fixture(autouse=True)
def image_hash_cache(tmp_path_factory, monkeypatch) -> Path:
    """train.py and test.py cache image hashes under XDG_CACHE_HOME (utils/fingerprints.py):
    in the tests, a folder of their own, never the user's ~/.cache."""
    root = tmp_path_factory.getbasetemp() / "xdg_cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A seeded tiny AirNet (8/1/1, queue 16) saved as ``{"model", "args"}``, as train.py
    exports a reduced-size model."""
    torch.manual_seed(0)
    model = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    args = {"n_feats": 8, "n_groups": 1, "n_blocks": 1}
    torch.save({"model": model.state_dict(), "args": args}, path)
    return path
