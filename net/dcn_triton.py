"""Modulated deformable convolution (DCNv2) as Triton kernels: sampling fused into the GEMM.

Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019. Same operator,
arguments and offset layout as ``torchvision.ops.deform_conv2d(x, offset, weight, mask=mask)``
with stride 1, dilation 1, one group and one offset group (see ``net/deform_conv.py``).

The maths. For output pixel p = (n, h, w), kernel point k = i * kw + j and input channel c,

    y_k(p) = h - pad + i + offset[n, 2k, h, w]        (float32)
    x_k(p) = w - pad + j + offset[n, 2k + 1, h, w]
    y0 = floor(y_k), x0 = floor(x_k), ly = y_k - y0, lx = x_k - x0
    col[p, (k, c)] = m_k(p) * sum over the corners (yy, xx) of {y0, y0+1} x {x0, x0+1} of
                     wy(yy) * wx(xx) * x[n, c, yy, xx]
    wy(y0) = 1 - ly, wy(y0 + 1) = ly (wx likewise); corners outside the image read zero
    out[p, o] = sum_{k, c} col[p, (k, c)] * W[o, c, i, j]

an (M = N*H_out*W_out) x (K*C) by (K*C) x C_out product whose left matrix ``col`` is never
written to global memory: each program builds its (BLOCK_M, BLOCK_C) tile of ``col`` from four
gathered corner tiles of a channels-last copy of x (rows of C contiguous values), with the mask
folded into the corner weights, and feeds it straight to ``tl.dot``. Backward, with
g = dL/dout as an (M, C_out) matrix and gcol = g @ W^T (again tile by tile, never stored):

    dL/dW[o, c, i, j]   = sum_p col[p, (k, c)] * g[p, o]                  (_dcn_grad_weight)
    dL/dm_k(p)          = sum_c gcol[p, (k, c)] * col[p, (k, c)] / m_k(p)  (_dcn_grad_input:
    dL/dy_k(p)          = m_k(p) * sum_c gcol * (bottom - top)              the bilinear value
    dL/dx_k(p)          = m_k(p) * sum_c gcol * (right - left)              without the mask)
    dL/dx[n, c, yy, xx] += gcol[p, (k, c)] * m_k(p) * wy(yy) * wx(xx)     (atomic float32 adds)

where top/bottom are the x-interpolated rows y0 and y0+1, and left/right the y-interpolated
columns x0 and x0+1. The offset gradient is that of the float32 position. Positions clamp to
[-2, size] before the floor, so that any finite offset gives valid integer corners; a clamped
position has all four corners outside the image, i.e. value and gradient zero, as in DCNv2. A NaN
or infinite offset never reaches the kernels: ``_TritonDeformConv`` makes it zero and that kernel
point's mask NaN, so the output there is NaN.

Precision. Sampling positions, bilinear weights and all accumulators are float32. The columns
(and W, g) enter ``tl.dot`` in the compute dtype: bfloat16 or float16 under autocast (tensor
cores, float32 accumulation), else the input's float32, with IEEE float32 products unless
``torch.backends.cuda.matmul.allow_tf32`` is set. The input gradient is accumulated in float32.

Tuning. The configurations each kernel is tuned over are listed below (``FWD_CONFIGS``, ...);
Triton's interpreter (``TRITON_INTERPRET=1``, used by the CPU tests) runs the single small
``INTERPRET_CONFIG`` instead.
"""

from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl

from net.dcn_guard import guard_offsets

# Columns of one (BLOCK_M, BLOCK_C) tile per tap; BLOCK_N output channels per program.
FWD_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_C": 32}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_C": 64}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_C": 64}, num_warps=4, num_stages=2),
]
# gcol tiles (BLOCK_M, BLOCK_C) from (BLOCK_M, BLOCK_N) x (BLOCK_N, BLOCK_C) products.
GRAD_INPUT_CONFIGS = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_C": 32}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_C": 32}, num_warps=8, num_stages=2),
]
# (BLOCK_C, BLOCK_N) tiles of dL/dW, reduced over BLOCK_M pixels at a time.
GRAD_WEIGHT_CONFIGS = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_C": 64}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_C": 32}, num_warps=4, num_stages=2),
]
INTERPRET_CONFIG = triton.Config({"BLOCK_M": 64, "BLOCK_N": 16, "BLOCK_C": 16})

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on")
_ROWS_PER_SPLIT = 4096  # output pixels per program of the weight gradient (a split-K reduction)


def _configs(configs: list[triton.Config]) -> list[triton.Config]:
    return [INTERPRET_CONFIG] if _INTERPRET else configs


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------


@triton.jit
def _pixels(rm, M, HW_OUT, W_OUT, H, W, off_ptr, msk_ptr, s_on, s_oh, s_ow, s_mn, s_mh, s_mw):
    """Output pixel indices rm -> (n as int64, h, w, in range, n * H * W, pointers to channel 0
    of their offset and mask)."""
    n = (rm // HW_OUT).to(tl.int64)
    hw = rm % HW_OUT
    ho, wo = hw // W_OUT, hw % W_OUT
    off_pix = off_ptr + n * s_on + ho * s_oh + wo * s_ow
    msk_pix = msk_ptr + n * s_mn + ho * s_mh + wo * s_mw
    return n, ho, wo, rm < M, n * H * W, off_pix, msk_pix


@triton.jit
def _tap(off_pix, msk_pix, ho, wo, row0, valid, k, KW: tl.constexpr, PAD, H, W, C, s_oc, s_mc):
    """Bilinear corners of kernel point k for a block of output pixels.

    off_pix, msk_pix point to channel 0 of each pixel's offset and mask; row0 = n * H * W is the
    first row of each pixel's image in the (N*H*W, C) input. Returns (ly, lx, m, row00, in_y0,
    in_y1, in_x0, in_x1): fractional position, mask, the element index of corner (y0, x0),
    channel 0 (int64), and which corner rows and columns lie inside the image (all False for
    pixels out of range).
    """
    dy = tl.load(off_pix + (2 * k) * s_oc, mask=valid, other=0.0).to(tl.float32)
    dx = tl.load(off_pix + (2 * k + 1) * s_oc, mask=valid, other=0.0).to(tl.float32)
    m = tl.load(msk_pix + k * s_mc, mask=valid, other=0.0).to(tl.float32)
    py = tl.minimum(tl.maximum((ho - PAD + k // KW).to(tl.float32) + dy, -2.0), H * 1.0)
    px = tl.minimum(tl.maximum((wo - PAD + k % KW).to(tl.float32) + dx, -2.0), W * 1.0)
    y0f = tl.floor(py)
    x0f = tl.floor(px)
    y0 = y0f.to(tl.int32)
    x0 = x0f.to(tl.int32)
    in_y0 = valid & (y0 >= 0) & (y0 < H)
    in_y1 = valid & (y0 >= -1) & (y0 < H - 1)
    in_x0 = (x0 >= 0) & (x0 < W)
    in_x1 = (x0 >= -1) & (x0 < W - 1)
    row00 = (row0 + y0 * W + x0) * C
    return py - y0f, px - x0f, m, row00, in_y0, in_y1, in_x0, in_x1


@triton.jit
def _corners(x_ptr, row00, cc, c_ok, in_y0, in_y1, in_x0, in_x1, W, C, ROWS_FIRST: tl.constexpr):
    """The four corner tiles as float32: (BLOCK_M, BLOCK_C), or (BLOCK_C, BLOCK_M) if not
    ROWS_FIRST; zero outside the image."""
    if ROWS_FIRST:
        p = x_ptr + row00[:, None] + cc[None, :]
        c_ok = c_ok[None, :]
        in_y0, in_y1 = in_y0[:, None], in_y1[:, None]
        in_x0, in_x1 = in_x0[:, None], in_x1[:, None]
    else:
        p = x_ptr + row00[None, :] + cc[:, None]
        c_ok = c_ok[:, None]
        in_y0, in_y1 = in_y0[None, :], in_y1[None, :]
        in_x0, in_x1 = in_x0[None, :], in_x1[None, :]
    v00 = tl.load(p, mask=c_ok & in_y0 & in_x0, other=0.0).to(tl.float32)
    v01 = tl.load(p + C, mask=c_ok & in_y0 & in_x1, other=0.0).to(tl.float32)
    v10 = tl.load(p + W * C, mask=c_ok & in_y1 & in_x0, other=0.0).to(tl.float32)
    v11 = tl.load(p + W * C + C, mask=c_ok & in_y1 & in_x1, other=0.0).to(tl.float32)
    return v00, v01, v10, v11


@triton.autotune(configs=_configs(FWD_CONFIGS), key=["C", "C_OUT"])
@triton.jit
def _dcn_forward(
    x_ptr, off_ptr, msk_ptr, w_ptr, out_ptr,
    M, C, H, W, C_OUT, HW_OUT, W_OUT, PAD,
    s_on, s_oc, s_oh, s_ow, s_mn, s_mc, s_mh, s_mw, s_yn, s_yc, s_yh, s_yw,
    KH: tl.constexpr, KW: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """out (BLOCK_M pixels, BLOCK_N channels) = sum over taps and channel blocks of col @ W."""
    pid = tl.program_id(0)
    num_n = tl.cdiv(C_OUT, BLOCK_N)
    # Programs that share a pixel block run next to each other: its corner rows stay in L2.
    pid_m, pid_n = pid // num_n, pid % num_n
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n, ho, wo, valid, row0, off_pix, msk_pix = _pixels(
        rm, M, HW_OUT, W_OUT, H, W, off_ptr, msk_ptr, s_on, s_oh, s_ow, s_mn, s_mh, s_mw
    )
    ro = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_ok = ro < C_OUT
    rc = tl.arange(0, BLOCK_C)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, KH * KW):
        ly, lx, m, row00, in_y0, in_y1, in_x0, in_x1 = _tap(
            off_pix, msk_pix, ho, wo, row0, valid, k, KW, PAD, H, W, C, s_oc, s_mc
        )
        # Corner weights with the mask folded in: (BLOCK_M, 1) each.
        w00 = (m * (1 - ly) * (1 - lx))[:, None]
        w01 = (m * (1 - ly) * lx)[:, None]
        w10 = (m * ly * (1 - lx))[:, None]
        w11 = (m * ly * lx)[:, None]
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + rc
            c_ok = cc < C
            v00, v01, v10, v11 = _corners(
                x_ptr, row00, cc, c_ok, in_y0, in_y1, in_x0, in_x1, W, C, True
            )
            col = w00 * v00 + w01 * v01 + w10 * v10 + w11 * v11  # (BLOCK_M, BLOCK_C) float32
            wt = tl.load(
                w_ptr + (k * C + cc)[:, None] * C_OUT + ro[None, :],
                mask=c_ok[:, None] & o_ok[None, :],
                other=0.0,
            )  # (BLOCK_C, BLOCK_N) of the (K*C, C_out) weight
            acc = tl.dot(col.to(wt.dtype), wt, acc, input_precision=DOT_PRECISION)
    out = out_ptr + n[:, None] * s_yn + ro[None, :] * s_yc
    out += (ho * s_yh + wo * s_yw)[:, None]
    tl.store(out, acc, mask=valid[:, None] & o_ok[None, :])


@triton.autotune(configs=_configs(GRAD_INPUT_CONFIGS), key=["C", "C_OUT"], reset_to_zero=["gx_ptr"])
@triton.jit
def _dcn_grad_input(
    x_ptr, off_ptr, msk_ptr, w_ptr, g_ptr, gx_ptr, goff_ptr, gmsk_ptr,
    M, C, H, W, C_OUT, HW_OUT, W_OUT, PAD,
    s_on, s_oc, s_oh, s_ow, s_mn, s_mc, s_mh, s_mw, s_gn, s_gc, s_gh, s_gw,
    s_an, s_ac, s_ah, s_aw, s_bn, s_bc, s_bh, s_bw,
    KH: tl.constexpr, KW: tl.constexpr, NEED_X: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Gradients of x (atomic adds into gx, (N, H, W, C) float32), offset and mask for a block
    of BLOCK_M pixels; (s_a*) and (s_b*) are the strides of the offset and mask gradients."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n, ho, wo, valid, row0, off_pix, msk_pix = _pixels(
        rm, M, HW_OUT, W_OUT, H, W, off_ptr, msk_ptr, s_on, s_oh, s_ow, s_mn, s_mh, s_mw
    )
    rc = tl.arange(0, BLOCK_C)
    rn = tl.arange(0, BLOCK_N)
    g_pix = g_ptr + n * s_gn + ho * s_gh + wo * s_gw  # (BLOCK_M,) pointers to channel 0
    goff_pix = goff_ptr + n * s_an + ho * s_ah + wo * s_aw
    gmsk_pix = gmsk_ptr + n * s_bn + ho * s_bh + wo * s_bw
    for k in range(0, KH * KW):
        ly, lx, m, row00, in_y0, in_y1, in_x0, in_x1 = _tap(
            off_pix, msk_pix, ho, wo, row0, valid, k, KW, PAD, H, W, C, s_oc, s_mc
        )
        g_m = tl.zeros((BLOCK_M,), dtype=tl.float32)  # dL/dm_k
        g_y = tl.zeros((BLOCK_M,), dtype=tl.float32)  # dL/dy_k / m_k
        g_x = tl.zeros((BLOCK_M,), dtype=tl.float32)
        ly2, lx2 = ly[:, None], lx[:, None]
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + rc
            c_ok = cc < C
            gcol = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
            for o0 in range(0, C_OUT, BLOCK_N):
                ro = o0 + rn
                o_ok = ro < C_OUT
                g = tl.load(
                    g_pix[:, None] + ro[None, :] * s_gc,
                    mask=valid[:, None] & o_ok[None, :],
                    other=0.0,
                )  # (BLOCK_M, BLOCK_N)
                wt = tl.load(
                    w_ptr + (k * C + cc)[None, :] * C_OUT + ro[:, None],
                    mask=c_ok[None, :] & o_ok[:, None],
                    other=0.0,
                )  # (BLOCK_N, BLOCK_C): W^T
                gcol = tl.dot(g, wt, gcol, input_precision=DOT_PRECISION)
            v00, v01, v10, v11 = _corners(
                x_ptr, row00, cc, c_ok, in_y0, in_y1, in_x0, in_x1, W, C, True
            )
            top = v00 + lx2 * (v01 - v00)
            bottom = v10 + lx2 * (v11 - v10)
            left = v00 + ly2 * (v10 - v00)
            right = v01 + ly2 * (v11 - v01)
            g_m += tl.sum(gcol * (top + ly2 * (bottom - top)), axis=1)
            g_y += tl.sum(gcol * (bottom - top), axis=1)
            g_x += tl.sum(gcol * (right - left), axis=1)
            if NEED_X:
                gm = gcol * m[:, None]
                p = gx_ptr + row00[:, None] + cc[None, :]
                c2 = c_ok[None, :]
                y0, y1 = in_y0[:, None], in_y1[:, None]
                x0, x1 = in_x0[:, None], in_x1[:, None]
                tl.atomic_add(p, gm * (1 - ly2) * (1 - lx2), mask=c2 & y0 & x0, sem="relaxed")
                tl.atomic_add(p + C, gm * (1 - ly2) * lx2, mask=c2 & y0 & x1, sem="relaxed")
                tl.atomic_add(p + W * C, gm * ly2 * (1 - lx2), mask=c2 & y1 & x0, sem="relaxed")
                tl.atomic_add(p + W * C + C, gm * ly2 * lx2, mask=c2 & y1 & x1, sem="relaxed")
        tl.store(goff_pix + (2 * k) * s_ac, g_y * m, mask=valid)
        tl.store(goff_pix + (2 * k + 1) * s_ac, g_x * m, mask=valid)
        tl.store(gmsk_pix + k * s_bc, g_m, mask=valid)


@triton.autotune(configs=_configs(GRAD_WEIGHT_CONFIGS), key=["C", "C_OUT"])
@triton.jit
def _dcn_grad_weight(
    x_ptr, off_ptr, msk_ptr, g_ptr, gw_ptr,
    M, C, H, W, C_OUT, HW_OUT, W_OUT, PAD,
    s_on, s_oc, s_oh, s_ow, s_mn, s_mc, s_mh, s_mw, s_gn, s_gc, s_gh, s_gw,
    KH: tl.constexpr, KW: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Partial dL/dW (BLOCK_C, BLOCK_N) of tap k over split s of the pixels: gw[s, k*C + c, o].

    Grid: (K * channel blocks * output blocks, splits). col^T tiles (BLOCK_C, BLOCK_M) are built
    transposed, so the product needs no transpose; the splits are summed by the caller.
    """
    pid = tl.program_id(0)
    split = tl.program_id(1)
    num_c = tl.cdiv(C, BLOCK_C)
    num_n = tl.cdiv(C_OUT, BLOCK_N)
    k = pid // (num_c * num_n)
    cc = (pid // num_n) % num_c * BLOCK_C + tl.arange(0, BLOCK_C)
    ro = pid % num_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ok = cc < C
    o_ok = ro < C_OUT
    blocks = tl.cdiv(M, BLOCK_M)
    per_split = tl.cdiv(blocks, tl.num_programs(1))
    acc = tl.zeros((BLOCK_C, BLOCK_N), dtype=tl.float32)
    for b in range(split * per_split, tl.minimum((split + 1) * per_split, blocks)):
        rm = b * BLOCK_M + tl.arange(0, BLOCK_M)
        n, ho, wo, valid, row0, off_pix, msk_pix = _pixels(
            rm, M, HW_OUT, W_OUT, H, W, off_ptr, msk_ptr, s_on, s_oh, s_ow, s_mn, s_mh, s_mw
        )
        ly, lx, m, row00, in_y0, in_y1, in_x0, in_x1 = _tap(
            off_pix, msk_pix, ho, wo, row0, valid, k, KW, PAD, H, W, C, s_oc, s_mc
        )
        v00, v01, v10, v11 = _corners(
            x_ptr, row00, cc, c_ok, in_y0, in_y1, in_x0, in_x1, W, C, False
        )  # (BLOCK_C, BLOCK_M) each
        ly2, lx2, m2 = ly[None, :], lx[None, :], m[None, :]
        col_t = m2 * (
            (1 - ly2) * ((1 - lx2) * v00 + lx2 * v01) + ly2 * ((1 - lx2) * v10 + lx2 * v11)
        )
        g_pix = g_ptr + n * s_gn + ho * s_gh + wo * s_gw
        g = tl.load(
            g_pix[:, None] + ro[None, :] * s_gc, mask=valid[:, None] & o_ok[None, :], other=0.0
        )  # (BLOCK_M, BLOCK_N)
        acc = tl.dot(col_t.to(g.dtype), g, acc, input_precision=DOT_PRECISION)
    gw = gw_ptr + (split * (KH * KW) * C + k * C + cc)[:, None] * C_OUT + ro[None, :]
    tl.store(gw, acc, mask=c_ok[:, None] & o_ok[None, :])


# ----------------------------------------------------------------------------------------------
# autograd
# ----------------------------------------------------------------------------------------------


def _rows(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, C, H, W) -> contiguous (N, H, W, C) in ``dtype``: one copy at most (none if x is
    already channels-last in that dtype)."""
    rows = x.permute(0, 2, 3, 1)
    if rows.is_contiguous() and x.dtype == dtype:
        return rows
    return torch.empty(rows.shape, dtype=dtype, device=x.device).copy_(rows)


def _dot_precision(dtype: torch.dtype) -> str:
    """IEEE float32 products unless PyTorch allows TF32 in matmuls (off by default)."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 and not _INTERPRET:
        return "tf32"
    return "ieee"


def _strides(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.stride())


class _TritonDeformConv(torch.autograd.Function):
    """Keeps the channels-last input copy and the (K*C, C_out) weight in the compute dtype.

    The kernels see offsets and masks through ``guard_offsets``: a NaN or infinite offset becomes
    zero and its kernel point's mask NaN, so the output there is NaN. Backward recomputes the
    guard from the saved inputs instead of keeping a guarded copy.
    """

    @staticmethod
    def forward(ctx, x, offset, mask, weight, padding, dtype):  # noqa: ANN001, ANN205
        n, c, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        h_out, w_out = offset.shape[-2:]
        x_rows = _rows(x, dtype)  # (N, H, W, C)
        w_mat = weight.permute(2, 3, 1, 0).reshape(kh * kw * c, c_out).to(dtype)  # (K*C, C_out)
        ctx.save_for_backward(x_rows, offset, mask, w_mat)
        offset, mask = guard_offsets(offset, mask)
        fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
        out = torch.empty((n, c_out, h_out, w_out), dtype=dtype, device=x.device)
        out = out.contiguous(memory_format=fmt)
        m_total = n * h_out * w_out
        if m_total > 0:

            def grid(meta):  # noqa: ANN001, ANN202
                return (
                    triton.cdiv(m_total, meta["BLOCK_M"]) * triton.cdiv(c_out, meta["BLOCK_N"]),
                )

            _dcn_forward[grid](
                x_rows, offset, mask, w_mat, out,
                m_total, c, h, w, c_out, h_out * w_out, w_out, padding,
                *_strides(offset), *_strides(mask), *_strides(out),
                KH=kh, KW=kw, DOT_PRECISION=_dot_precision(dtype),
            )  # fmt: skip
        ctx.meta = (padding, dtype, x.dtype, weight.dtype, fmt, (kh, kw))
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        x_rows, offset, mask, w_mat = ctx.saved_tensors
        offset, mask = guard_offsets(offset, mask)
        padding, dtype, x_dtype, w_dtype, fmt, (kh, kw) = ctx.meta
        n, h, w, c = x_rows.shape
        c_out = w_mat.shape[1]
        h_out, w_out = offset.shape[-2:]
        m_total = n * h_out * w_out
        need_x, need_offset, need_mask, need_weight = ctx.needs_input_grad[:4]
        g = grad_out.to(dtype)  # (N, C_out, H_out, W_out), any strides
        precision = _dot_precision(dtype)
        grad_x = grad_offset = grad_mask = grad_weight = None
        if (need_x or need_offset or need_mask) and m_total > 0:
            gx_rows = torch.zeros(x_rows.shape, dtype=torch.float32, device=x_rows.device)
            grad_offset, grad_mask = torch.empty_like(offset), torch.empty_like(mask)
            _dcn_grad_input[lambda meta: (triton.cdiv(m_total, meta["BLOCK_M"]),)](
                x_rows, offset, mask, w_mat, g, gx_rows, grad_offset, grad_mask,
                m_total, c, h, w, c_out, h_out * w_out, w_out, padding,
                *_strides(offset), *_strides(mask), *_strides(g),
                *_strides(grad_offset), *_strides(grad_mask),
                KH=kh, KW=kw, NEED_X=need_x, DOT_PRECISION=precision,
            )  # fmt: skip
            if need_x:
                grad_x = gx_rows.permute(0, 3, 1, 2).to(x_dtype).contiguous(memory_format=fmt)
        if need_weight:
            splits = max(1, min(triton.cdiv(m_total, _ROWS_PER_SPLIT), 64))
            partial = torch.empty(
                (splits, kh * kw * c, c_out), dtype=torch.float32, device=g.device
            )

            def grid(meta):  # noqa: ANN001, ANN202
                tiles = triton.cdiv(c, meta["BLOCK_C"]) * triton.cdiv(c_out, meta["BLOCK_N"])
                return (kh * kw * tiles, splits)

            _dcn_grad_weight[grid](
                x_rows, offset, mask, g, partial,
                m_total, c, h, w, c_out, h_out * w_out, w_out, padding,
                *_strides(offset), *_strides(mask), *_strides(g),
                KH=kh, KW=kw, DOT_PRECISION=precision,
            )  # fmt: skip
            grad_weight = partial.sum(0).view(kh, kw, c, c_out).permute(3, 2, 0, 1)
            grad_weight = grad_weight.to(w_dtype).contiguous()
        return grad_x, grad_offset, grad_mask, grad_weight, None, None


def _is_channels_last(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of the columns: autocast's 16-bit type when autocast is on, else x's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


# Already one fused op: torch.compile runs it as it is, between its graphs, rather than
# tracing the autotuner and the launch code.
@torch.compiler.disable
def deform_conv2d_triton(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    padding: int = 1,
) -> torch.Tensor:
    """DCNv2 (stride 1, dilation 1, one group), no bias; same arguments as torchvision's.

    Computes in ``compute_dtype(x)``: float32, or bfloat16/float16 columns with float32
    positions and accumulation under autocast (or for 16-bit inputs).

    Args:
        x: (N, C_in, H, W) on CUDA (or on the CPU under ``TRITON_INTERPRET=1``).
        offset: (N, 2*kh*kw, H_out, W_out), interleaved (dy, dx) per kernel point.
        mask: (N, kh*kw, H_out, W_out).
        weight: (C_out, C_in, kh, kw).

    Returns:
        (N, C_out, H_out, W_out) in the compute dtype, in x's memory format; NaN at the pixels
        where an offset is NaN or infinite (``net.dcn_guard.guard_offsets``).
    """
    if x.device.type != "cuda" and not _INTERPRET:
        raise ValueError(
            f"the Triton DCN runs on CUDA tensors (got {x.device}); on the CPU use "
            "dcn_impl='gather', or set TRITON_INTERPRET=1 before importing net.dcn_triton"
        )
    dtype = compute_dtype(x)
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"the Triton DCN computes in float32, bfloat16 or float16, not {dtype}")
    # Triton launches on the current CUDA device; autograd runs backward on the tensors' own.
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        return _TritonDeformConv.apply(x, offset, mask, weight, padding, dtype)
