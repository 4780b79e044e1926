"""Momentum Contrast (He et al., "Momentum Contrast for Unsupervised Visual Representation
Learning", CVPR 2020), as AirNet's CBDE uses it: positives are two crops of one degraded
image, negatives are other degradations in the batch and the queue. Given the degradation type
of each patch (train.py ``--encoder_loss supcon``), every key of the query's type is a positive
(utils/encoder_loss.py)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from utils.encoder_loss import UNKNOWN_TYPE


class MoCo(nn.Module):
    """Query encoder, momentum key encoder and a queue of past keys.

    Both encoders return ``(fea, out, inter)``; ``out`` is the projected embedding.
    Buffers: ``queue`` (dim, K) with L2-normalised columns, ``queue_ptr`` (1,) long, and
    ``queue_types`` (K,) long, the degradation type of each queued key (``UNKNOWN_TYPE`` where
    not given). ``queue_types`` is not persistent: it is no part of the state dict, whose keys
    stay the official checkpoints' (a training checkpoint stores it beside the model).
    """

    def __init__(
        self,
        encoder_q: nn.Module,
        encoder_k: nn.Module,
        dim: int = 256,
        queue_size: int = 1280,
        momentum: float = 0.999,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.encoder_q = encoder_q
        self.encoder_k = encoder_k
        self.encoder_k.load_state_dict(self.encoder_q.state_dict())
        self.encoder_k.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer(
            "queue_types",
            torch.full((queue_size,), UNKNOWN_TYPE, dtype=torch.long),
            persistent=False,
        )

    @property
    def queue_size(self) -> int:
        return self.queue.shape[1]

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        q_params = list(self.encoder_q.parameters())
        k_params = list(self.encoder_k.parameters())
        torch._foreach_mul_(k_params, self.momentum)
        torch._foreach_add_(k_params, q_params, alpha=1.0 - self.momentum)

    @torch.no_grad()
    def gather_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (world_size * N, ...): every rank enqueues the same keys (and their
        types) under DDP, in rank order."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return keys
        gathered = [torch.empty_like(keys) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, keys.contiguous())
        return torch.cat(gathered, dim=0)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor, types: torch.Tensor | None = None) -> None:
        """Write keys (B, dim) and their types (B,) at the pointer, wrapping around the end of
        the queue; without types, the keys' types are unknown.

        The official code asserts K % B == 0; wrapping instead lets any batch size train
        with any queue length (a batch larger than K keeps its last K keys).
        """
        keys = keys[-self.queue_size :]
        # The pointer stays a tensor: no host-device sync per step, no torch.compile graph break.
        cols = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % self.queue_size
        self.queue[:, cols] = keys.T.to(self.queue.dtype)
        # Overwritten either way, so that a type never outlives the key it was recorded for.
        self.queue_types[cols] = UNKNOWN_TYPE if types is None else types[-self.queue_size :]
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % self.queue_size)

    def forward(
        self,
        im_q: torch.Tensor,
        im_k: torch.Tensor | None = None,
        types: torch.Tensor | None = None,
    ) -> tuple:
        """Training: (fea, logits, labels, inter). Eval: (fea, inter); key and types ignored.

        Without ``types`` (the paper): logits (N, 1+K) = [q·k, q·queue] / T and labels (N,)
        long, zeros (the positive is column 0). With ``types`` (N,) long, each patch's
        degradation type (>= 0; query and key are crops of one patch's image): logits
        (N, N+K) = [q·keys of the batch, q·queue] / T and labels (N, N+K) bool, the positives
        of ``supcon`` (utils/encoder_loss.py); the keys enter the queue with their types.
        """
        if not self.training:
            fea, _, inter = self.encoder_q(im_q)
            return fea, inter
        if im_k is None:
            raise ValueError("MoCo needs a key image in training mode")
        fea, q, inter = self.encoder_q(im_q)
        q = F.normalize(q, dim=1)  # (N, dim)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            _, k, _ = self.encoder_k(im_k)
            k = F.normalize(k, dim=1)  # (N, dim)
        l_neg = q @ self.queue.clone().detach().to(q.dtype)  # (N, K)
        if types is None:
            l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
            logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature  # (N, 1+K)
            labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
            self._dequeue_and_enqueue(self.gather_keys(k))
            return fea, logits, labels, inter
        logits = torch.cat([q @ k.T, l_neg], dim=1) / self.temperature  # (N, N+K)
        key_types = torch.cat([types, self.queue_types])  # (N+K,), read before the enqueue
        labels = types[:, None] == key_types[None, :]  # (N, N+K); UNKNOWN_TYPE never matches
        self._dequeue_and_enqueue(self.gather_keys(k), self.gather_keys(types))
        return fea, logits, labels, inter
