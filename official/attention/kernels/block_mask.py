"""Per-tile "may attend" masks for blocked kernels (chunked, split_k).

A blocked kernel pads T and S up to whole blocks and, for each (query block,
key block) tile, needs the boolean tile of causal AND user mask AND "key is
not padding". `BlockMask` builds that tile from positions, so no (T, S)
matrix is created unless the user passed one; a user mask that broadcasts
over T or S (e.g. a (B, 1, S) padding mask) is sliced only along its full
axes.
"""

from keras import ops


def pad_axis(x, axis, amount, value=0):
    """Pads `x` at the end of `axis` by `amount` (int or scalar tensor)."""
    if isinstance(amount, int) and amount == 0:
        return x
    widths = [[0, 0] for _ in range(len(x.shape))]
    widths[axis] = [0, amount]
    return ops.pad(x, widths, constant_values=value)


def take_block(x, axis, start, size):
    """x[..., start:start + size, ...] along `axis` (start may be a tensor)."""
    starts = [0] * len(x.shape)
    starts[axis] = start
    # Explicit sizes, not -1: with a dynamic start, -1 makes the XLA bridge
    # pad and slice the whole tensor every iteration (a bounded dynamic
    # shape) instead of a static-size dynamic-slice.
    sizes = list(ops.shape(x))
    sizes[axis] = size
    return ops.slice(x, starts, sizes)


class BlockMask:
    """Builds the allowed-mask of one tile in padded (T_pad, S_pad) coords.

    Args:
        t, s: int or scalar tensor. True query and key lengths.
        s_padded: bool. Whether keys were padded (key validity is checked).
        causal: bool. Query i sees keys j <= i + (S - T).
        mask: None or boolean (T, S) / (B|1, T|1, S|1), already padded with
            False to (T_pad, S_pad) on its full axes (see `pad_mask`).
        lead: number of broadcast axes between batch and (t, s) in the score
            tile (2 for (B, H_kv, G, t, s)).
    """

    def __init__(self, t, s, s_padded, causal, mask, lead=2):
        self.t, self.s = t, s
        self.s_padded = s_padded
        self.causal = causal
        self.mask = mask
        self.lead = lead
        if mask is not None:
            self.mask_full_t = mask.shape[1] != 1
            self.mask_full_s = mask.shape[2] != 1

    @property
    def trivial(self):
        return not (self.s_padded or self.causal or self.mask is not None)

    def tile(self, q0, tq, k0, sk):
        """Boolean (B|1, 1 * lead, tq, sk) for queries q0.. and keys k0..,
        or None when every entry is allowed."""
        allowed = None
        kpos = k0 + ops.arange(sk, dtype="int32")
        if self.s_padded:
            allowed = (kpos < self.s)[None, :]
        if self.causal:
            qpos = q0 + ops.arange(tq, dtype="int32")
            c = kpos[None, :] <= qpos[:, None] + (self.s - self.t)
            allowed = c if allowed is None else ops.logical_and(allowed, c)
        if allowed is not None:
            allowed = allowed[None]
        if self.mask is not None:
            m = self.mask
            if self.mask_full_t:
                m = take_block(m, 1, q0, tq)
            if self.mask_full_s:
                m = take_block(m, 2, k0, sk)
            allowed = m if allowed is None else ops.logical_and(allowed, m)
        if allowed is None:
            return None
        for _ in range(self.lead):
            allowed = ops.expand_dims(allowed, 1)
        return allowed


def pad_mask(mask, t_pad_amount, s_pad_amount):
    """Normalises a (T, S) / (B, T, S) mask to rank 3 and pads its full axes
    with False (padding queries/keys are never attended)."""
    if mask is None:
        return None
    m = mask if len(mask.shape) == 3 else mask[None]
    if m.shape[1] != 1:
        m = pad_axis(m, 1, t_pad_amount, False)
    if m.shape[2] != 1:
        m = pad_axis(m, 2, s_pad_amount, False)
    return m
