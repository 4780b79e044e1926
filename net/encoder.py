"""CBDE's degradation encoder (Sec. 3.1 of the AirNet paper).

Li et al., "All-In-One Image Restoration for Unknown Corruption", CVPR 2022.
The encoder maps a degraded image to a 4n-d embedding (for MoCo's contrastive loss) and,
from its first ResBlock, a full-resolution feature map ``inter`` that steers DGRN.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from net.moco import MoCo


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers with a strided 1x1 conv-BN shortcut.

    (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)
    """

    def __init__(self, in_feat: int, out_feat: int, stride: int = 1) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(in_feat, out_feat, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_feat),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(out_feat, out_feat, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_feat),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_feat, out_feat, 1, stride, bias=False),
            nn.BatchNorm2d(out_feat),
        )
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.backbone(x) + self.shortcut(x))


class ResEncoder(nn.Module):
    """Degradation encoder: E_pre keeps full resolution, E downsamples 4x and pools.

    Widths n -> 2n -> 4n (official: 64 -> 128 -> 256); ``mlp`` is MoCo's projection head.
    """

    def __init__(self, n_feats: int = 64) -> None:
        super().__init__()
        dim = 4 * n_feats
        self.E_pre = ResBlock(3, n_feats, stride=1)
        self.E = nn.Sequential(
            ResBlock(n_feats, 2 * n_feats, stride=2),
            ResBlock(2 * n_feats, dim, stride=2),
            nn.AdaptiveAvgPool2d(1),
        )
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(dim, dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (N, 3, H, W) -> fea (N, 4n), out (N, 4n), inter (N, n, H, W)."""
        inter = self.E_pre(x)  # (N, n, H, W)
        fea = self.E(inter).flatten(1)  # (N, 4n)
        out = self.mlp(fea)  # (N, 4n)
        return fea, out, inter


class CBDE(nn.Module):
    """Contrastive-Based Degradation Encoder: MoCo around two ResEncoders (keys ``E.*``)."""

    def __init__(
        self,
        n_feats: int = 64,
        queue_size: int = 1280,
        momentum: float = 0.999,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.E = MoCo(
            encoder_q=ResEncoder(n_feats),
            encoder_k=ResEncoder(n_feats),
            dim=4 * n_feats,
            queue_size=queue_size,
            momentum=momentum,
            temperature=temperature,
        )

    def forward(
        self,
        x_query: torch.Tensor,
        x_key: torch.Tensor | None = None,
        types: torch.Tensor | None = None,
    ) -> tuple:
        """Training: (fea, logits, labels, inter), with ``types`` (N,) the supervised-contrast
        form (``MoCo.forward``). Eval: (fea, inter); the key and types are ignored."""
        return self.E(x_query, x_key, types)
