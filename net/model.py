"""AirNet: All-In-One Image Restoration for Unknown Corruption.

Boyun Li, Xiao Liu, Peng Hu, Zhongqin Wu, Jiancheng Lv, Xi Peng. CVPR 2022.
https://openaccess.thecvf.com/content/CVPR2022/html/Li_All-in-One_Image_Restoration_for_Unknown_Corruption_CVPR_2022_paper.html

AirNet = CBDE (``E``: a contrastive degradation encoder) + DGRN (``R``: a restorer steered by
the encoder's features). State-dict keys equal the official checkpoints' keys.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from net.deform_conv import DCN_layer
from net.dgrn import DGRN
from net.encoder import CBDE
from utils.checkpoint import CheckpointError, load_model_state
from utils.encoder_loss import UNKNOWN_TYPE


class AirNet(nn.Module):
    """Training: ``forward(x_query, x_key) -> (restored, logits, labels)``; given each patch's
    degradation type, ``forward(x_query, x_key, types)`` returns the logits and positives of
    supervised contrast instead (``net.moco.MoCo.forward``, train.py ``--encoder_loss supcon``).
    Eval: ``forward(x) -> restored``; the key is ignored and only the query encoder runs.

    Args:
        n_feats: width of DGRN and of the encoder's first ResBlock (official 64).
        n_groups: DGGs in DGRN (official 5).
        n_blocks: DGBs per DGG (official 5).
        queue_size: MoCo queue length K (official batch_size * 256; 1280 for batch 5).
        momentum: key-encoder momentum m.
        temperature: contrastive temperature T.
        dcn_impl: deformable-convolution implementation, see ``net.deform_conv.DCN_IMPLS``.
    """

    def __init__(
        self,
        n_feats: int = 64,
        n_groups: int = 5,
        n_blocks: int = 5,
        queue_size: int = 1280,
        momentum: float = 0.999,
        temperature: float = 0.07,
        dcn_impl: str = "auto",
    ) -> None:
        super().__init__()
        self.config = {"n_feats": n_feats, "n_groups": n_groups, "n_blocks": n_blocks}
        self.R = DGRN(n_feats, n_groups, n_blocks, dcn_impl)
        self.E = CBDE(n_feats, queue_size, momentum, temperature)

    def forward(
        self,
        x_query: torch.Tensor,
        x_key: torch.Tensor | None = None,
        types: torch.Tensor | None = None,
    ):
        if self.training:
            _, logits, labels, inter = self.E(x_query, x_key, types)
            return self.R(x_query, inter), logits, labels
        _, inter = self.E(x_query)
        return self.R(x_query, inter)

    def set_dcn_impl(self, impl: str) -> None:
        """Use another deformable-convolution implementation in every DGM."""
        for module in self.modules():
            if isinstance(module, DCN_layer):
                module.impl = impl

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``, but a MoCo queue of another length is taken as is.

        The queue length is batch_size * 256 in the official code, so the official files hold
        1280, 768 or 256 columns; the queue only matters for training and is resized here.
        The state dict holds no types of the queued keys: a loaded queue's are unknown
        (train.py restores a training checkpoint's after loading).
        """
        moco = self.E.E
        queue = state_dict.get("E.E.queue")
        if queue is not None:
            if queue.shape != moco.queue.shape:
                moco.queue = torch.empty_like(queue, device=moco.queue.device)
            moco.queue_types = torch.full(
                queue.shape[1:], UNKNOWN_TYPE, dtype=torch.long, device=moco.queue_types.device
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def load_airnet(path: str | Path, device: str | torch.device = "cpu", **model_kwargs) -> AirNet:
    """Build AirNet from a checkpoint and return it in eval mode on ``device``.

    Accepts the official files (a flat state dict), our training checkpoints and exports
    (which also store the model's size), and ``module.``-prefixed DataParallel/DDP dicts.
    Keys are checked strictly. ``model_kwargs`` override the stored size.
    """
    state_dict, stored_kwargs = load_model_state(path)
    kwargs = {**(stored_kwargs or {}), **model_kwargs}
    model = AirNet(**kwargs)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(f"{path}: does not match AirNet({kwargs}): {detail}") from error
    return model.to(device).eval()
