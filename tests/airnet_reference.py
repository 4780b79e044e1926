"""An independent, functional AirNet written from ../airnet-spec facts, for the tests.

It builds the official key list with shapes, and runs the network straight from a state dict,
so that our modules can be checked against what an official checkpoint means.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.ops


def official_key_shapes(queue_size: int = 1280) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the official AirNet with its shape (584 entries)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(prefix, cin, cout, k, bias=True):
        shapes[f"{prefix}.weight"] = (cout, cin, k, k)
        if bias:
            shapes[f"{prefix}.bias"] = (cout,)

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    conv("R.head.0", 3, 64, 3)
    for g in range(5):
        for b in range(5):
            blk = f"R.body.{g}.body.{b}"
            for dgm in ("dgm1", "dgm2"):
                shapes[f"{blk}.{dgm}.dcn.weight"] = (64, 64, 3, 3)
                conv(f"{blk}.{dgm}.dcn.conv_offset_mask", 128, 27, 3)
                for branch in ("conv_gamma", "conv_beta"):
                    conv(f"{blk}.{dgm}.sft.{branch}.0", 64, 64, 1, bias=False)
                    conv(f"{blk}.{dgm}.sft.{branch}.2", 64, 64, 1, bias=False)
            conv(f"{blk}.conv1", 64, 64, 3)
            conv(f"{blk}.conv2", 64, 64, 3)
        conv(f"R.body.{g}.body.5", 64, 64, 3)
    conv("R.body.5", 64, 64, 3)
    conv("R.tail.0", 64, 3, 3)
    for enc in ("encoder_q", "encoder_k"):
        for name, cin, cout in (("E_pre", 3, 64), ("E.0", 64, 128), ("E.1", 128, 256)):
            p = f"E.E.{enc}.{name}"
            conv(f"{p}.backbone.0", cin, cout, 3, bias=False)
            bn(f"{p}.backbone.1", cout)
            conv(f"{p}.backbone.3", cout, cout, 3, bias=False)
            bn(f"{p}.backbone.4", cout)
            conv(f"{p}.shortcut.0", cin, cout, 1, bias=False)
            bn(f"{p}.shortcut.1", cout)
        shapes[f"E.E.{enc}.mlp.0.weight"] = (256, 256)
        shapes[f"E.E.{enc}.mlp.0.bias"] = (256,)
        shapes[f"E.E.{enc}.mlp.2.weight"] = (256, 256)
        shapes[f"E.E.{enc}.mlp.2.bias"] = (256,)
    shapes["E.E.queue"] = (256, queue_size)
    shapes["E.E.queue_ptr"] = (1,)
    return shapes


def random_official_state_dict(queue_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint as the official code would save it, with random but well-scaled values.

    The restorer's weights are scaled down so that the deep random network stays well
    conditioned (at full scale, 50 random DGMs amplify rounding differences of 1e-7 to O(1),
    so no two exact implementations would agree); offset convs are scaled up so that offsets
    reach many pixels and deformable sampling leaves the image (see ``first_offsets``).
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_key_shapes(queue_size).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("queue_ptr"):
            state[key] = torch.tensor([3])
        elif key.endswith("queue"):
            state[key] = F.normalize(torch.randn(shape, generator=gen), dim=0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif key.endswith(".weight") and len(shape) > 1:
            fan_in = torch.tensor(shape[1:]).prod().item()
            scale = 1.0
            if key.startswith("R."):
                scale = 20.0 if "conv_offset_mask" in key else 0.5
            state[key] = torch.randn(shape, generator=gen) * scale / fan_in**0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state


def _lrelu(x):
    return F.leaky_relu(x, 0.1)


def _resblock(sd, p, x, stride, training):
    def bn(name, y):
        return F.batch_norm(
            y, sd[f"{name}.running_mean"], sd[f"{name}.running_var"],
            sd[f"{name}.weight"], sd[f"{name}.bias"], training=training, eps=1e-5,
        )  # fmt: skip

    y = F.conv2d(x, sd[f"{p}.backbone.0.weight"], stride=stride, padding=1)
    y = _lrelu(bn(f"{p}.backbone.1", y))
    y = bn(f"{p}.backbone.4", F.conv2d(y, sd[f"{p}.backbone.3.weight"], padding=1))
    s = bn(f"{p}.shortcut.1", F.conv2d(x, sd[f"{p}.shortcut.0.weight"], stride=stride))
    return _lrelu(y + s)


def reference_encoder(sd, enc, x, training=False):
    """(fea, out, inter) of ResEncoder ``enc`` ('encoder_q' or 'encoder_k')."""
    p = f"E.E.{enc}"
    inter = _resblock(sd, f"{p}.E_pre", x, 1, training)
    y = _resblock(sd, f"{p}.E.0", inter, 2, training)
    y = _resblock(sd, f"{p}.E.1", y, 2, training)
    fea = y.mean(dim=(2, 3))
    out = F.linear(_lrelu(F.linear(fea, sd[f"{p}.mlp.0.weight"], sd[f"{p}.mlp.0.bias"])),
                   sd[f"{p}.mlp.2.weight"], sd[f"{p}.mlp.2.bias"])  # fmt: skip
    return fea, out, inter


def _conv3(sd, p, x):
    return F.conv2d(x, sd[f"{p}.weight"], sd[f"{p}.bias"], padding=1)


def _dgm(sd, p, x, inter):
    om = _conv3(sd, f"{p}.dcn.conv_offset_mask", torch.cat([x, inter], 1))
    o1, o2, m = om[:, :9], om[:, 9:18], om[:, 18:]
    dcn = torchvision.ops.deform_conv2d(
        x, torch.cat([o1, o2], 1), sd[f"{p}.dcn.weight"], padding=1, mask=torch.sigmoid(m)
    )

    def branch(name):
        h = _lrelu(F.conv2d(inter, sd[f"{p}.sft.{name}.0.weight"]))
        return F.conv2d(h, sd[f"{p}.sft.{name}.2.weight"])

    sft = x * branch("conv_gamma") + branch("conv_beta")
    return x + dcn + sft


def reference_restorer(sd, x, inter, n_groups=5, n_blocks=5):
    head = _conv3(sd, "R.head.0", x)
    r = head
    for g in range(n_groups):
        gi = r
        for b in range(n_blocks):
            p = f"R.body.{g}.body.{b}"
            o = _lrelu(_dgm(sd, f"{p}.dgm1", r, inter))
            o = _lrelu(_conv3(sd, f"{p}.conv1", o))
            o = _lrelu(_dgm(sd, f"{p}.dgm2", o, inter))
            r = _conv3(sd, f"{p}.conv2", o) + r
        r = _conv3(sd, f"R.body.{g}.body.{n_blocks}", r) + gi
    r = _conv3(sd, f"R.body.{n_groups}", r) + head
    return _conv3(sd, "R.tail.0", r)


def first_offsets(sd, x):
    """(N, 18, H, W) offsets of the first DGM in eval mode, to check how far they reach."""
    _, _, inter = reference_encoder(sd, "encoder_q", x)
    head = _conv3(sd, "R.head.0", x)
    om = _conv3(sd, "R.body.0.body.0.dgm1.dcn.conv_offset_mask", torch.cat([head, inter], 1))
    return om[:, :18]


def reference_eval(sd, x):
    """The official eval forward: encoder_q (BN running stats) then DGRN."""
    _, _, inter = reference_encoder(sd, "encoder_q", x)
    return reference_restorer(sd, x, inter)


def reference_train(sd, xq, xk, momentum=0.999, temperature=0.07):
    """The official training forward for one step: (restored, logits, labels)."""
    _, q, inter = reference_encoder(sd, "encoder_q", xq, training=True)
    q = F.normalize(q, dim=1)
    sd_k = dict(sd)
    for key in sd:
        if key.startswith("E.E.encoder_k.") and "running" not in key and "num_batches" not in key:
            qkey = key.replace("encoder_k", "encoder_q")
            sd_k[key] = sd[key] * momentum + sd[qkey] * (1 - momentum)
    _, k, _ = reference_encoder(sd_k, "encoder_k", xk, training=True)
    k = F.normalize(k, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ sd["E.E.queue"]], 1) / temperature
    return reference_restorer(sd, xq, inter), logits, torch.zeros(len(xq), dtype=torch.long)
