"""Modulated deformable convolution as a weighted row gather plus one matrix product.

Why it is fast on CPU: in channels-last layout a bilinear sample of all C channels is a weighted
sum of four contiguous rows of C floats. ``F.embedding_bag(mode="sum", per_sample_weights=...)``
does exactly that (with fbgemm's vectorised kernel for float32), so the (N*H*W*k*k, C) columns
come from one call, with the mask folded into the four corner weights. The convolution is then a
single GEMM with the weight laid out as (C_out, k*k*C).

Zeros outside the image: the corners of sample positions are clamped to [-2, size] and the
channels-last copy of the input gets a two-pixel zero border, so every corner row exists and those
outside the image read zero; no validity masks are needed, and a clamped sample has zero value and
zero gradient, as in DCNv2. A NaN or infinite offset reads the border too, with NaN corner weights:
the output at that pixel is NaN rather than an out-of-range index.

Backward (``_GatherDeformConv``) keeps only its inputs (x, offset, mask, weight) and recomputes
the corner indices and weights and the columns, so no k*k*C-channel tensor lives between forward
and backward. The input gradient is a scatter of the column gradients to the corner rows; it is
computed as a gather too, by sorting the corner rows once (CSR order) and calling embedding_bag
with one bag per input row.

bfloat16 (``dtype=torch.bfloat16``, the path ``net/deform_conv.py`` takes under a bf16 autocast
on CPU): positions, fractions and corner weights are computed in float32 (a bf16 position near
x = 256 would be off by up to 1 px); the corner rows are gathered from a bf16 table (the weights
enter embedding_bag rounded to bf16, a 2**-8 relative error, the same as the column's own
rounding; it sums the four corners in float32), and the GEMMs multiply bf16 operands with float32
accumulation. Backward: the corner-weight gradients, and so the offset and mask gradients, come
from a float32 gather of the same bf16 values; the weight gradient sums per-chunk bf16 GEMMs in
float32, the input gradient sums per-chunk bf16 scatters in float32. Outputs and gradients take
the dtype of the tensor they belong to.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

_BORDER = 2  # zero rows around the image: corners of clamped positions land in [-2, size + 1]
_CHUNK_BYTES = 8 * 2**20  # columns per chunk: stays in cache, and below glibc's mmap threshold


class _Samples(NamedTuple):
    """Bilinear corners of the S = rows*W_out*k*k samples of a chunk, ordered (h, w, k)."""

    index: torch.Tensor  # (S, 4) rows of the padded channels-last input; (y0x0, y0x1, y1x0, y1x1)
    weight: torch.Tensor  # (S, 4) bilinear weight * mask
    frac: torch.Tensor  # (S, 2): (ly, lx), the fractional parts of the sample position
    mask: torch.Tensor  # (rows, W_out, K) view of the mask


def _padded_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> contiguous channels-last rows (N*(H+4)*(W+4), C) with a zero border."""
    n, c, h, w = x.shape
    rows = x.new_zeros(n, h + 2 * _BORDER, w + 2 * _BORDER, c)
    rows[:, _BORDER:-_BORDER, _BORDER:-_BORDER] = x.permute(0, 2, 3, 1)
    return rows.view(-1, c)


def _is_channels_last(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _base_positions(
    h_out: int, w_out: int, kernel: tuple[int, int], padding: int, dtype: torch.dtype, device
) -> torch.Tensor:
    """(H_out, W_out, K, 2) image (y, x) of output pixel + kernel point, before the offset.

    Offsets are added to these absolute positions, in torchvision's order of operations, so
    that a sample within float rounding of an integer falls on the same side as torchvision's.
    """
    kh, kw = kernel
    tap_y = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw) - padding  # (K,)
    tap_x = torch.arange(kw, device=device, dtype=dtype).repeat(kh) - padding
    base_y = torch.arange(h_out, device=device, dtype=dtype).view(h_out, 1, 1) + tap_y
    base_x = torch.arange(w_out, device=device, dtype=dtype).view(1, w_out, 1) + tap_x
    return torch.stack(torch.broadcast_tensors(base_y, base_x), -1)


def _sample(
    offset: torch.Tensor,
    mask: torch.Tensor,
    base: torch.Tensor,
    row0: int,
    first_row: int,
    size: tuple[int, int],
) -> _Samples:
    """Corners for output rows row0.. of one image.

    Args:
        offset: (2*K, rows, W_out) of that image, interleaved (dy, dx).
        mask: (K, rows, W_out).
        base: (H_out, W_out, K, 2) from ``_base_positions``.
        row0: first output row of the chunk.
        first_row: index of the image's first padded row in the (N*(H+4)*(W+4), C) table.
        size: (H, W) of the input.
    """
    height, width = size
    _, rows, w_out = offset.shape
    k = mask.shape[0]
    off = offset.permute(1, 2, 0).view(rows, w_out, k, 2)  # (rows, Wo, K, (dy, dx)), a view
    pos = torch.add(off, base[row0 : row0 + rows], out=offset.new_empty(rows, w_out, k, 2))
    top_left = pos.floor()
    # The fraction of the unclamped position: NaN where it is NaN or +-inf, which makes the
    # corner weights and so the output NaN (a diverged run stops on its non-finite loss). A
    # finite far position gets a fraction in [0, 1) and, clamped, corners that all read zero.
    frac = pos.sub_(top_left)  # (rows, Wo, K, 2): (ly, lx)
    # Corners clamped to [-2, size] (integer bounds commute with floor) so that far samples read
    # the zero border whatever their fraction, and NaN ones too. Scalar bounds per coordinate:
    # several times faster than one clamp to a broadcast (2,) bound.
    top_left[..., 0].clamp_(-_BORDER, height)
    top_left[..., 1].clamp_(-_BORDER, width)
    top_left.nan_to_num_(nan=-_BORDER)
    ly, lx = frac[..., 0], frac[..., 1]
    m = mask.permute(1, 2, 0)  # (rows, Wo, K), a view
    # Corner weights (1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx times the mask, from whole planes:
    # products of (.., 2) and (.., 2, 2) broadcasts are several times slower on CPU.
    m_ly = m * ly
    m_1ly = m - m_ly
    one_lx = 1 - lx
    weight = torch.stack([m_1ly * one_lx, m_1ly * lx, m_ly * one_lx, m_ly * lx], -1)
    padded_w = width + 2 * _BORDER
    # int32 indices make embedding_bag faster; int64 only for tables beyond 2**31 rows.
    table_rows = first_row + (height + 2 * _BORDER) * padded_w
    idx_dtype = torch.int32 if table_rows < 2**31 else torch.int64
    corner = torch.tensor([0, 1, padded_w, padded_w + 1], device=offset.device, dtype=idx_dtype)
    corner += first_row + _BORDER * padded_w + _BORDER  # image (0, 0) in the padded table
    yx = top_left.to(idx_dtype)
    index = yx[..., 1].add(yx[..., 0], alpha=padded_w).view(-1, 1) + corner  # (S, 4)
    return _Samples(index, weight.view(-1, 4), frac.view(-1, 2), m)


def _row_chunks(n: int, h_out: int, w_out: int, per_pixel_bytes: int) -> list[tuple[int, int, int]]:
    """(image, first row, end row) chunks whose columns take about ``_CHUNK_BYTES``."""
    step = max(1, min(h_out, _CHUNK_BYTES // max(1, w_out * per_pixel_bytes)))
    return [(i, r, min(r + step, h_out)) for i in range(n) for r in range(0, h_out, step)]


def _scatter_rows(
    grad_rows: torch.Tensor, grad_cols: torch.Tensor, index: torch.Tensor, weight: torch.Tensor
) -> None:
    """grad_rows[index[s, c]] += weight[s, c] * grad_cols[s], written as a gather.

    Sorting the corner entries by row gives one bag per row of the touched range, so
    embedding_bag's vectorised kernel does the reduction without atomics or scatter.
    """
    flat = index.view(-1)
    row_sorted, order = torch.sort(flat)
    lo, hi = int(row_sorted[0]), int(row_sorted[-1])
    counts = torch.bincount(row_sorted - lo, minlength=hi - lo + 1)  # (hi - lo + 1,)
    offsets = torch.cumsum(counts, 0) - counts  # start of each row's bag
    sample = torch.div(order, 4, rounding_mode="floor")
    grad_rows[lo : hi + 1] += F.embedding_bag(
        sample, grad_cols, offsets, mode="sum", per_sample_weights=weight.view(-1)[order]
    )


class _GatherDeformConv(torch.autograd.Function):
    """DCNv2 in chunks of output rows; backward recomputes the columns instead of storing them."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, padding, dtype):  # noqa: ANN001, ANN205
        n, c, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        h_out, w_out = offset.shape[-2:]
        k = kh * kw
        col_dtype, pos_dtype = _dtypes(x, offset, dtype)
        rows = _padded_rows(x.to(col_dtype))  # (N*(H+4)*(W+4), C)
        plane = rows.shape[0] // n
        w_mat_t = weight.to(col_dtype).permute(2, 3, 1, 0).reshape(k * c, c_out)  # (K*C, C_out)
        channels_last = _is_channels_last(x)
        # Output in the input's memory format; channels-last rows come straight out of the GEMM.
        shape = (n, h_out, w_out, c_out) if channels_last else (n, c_out, h_out, w_out)
        out = x.new_empty(shape, dtype=col_dtype)
        chunks = _row_chunks(n, h_out, w_out, k * c * rows.element_size())
        base = _base_positions(h_out, w_out, (kh, kw), padding, pos_dtype, offset.device)
        for i, r0, r1 in chunks:
            s = _sample(
                offset[i, :, r0:r1].to(pos_dtype),
                mask[i, :, r0:r1].to(pos_dtype),
                base, r0, i * plane, (h, w),
            )  # fmt: skip
            cols = F.embedding_bag(
                s.index, rows, per_sample_weights=s.weight.to(col_dtype), mode="sum"
            ).view(-1, k * c)  # (rows*Wo, K*C)
            if channels_last:
                torch.mm(cols, w_mat_t, out=out[i, r0:r1].view(-1, c_out))
            else:
                # (rows*Wo, C_out) then a small transposed copy: faster than the NT product.
                out[i, :, r0:r1] = torch.mm(cols, w_mat_t).t().view(c_out, r1 - r0, w_out)
        ctx.save_for_backward(x, offset, mask, weight)
        ctx.padding = padding
        ctx.dtype = dtype
        return out.permute(0, 3, 1, 2) if channels_last else out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        x, offset, mask, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        h_out, w_out = offset.shape[-2:]
        k = kh * kw
        col_dtype, pos_dtype = _dtypes(x, offset, ctx.dtype)
        acc_dtype = torch.promote_types(col_dtype, torch.float32)  # sums over chunks
        need_x, need_offset, need_mask, need_weight = ctx.needs_input_grad[:4]
        need_corner = need_offset or need_mask
        w_mat = weight.to(col_dtype).permute(0, 2, 3, 1).reshape(c_out, k * c)  # (C_out, K*C)
        # Corner-weight gradients are dot products of grad_cols with the corner rows, so the
        # table is gathered in acc_dtype when they are needed (the same values, wider sums).
        rows = _padded_rows(x.to(acc_dtype if need_corner else col_dtype))
        plane = rows.shape[0] // n
        grad_rows = rows.new_zeros(rows.shape, dtype=acc_dtype) if need_x else None
        grad_w_mat = x.new_zeros(c_out, k * c, dtype=acc_dtype) if need_weight else None
        grad_offset = torch.empty_like(offset) if need_corner else None
        grad_mask = torch.empty_like(mask) if need_corner else None
        chunks = _row_chunks(n, h_out, w_out, k * c * rows.element_size())
        base = _base_positions(h_out, w_out, (kh, kw), ctx.padding, pos_dtype, offset.device)
        for i, r0, r1 in chunks:
            s = _sample(
                offset[i, :, r0:r1].to(pos_dtype),
                mask[i, :, r0:r1].to(pos_dtype),
                base, r0, i * plane, (h, w),
            )  # fmt: skip
            # (rows*Wo, C_out), a view in NCHW and in channels-last: BLAS reads it transposed.
            g = grad_out[i, :, r0:r1].flatten(1).t().to(col_dtype)
            with torch.enable_grad():
                corner_w = s.weight.to(rows.dtype).requires_grad_(need_corner)
                cols = F.embedding_bag(s.index, rows, per_sample_weights=corner_w, mode="sum")
            if need_weight:
                cols_mat = cols.detach().view(-1, k * c).to(col_dtype)
                if col_dtype == acc_dtype:
                    grad_w_mat.addmm_(g.t(), cols_mat)
                else:  # a 16-bit GEMM of the chunk, summed over chunks in float32
                    grad_w_mat += torch.mm(g.t(), cols_mat)
            if not (need_x or need_corner):
                continue
            grad_cols = torch.mm(g, w_mat).view(-1, c)  # (S, C)
            if need_corner:
                grad_corner = torch.autograd.grad(cols, corner_w, grad_cols.to(cols.dtype))[0]
                _corner_grads_to_offset_mask(
                    grad_corner, s, grad_offset[i, :, r0:r1], grad_mask[i, :, r0:r1]
                )  # (S, 4) in acc_dtype -> offset's and mask's dtype
            if need_x:
                _scatter_rows(grad_rows, grad_cols, s.index, s.weight.detach().to(col_dtype))
        grad_x = grad_weight = None
        if need_x:
            grad_rows = grad_rows.view(n, h + 2 * _BORDER, w + 2 * _BORDER, c)
            grad_x = grad_rows[:, _BORDER:-_BORDER, _BORDER:-_BORDER].permute(0, 3, 1, 2)
            fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
            grad_x = grad_x.contiguous(memory_format=fmt).to(x.dtype)
        if need_weight:
            grad_weight = grad_w_mat.view(c_out, kh, kw, c).permute(0, 3, 1, 2).contiguous()
            grad_weight = grad_weight.to(weight.dtype)
        return grad_x, grad_offset, grad_mask, grad_weight, None, None


def _dtypes(
    x: torch.Tensor, offset: torch.Tensor, dtype: torch.dtype | None
) -> tuple[torch.dtype, torch.dtype]:
    """(dtype of columns and GEMMs, dtype of positions and corner weights).

    Exact path (``dtype`` None): the inputs' own. 16-bit path: ``dtype`` and float32.
    """
    if dtype is None:
        return x.dtype, offset.dtype
    return dtype, torch.float32


def _corner_grads_to_offset_mask(
    grad_corner: torch.Tensor, s: _Samples, grad_offset: torch.Tensor, grad_mask: torch.Tensor
) -> None:
    """Chain rule: (S, 4) corner-weight grads -> offset (2K, rows, Wo), mask (K, rows, Wo).

    Corner weights are m(1-ly)(1-lx), m(1-ly)lx, m*ly(1-lx), m*ly*lx (see ``_sample``); each
    derivative is computed on whole (S,) planes, which is several times faster on CPU than
    broadcasting over (S, 2, 2).
    """
    g00, g01, g10, g11 = grad_corner.unbind(-1)  # (S,) each: (y corner, x corner)
    ly, lx = s.frac.unbind(-1)
    g_y0 = torch.lerp(g00, g01, lx)  # sum over x corners of g * (1-lx, lx), top row
    g_y1 = torch.lerp(g10, g11, lx)
    g_x0 = torch.lerp(g00, g10, ly)  # sum over y corners, left column
    g_x1 = torch.lerp(g01, g11, ly)
    m = s.mask.reshape(-1)  # (S,)
    _, rows, w_out = grad_mask.shape
    k = grad_mask.shape[0]
    grad_yx = grad_offset.view(k, 2, rows, w_out)  # interleaved (dy, dx) per kernel point
    grad_yx[:, 0].copy_(((g_y1 - g_y0) * m).view(rows, w_out, k).permute(2, 0, 1))
    grad_yx[:, 1].copy_(((g_x1 - g_x0) * m).view(rows, w_out, k).permute(2, 0, 1))
    grad_mask.copy_(torch.lerp(g_y0, g_y1, ly).view(rows, w_out, k).permute(2, 0, 1))


def deform_conv2d_gather(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    padding: int = 1,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """DCNv2 (stride 1, dilation 1, one group), no bias; same arguments as torchvision's.

    Args:
        x: (N, C_in, H, W).
        offset: (N, 2*kh*kw, H_out, W_out), interleaved (dy, dx) per kernel point.
        mask: (N, kh*kw, H_out, W_out).
        weight: (C_out, C_in, kh, kw).
        padding: zero padding.
        dtype: None computes exactly in the inputs' dtype; torch.bfloat16 gathers the columns
            and multiplies them in bf16 with float32 positions and sums (see the module's
            docstring). Call it with autocast disabled: the dtypes are chosen here.

    Returns:
        (N, C_out, H_out, W_out), in ``dtype`` or else in x's dtype.
    """
    return _GatherDeformConv.apply(x, offset, mask, weight, padding, dtype)
