"""`local_global`: Longformer's sliding-window + global attention.

Beltagy, Peters & Cohan 2020, "Longformer: The Long-Document Transformer",
arXiv 2004.05150, Sec. 3.1 (garden spec `efficient_attention_survey.md`
Sec. 8.2):

- sliding window: query i (at key position p_i) attends the keys
  j = p_i + dilation * t with -window <= t <= window; causal: -window <= t
  <= 0 (Sec. 3.1 "Sliding Window" / "Dilated Sliding Window"). `window` is
  the one-sided size, i.e. the paper's w = 2 * window (w / 2 keys per side);
  `window` >= length therefore gives full (dense) attention;
- global attention: a set G of positions attends every key and is attended
  by every query ("symmetric", Sec. 3.1 "Global Attention"); causal keeps
  j <= p_i for every pair, global or not. Non-global rows take one joint
  softmax over their band keys and the global keys (a global key inside the
  band is counted once).

Banded computation (Longformer's "sliding chunks"): queries are cut into
blocks of c = `block_size`, processed one at a time (`keras.ops.map`);
block n slices only the keys its band can reach, [n c + o - window *
dilation, n c + c - 1 + o + window * dilation] (padded keys masked), so one
step scores (B, H, c, c + 2 window dilation + |G|) and the |G| global rows
add a (B, H, |G|, S) part: O(T (w + |G|) + |G| S) time, O(T D + c w + |G| S)
memory, never (T, S). The global query rows are computed densely over all
keys and replace their banded rows. Sequence lengths must be static.

Not implemented: Longformer's separate global projections Q_g, K_g, V_g
(Sec. 3.1 "Linear Projections for Global Attention") act on hidden states,
i.e. inside the layer, not in a kernel; here global rows use the layer's
q, k, v. Per-head dilation (Sec. 3.1) is one `dilation` per call.

Conventions (official.attention): query (B, T, H, D), key/value
(B, S, H_kv, D); causal aligns query i with key position p_i = i + S - T
(non-causal: p_i = i); a row with no allowed key returns 0; masks (T, S) /
(B, T, S) are applied inside the band (gathered, never expanded).
"""

import math

from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels._approx_utils import NEG
from official.attention.kernels._approx_utils import check_int
from official.attention.kernels._approx_utils import pad_axis
from official.attention.kernels._approx_utils import rank3_mask
from official.attention.kernels._approx_utils import safe_divide
from official.attention.kernels.block_mask import take_block

NAME = "local_global"


def global_indices(global_tokens, s):
    """Sorted unique global positions from a count (the first n) or a
    sequence of indices; checked against a static key length `s`."""
    if isinstance(global_tokens, bool):
        raise ValueError(
            f"attention kernel '{NAME}': `global_tokens` must be an int count "
            f"or a sequence of indices; received {global_tokens!r}."
        )
    if isinstance(global_tokens, int):
        check_int(NAME, "global_tokens", global_tokens, minimum=0)
        idx = list(range(global_tokens))
    else:
        try:
            idx = sorted({int(i) for i in global_tokens})
        except TypeError:
            raise ValueError(
                f"attention kernel '{NAME}': `global_tokens` must be an int "
                f"count or a sequence of indices; received {global_tokens!r}."
            ) from None
        if any(i < 0 for i in idx):
            raise ValueError(
                f"attention kernel '{NAME}': global token indices must be >= "
                f"0; received {global_tokens!r}."
            )
    if isinstance(s, int) and idx and idx[-1] >= s:
        raise ValueError(
            f"attention kernel '{NAME}': global token index {idx[-1]} is out "
            f"of range for {s} keys."
        )
    return idx


def band_allowed(qpos, kpos, causal, window, dilation):
    """Sliding-window pattern on absolute positions (Sec. 3.1): key j is in
    query p's window iff j - p = dilation * t, -window <= t <= (0 if causal
    else window)."""
    diff = kpos - qpos
    right = 0 if causal else window * dilation
    ok = ops.logical_and(diff >= -window * dilation, diff <= right)
    if dilation > 1:
        ok = ops.logical_and(ok, ops.equal(ops.mod(diff, dilation), 0))
    return ok


def _softmax_parts(parts):
    """Joint masked softmax over several (scores, allowed, pv_fn) parts;
    returns sum_i p_i v / sum p (0 for rows with no allowed key)."""
    scores = [ops.where(a, x, NEG) for x, a, _ in parts]
    m = ops.max(scores[0], axis=-1)
    for x in scores[1:]:
        m = ops.maximum(m, ops.max(x, axis=-1))
    m = ops.stop_gradient(m)
    num, den = None, None
    for x, (_, a, pv) in zip(scores, parts):
        p = ops.where(a, ops.exp(x - m[..., None]), 0.0)
        n, d = pv(p), ops.sum(p, axis=-1)
        num = n if num is None else num + n
        den = d if den is None else den + d
    return safe_divide(num, den)


def _block_size(block_size, window, dilation, causal, t):
    if block_size is None:
        reach = window * dilation * (1 if causal else 2)
        block_size = max(16, min(256, (reach + 1) // 2))
    if isinstance(t, int):
        block_size = max(1, min(block_size, t))
    return block_size


@register_kernel(NAME)
def local_global_attention(
    query,
    key,
    value,
    causal=False,
    mask=None,
    scale=None,
    window=256,
    global_tokens=0,
    dilation=1,
    block_size=None,
):
    """Longformer attention: sliding window (+ dilation) and global tokens.

    Options:
        scale: float or None. Logit scale; None = 1 / sqrt(D).
        window: int >= 0. One-sided window (the paper's w / 2): query p sees
            keys p - window * dilation ... p + window * dilation (causal:
            ... p).
        global_tokens: int (the first n positions are global) or a sequence
            of key positions.
        dilation: int >= 1. Gap between attended window keys (Sec. 3.1).
        block_size: int or None. Queries per band block (default
            clamp(reach / 2, 16, 256)); changes cost, not the result.
    """
    check_int(NAME, "window", window, minimum=0)
    check_int(NAME, "dilation", dilation)
    if block_size is not None:
        check_int(NAME, "block_size", block_size)
    b = ops.shape(query)[0]
    t, s = query.shape[1], key.shape[1]
    if t is None or s is None:
        raise ValueError(
            f"attention kernel '{NAME}': needs static sequence lengths (the "
            "band blocks have static sizes); pad to a fixed length."
        )
    h, d, h_kv = query.shape[2], query.shape[3], key.shape[2]
    g = h // h_kv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    glob = global_indices(global_tokens, s)
    offset = s - t if causal else 0
    c = _block_size(block_size, window, dilation, causal, t)
    nb = -(-t // c)
    t_pad = nb * c
    reach = window * dilation
    span = c + reach + (0 if causal else reach)
    full = span >= s
    if full:  # every block sees all keys: no padding, fixed start 0
        span, pad_l, pad_r = s, 0, 0
    else:
        pad_l = max(0, reach - offset)
        pad_r = max(0, t_pad + offset + span - c - reach - s)

    qs = ops.reshape(ops.cast(query, "float32") * scale, (b, t, h_kv, g, d))
    qb = ops.reshape(pad_axis(qs, 1, t_pad - t), (b, nb, c, h_kv, g, d))
    k = ops.cast(key, "float32")
    v = ops.cast(value, "float32")
    kp = pad_axis(pad_axis(k, 1, pad_l, before=True), 1, pad_r)
    vp = pad_axis(pad_axis(v, 1, pad_l, before=True), 1, pad_r)
    m3 = rank3_mask(mask)
    mp = None if m3 is None else _pad_mask(m3, t_pad - t, pad_l, pad_r)
    gidx = ops.convert_to_tensor(glob, dtype="int32")
    if glob:
        kg, vg = ops.take(k, gidx, axis=1), ops.take(v, gidx, axis=1)
        mg = None
        if m3 is not None:
            mg = m3 if m3.shape[2] == 1 else ops.take(m3, gidx, axis=2)
            mg = _pad_mask(mg, t_pad - t, 0, 0)

    def block(args):
        """Band (+ global keys) attention of query block n: O(c span)."""
        q_blk, n = args  # (B, c, Hkv, G, D)
        q0 = n * c
        k0 = 0 if full else q0 + offset - reach
        qpos = q0 + offset + ops.arange(c, dtype="int32")
        kpos = k0 + ops.arange(span, dtype="int32")
        allowed = band_allowed(
            qpos[:, None], kpos[None, :], causal, window, dilation
        )
        allowed = ops.logical_and(
            allowed, ops.logical_and(kpos >= 0, kpos < s)[None, :]
        )
        for j in glob:  # global keys are counted once, below
            allowed = ops.logical_and(allowed, ops.not_equal(kpos, j)[None])
        allowed = allowed[None, None, None]  # (1, 1, 1, c, span)
        if mp is not None:
            mb = _mask_tile(mp, q0, c, k0 + pad_l, span)
            allowed = ops.logical_and(allowed, mb[:, None, None])
        kb = take_block(kp, 1, k0 + pad_l, span)
        vb = take_block(vp, 1, k0 + pad_l, span)
        parts = [
            (
                ops.einsum("bckgd,bskd->bkgcs", q_blk, kb),
                allowed,
                lambda p: ops.einsum("bkgcs,bskd->bkgcd", p, vb),
            )
        ]
        if glob:  # every query attends them (causal: not in its future)
            ag = ops.ones((c, len(glob)), "bool")
            if causal:
                ag = gidx[None, :] <= qpos[:, None]
            ag = ag[None, None, None]
            if mg is not None:
                ag = ops.logical_and(
                    ag, _mask_tile(mg, q0, c, 0, len(glob))[:, None, None]
                )
            parts.append(
                (
                    ops.einsum("bckgd,bskd->bkgcs", q_blk, kg),
                    ag,
                    lambda p: ops.einsum("bkgcs,bskd->bkgcd", p, vg),
                )
            )
        return _softmax_parts(parts)  # (B, Hkv, G, c, D)

    out = ops.map(
        block,
        (
            ops.transpose(qb, (1, 0, 2, 3, 4, 5)),
            ops.arange(nb, dtype="int32"),
        ),
    )  # (nb, B, Hkv, G, c, D)
    out = ops.transpose(out, (1, 0, 4, 2, 3, 5))
    out = ops.reshape(out, (b, t_pad, h_kv, g, d))[:, :t]
    if glob:
        out = _global_rows(out, qs, k, v, m3, glob, offset, causal, t)
    return ops.cast(ops.reshape(out, (b, t, h, d)), query.dtype)


def _pad_mask(m3, rows, left, right):
    """Pads the full axes of a (B', T'|1, S'|1) mask with False."""
    if m3.shape[1] != 1:
        m3 = pad_axis(m3, 1, rows, value=False)
    if m3.shape[2] != 1:
        m3 = pad_axis(m3, 2, left, value=False, before=True)
        m3 = pad_axis(m3, 2, right, value=False)
    return m3


def _mask_tile(m3, q0, tq, k0, sk):
    """(B', tq|1, sk|1) tile of a padded mask (sliced on its full axes)."""
    if m3.shape[1] != 1:
        m3 = take_block(m3, 1, q0, tq)
    if m3.shape[2] != 1:
        m3 = take_block(m3, 2, k0, sk)
    return m3


def _global_rows(out, qs, k, v, m3, glob, offset, causal, t):
    """Rows at global positions attend every key (dense over S)."""
    gpos = ops.convert_to_tensor(glob, dtype="int32")
    grow = gpos - offset  # query row of each global position
    valid = ops.logical_and(grow >= 0, grow < t)
    gq = ops.take(qs, ops.clip(grow, 0, t - 1), axis=1)  # (B, |G|, Hkv, G, D)
    scores = ops.einsum("brkgd,bskd->bkgrs", gq, k)
    s = k.shape[1]
    allowed = ops.ones((len(glob), 1), "bool")
    if causal:
        allowed = ops.arange(s, dtype="int32")[None, :] <= gpos[:, None]
    allowed = allowed[None, None, None]  # (1, 1, 1, |G|, S|1)
    if m3 is not None:
        mr = m3
        if m3.shape[1] != 1:
            mr = ops.take(m3, ops.clip(grow, 0, t - 1), axis=1)
        allowed = ops.logical_and(allowed, mr[:, None, None])
    og = _softmax_parts(
        [(scores, allowed, lambda p: ops.einsum("bkgrs,bskd->bkgrd", p, v))]
    )
    og = ops.transpose(og, (0, 3, 1, 2, 4))  # (B, |G|, Hkv, G, D)
    eq = ops.logical_and(
        ops.arange(t, dtype="int32")[:, None] == grow[None, :], valid[None, :]
    )
    is_global = ops.any(eq, axis=1)
    which = ops.sum(
        ops.cast(eq, "int32") * ops.arange(len(glob), dtype="int32"), axis=1
    )
    picked = ops.take(og, which, axis=1)
    return ops.where(is_global[None, :, None, None, None], picked, out)
