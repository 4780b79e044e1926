"""The degradation encoder's training objective (``--encoder_loss``).

``moco`` (the paper's): MoCo's InfoNCE. Each query's one positive is the key of the other crop
of its own image; every queued key is a negative, whatever its degradation:

    L = mean over queries i of -log softmax(z_i)[0],   z_i = [q_i·k_i, q_i·queue] / T.

``supcon``: supervised contrast over MoCo's keys, Khosla et al., "Supervised Contrastive
Learning" (NeurIPS 2020), https://arxiv.org/abs/2004.11362, in their L_out form (the mean over
positives outside the log, which they found the better of the two). The degradation type of
each patch is known in training, so every key of the query's type is a positive: its own key,
the batch's other keys of that type and every queued key of that type. With A(i) every key the
query is compared with (this batch's N keys, then the queue's K) and P(i) ⊆ A(i) its positives,

    L = mean over queries i of  -1/|P(i)| · sum over p in P(i) of log softmax(z_i)[p],
    z_i = [q_i·k_1 ... q_i·k_N, q_i·queue] / T.

A queued key whose type is unknown (-1: the random initial queue, or keys queued by a run or a
file that did not record types) is never a positive and always a negative. With a single
positive per query, L is the cross-entropy of that positive: InfoNCE on the same logits.

The paper's objective never says which patches share a degradation: another image of the same
degradation is a negative like any other key. Supervised contrast uses the type that the
training data knows and asks the embedding to group by it. Only training changes: the encoder's
architecture, its eval forward and the exported files' keys are the paper's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ENCODER_LOSSES = ("moco", "supcon")
UNKNOWN_TYPE = -1  # a queued key whose degradation type was not recorded


def supervised_contrastive_loss(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Khosla et al.'s L_out over given logits (module docstring).

    Args:
        logits: (N, C) similarities over temperature, any float dtype (computed in fp32).
        positives: (N, C) bool, True where column c is a positive of query n; every row needs
            one (MoCo's mask always holds the query's own key), else its loss is NaN.

    Returns:
        The scalar loss, averaged over the N queries.
    """
    log_prob = F.log_softmax(logits.float(), dim=1)  # (N, C)
    per_positive = log_prob.masked_fill(~positives, 0.0).sum(dim=1)  # (N,)
    return -(per_positive / positives.sum(dim=1)).mean()


def contrastive_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The encoder's loss on MoCo's training outputs.

    Args:
        logits: (N, C) similarities over temperature.
        labels: as MoCo returns them: (N,) long, the index of each query's one positive
            (``moco``: cross-entropy, the paper's InfoNCE), or (N, C) bool, every positive
            (``supcon``: ``supervised_contrastive_loss``).
    """
    if labels.dtype == torch.bool:
        return supervised_contrastive_loss(logits, labels)
    return F.cross_entropy(logits, labels)


def contrastive_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How often the highest-scoring key is a positive (top-1), for labels of either form of
    ``contrastive_loss``; a scalar float tensor in [0, 1]."""
    best = logits.argmax(dim=1)  # (N,)
    if labels.dtype == torch.bool:
        return labels.gather(1, best[:, None]).float().mean()
    return (best == labels).float().mean()
