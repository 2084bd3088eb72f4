"""`axial`: attention along one axis of a 2-D/3-D (any rank) grid.

Ho et al. 2019, "Axial Attention in Multidimensional Transformers"
(arXiv 1912.12180), §3.1: for a tensor with spatial shape (N_1, ..., N_k),
axial attention along axis a lets every position attend only to the
positions that agree with it on every coordinate except coordinate a (a row
of an image for the last axis, a column for the first). Implementation (the
official `attn_nd`, lucidrains' `PermuteToFrom`): move axis a next to the
head axis, fold every other spatial axis into the batch, run ordinary
attention over sequences of length N_a, and undo the move. On an n x n image
(L = n^2) the score tensor has H·L·n = H·L^1.5 entries instead of H·L^2.

Queries and keys are the flattened grid in row-major (C) order, so
`attention(q, k, v, kernel="axial", spatial_shape=(H, W), axis=1)` on
(B, H·W, heads, D) tensors is row attention and `axis=0` column attention.
`causal=True` is causal along the attended axis only (position t sees
s <= t on axis a; the official `masked=True`); the model-level raster
causality of the Axial Transformer comes from combining masked and unmasked
axial layers with shifts (garden/axial_transformer).
"""

import math

import numpy as np
from keras import ops

from official.attention.interface import attention
from official.attention.interface import register_kernel


def normalize_axial_options(spatial_shape, axis, length=None):
    """Validated (tuple of ints, axis in [0, k)); resolves one -1 entry.

    `length` is the static flattened length T (or None when unknown); a -1
    entry is then T // prod(other entries) (when T is None it stays -1 and
    the kernel infers it from the runtime shape).
    """
    if spatial_shape is None:
        raise ValueError(
            "attention kernel 'axial': the option spatial_shape is required "
            "(e.g. spatial_shape=(height, width), axis=1 for row attention)."
        )
    try:
        shape = tuple(int(n) for n in spatial_shape)
    except TypeError as error:
        raise ValueError(
            "attention kernel 'axial': spatial_shape must be a sequence of "
            f"ints; received {spatial_shape!r}."
        ) from error
    k = len(shape)
    if k == 0 or any(n == 0 or n < -1 for n in shape) or shape.count(-1) > 1:
        raise ValueError(
            "attention kernel 'axial': spatial_shape must be positive ints "
            f"with at most one -1; received {spatial_shape!r}."
        )
    if not isinstance(axis, (int, np.integer)) or not -k <= axis < k:
        raise ValueError(
            f"attention kernel 'axial': axis must be an int in [{-k}, {k}) "
            f"for spatial_shape {shape}; received {axis!r}."
        )
    axis = int(axis) % k
    known = math.prod(n for n in shape if n != -1)
    if length is not None:
        if -1 in shape:
            if length % known:
                raise ValueError(
                    f"attention kernel 'axial': length {length} is not a "
                    f"multiple of {known} (spatial_shape {shape})."
                )
            shape = tuple(length // known if n == -1 else n for n in shape)
        elif known != length:
            raise ValueError(
                f"attention kernel 'axial': spatial_shape {shape} has "
                f"{known} positions but the sequence length is {length}."
            )
    return shape, axis


def _permutation(k, axis):
    """Spatial axes order with `axis` last (the others keep their order)."""
    return [i for i in range(k) if i != axis] + [axis]


def to_axis_last(x, spatial_shape, axis):
    """(B, prod(shape), *rest) -> (B * lines, N_axis, *rest).

    `lines` = prod of the other spatial sizes; row-major flattening.
    """
    k = len(spatial_shape)
    rest = list(x.shape[2:])
    x = ops.reshape(x, [-1, *spatial_shape, *rest])
    perm = [0] + [1 + i for i in _permutation(k, axis)]
    perm += list(range(k + 1, k + 1 + len(rest)))
    x = ops.transpose(x, perm)
    return ops.reshape(x, [-1, spatial_shape[axis], *rest])


def from_axis_last(x, spatial_shape, axis):
    """Inverse of `to_axis_last`: (B * lines, N_a, *rest) -> (B, L, *rest)."""
    k = len(spatial_shape)
    rest = list(x.shape[2:])
    perm_spatial = _permutation(k, axis)
    moved = [spatial_shape[i] for i in perm_spatial]
    x = ops.reshape(x, [-1, *moved, *rest])
    inverse = [0] + [1 + perm_spatial.index(i) for i in range(k)]
    inverse += list(range(k + 1, k + 1 + len(rest)))
    x = ops.transpose(x, inverse)
    return ops.reshape(x, [-1, math.prod(spatial_shape), *rest])


def line_indices(spatial_shape, axis):
    """(lines, N_axis) int array: flat position of each (line, t) pair."""
    flat = np.arange(math.prod(spatial_shape)).reshape(spatial_shape)
    flat = np.transpose(flat, _permutation(len(spatial_shape), axis))
    return flat.reshape(-1, spatial_shape[axis])


def _line_mask(mask, spatial_shape, axis, batch):
    """A (B|1, T|1, S|1) / (T, S) boolean mask restricted to the lines.

    Returns a mask broadcastable to (B * lines, N_a, N_a) for the inner
    kernel: (N_a|1, N_a|1) when it does not depend on batch or line, else
    (B * lines, N_a|1, N_a|1). Entry [b·lines + l, t, s] is
    mask[b, idx[l, t], idx[l, s]] with idx = `line_indices`.
    """
    m = mask if len(mask.shape) == 3 else mask[None]
    mb, mt, ms = m.shape
    idx = line_indices(spatial_shape, axis)
    lines, n = idx.shape
    flat = idx.reshape(-1)
    if mt != 1 and ms != 1:
        rows = ops.reshape(ops.take(m, flat, axis=1), (-1, lines, n, ms))
        cols = np.broadcast_to(idx[None, :, None, :], (1, lines, n, n))
        cols = ops.broadcast_to(ops.convert_to_tensor(cols),
                                (ops.shape(rows)[0], lines, n, n))
        m = ops.take_along_axis(rows, cols, axis=3)
    elif mt != 1:
        m = ops.reshape(ops.take(m, flat, axis=1), (-1, lines, n, 1))
    elif ms != 1:
        m = ops.reshape(ops.take(m[:, 0], flat, axis=1), (-1, lines, 1, n))
    else:
        m = ops.reshape(m, (-1, 1, 1, 1))
    if mb == 1 and m.shape[1] == 1:
        return m[0, 0]
    m = ops.broadcast_to(m, (batch, lines, m.shape[2], m.shape[3]))
    return ops.reshape(m, (-1, m.shape[2], m.shape[3]))


@register_kernel("axial")
def axial_attention(query, key, value, causal=False, mask=None,
                    spatial_shape=None, axis=-1, inner_kernel="dense",
                    inner_options=None, scale=None):
    """Attention along `axis` of the grid `spatial_shape` (row-major T).

    Options:
        spatial_shape: tuple of ints (N_1, ..., N_k) with prod = T = S; one
            entry may be -1 (inferred from T, e.g. (-1, W) for row attention
            on any number of rows).
        axis: int. The attended spatial axis (0 = first; -1 = last = rows
            of a (H, W) image).
        inner_kernel: str. Kernel run on the (B·lines, N_a) sequences
            ("dense", or "chunked" for long lines).
        inner_options: dict. Extra options of the inner kernel.
        scale: float. Logit scale (default 1/sqrt(D)).
    causal: causal along `axis` only (t attends to s <= t on that axis).
    mask: boolean, broadcastable to (B, T, S) over flattened positions; only
        its entries inside each line matter (static T needed).
    """
    if inner_kernel == "axial":
        raise ValueError("attention kernel 'axial': inner_kernel cannot be "
                         "'axial'.")
    t_static, s_static = query.shape[1], key.shape[1]
    if t_static is not None and s_static is not None and t_static != s_static:
        raise ValueError(
            "attention kernel 'axial': queries and keys must lie on the same "
            f"grid (T == S); received T={t_static}, S={s_static}."
        )
    length = t_static if t_static is not None else s_static
    shape, axis = normalize_axial_options(spatial_shape, axis, length)
    if -1 in shape:  # unknown length: infer the free axis at run time
        known = math.prod(n for n in shape if n != -1)
        free = ops.shape(query)[1] // known
        shape = tuple(free if n == -1 else n for n in shape)
        if mask is not None:
            raise ValueError("attention kernel 'axial': a mask needs a static "
                             "sequence length.")
    options = dict(inner_options or {})
    if scale is not None:
        options["scale"] = scale
    q = to_axis_last(query, shape, axis)
    k = to_axis_last(key, shape, axis)
    v = to_axis_last(value, shape, axis)
    line_mask = None
    if mask is not None:
        line_mask = _line_mask(mask, shape, axis, ops.shape(query)[0])
    out = attention(q, k, v, kernel=inner_kernel, causal=causal,
                    mask=line_mask, **options)
    return from_axis_last(out, shape, axis)
