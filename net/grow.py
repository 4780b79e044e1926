"""Growing a trained DGRN by whole groups that start as the identity (``train.py --grow_groups``).

A DGG ends in ``last(out) + x`` (``net.dgrn.DGG``): with the weight and bias of its last conv at
zero it returns its input unchanged whatever its blocks compute. A network of n + k groups whose
k added groups are so initialised restores exactly as the n-group file it grew from, and
training then gives the added blocks work from the file's quality onward instead of from
scratch. This is the function-preserving growth of Net2Net (Chen, Goodfellow & Shlens, ICLR
2016) with the zero-initialised residual branch of Goyal et al. (2017, "Accurate, large
minibatch SGD", Sec. 5.1); it is not in the AirNet paper, and inference is unchanged.

The added groups go after the file's groups and before DGRN's closing conv, so the file's keys
keep their names except that closing conv's (``R.body.{n}`` becomes ``R.body.{n + k}``).
"""

from __future__ import annotations

import torch

BODY = "R.body."


def count_groups(state_dict: dict[str, torch.Tensor]) -> int:
    """The number of DGGs in an AirNet state dict: the indices ``R.body.{i}.body...`` hold a
    DGG, the one index without ``.body.`` under it is DGRN's closing conv.

    Raises:
        ValueError: the state dict has no DGRN body (not an AirNet state dict).
    """
    indices = {int(key[len(BODY) :].split(".")[0]) for key in state_dict if key.startswith(BODY)}
    if not indices:
        raise ValueError("no R.body.* keys: not an AirNet state dict")
    return max(indices)  # indices 0 .. n - 1 are groups, n is the closing conv


def grown_state_dict(
    state_dict: dict[str, torch.Tensor],
    fresh: dict[str, torch.Tensor],
    added: int,
) -> dict[str, torch.Tensor]:
    """The state dict of a DGRN with ``added`` more groups, restoring exactly as ``state_dict``.

    Args:
        state_dict: the trained AirNet's weights (n groups).
        fresh: a freshly initialised AirNet's state dict of the grown size (n + added groups,
            the same width and blocks per group): the added groups' blocks keep its random
            weights, so that their gradients are not all alike.
        added: groups to add, >= 1.

    Returns:
        A state dict for the grown model: every tensor of ``state_dict`` (the closing conv
        renamed), the added groups from ``fresh`` with their last conv at zero.

    Raises:
        ValueError: ``added`` < 1, or ``fresh`` is not ``state_dict``'s size plus ``added``
            groups (its keys or shapes do not line up).
    """
    if added < 1:
        raise ValueError(f"groups to add must be >= 1, got {added}")
    n, grown_n = count_groups(state_dict), count_groups(fresh)
    if grown_n != n + added:
        raise ValueError(f"the grown model has {grown_n} groups, not {n} + {added} = {n + added}")
    closing_old, closing_new = f"{BODY}{n}.", f"{BODY}{n + added}."
    grown = {}
    for key, value in state_dict.items():
        grown[closing_new + key[len(closing_old) :] if key.startswith(closing_old) else key] = value
    for index in range(n, n + added):
        group = f"{BODY}{index}."
        keys = [key for key in fresh if key.startswith(group)]
        last = max(int(key[len(group) :].split(".")[1]) for key in keys)  # body.{last} = conv
        for key in keys:
            value = fresh[key].clone()
            if key.startswith(f"{group}body.{last}."):
                value.zero_()  # the group's residual branch: the group starts as the identity
            grown[key] = value
    for key, value in grown.items():
        if key not in fresh or fresh[key].shape != value.shape:
            raise ValueError(f"{key}: the file's tensor does not fit the grown model")
    missing = sorted(set(fresh) - set(grown))
    if missing:
        raise ValueError(f"the grown model has weights the file lacks: {missing[:3]}")
    return grown
