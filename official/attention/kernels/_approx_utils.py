"""Small helpers shared by the approximate kernels (`local_global`,
`performer`, `lsh`, `lowrank`): option checks, mask views, a log-depth
prefix scan, and seeded NumPy draws for weights that kernels own."""

import numpy as np
from keras import ops

NEG = -1e30  # finite "minus infinity" for masked logits / empty maxima


def check_int(kernel, name, value, minimum=1):
    """Raises ValueError unless `value` is a Python int >= minimum."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (value < minimum)
    ):
        raise ValueError(
            f"attention kernel '{kernel}': `{name}` must be an int >= "
            f"{minimum}; received {value!r}."
        )


def check_bool(kernel, name, value):
    if not isinstance(value, bool):
        raise ValueError(
            f"attention kernel '{kernel}': `{name}` must be a bool; received "
            f"{value!r}."
        )


def static_len(x, axis):
    """The static size of `axis` (int) or the traced size (scalar tensor)."""
    n = x.shape[axis]
    return n if n is not None else ops.shape(x)[axis]


def pad_axis(x, axis, amount, value=0, before=False):
    """Pads `amount` (a Python int) entries of `value` at the end (or the
    start) of `axis`."""
    if amount == 0:
        return x
    widths = [(0, 0)] * len(x.shape)
    widths[axis] = (amount, 0) if before else (0, amount)
    return ops.pad(x, widths, constant_values=value)


def rank3_mask(mask):
    """A (T, S) / (B, T, S) boolean mask as rank 3 (B|1, T|1, S|1)."""
    if mask is None:
        return None
    return mask if len(mask.shape) == 3 else mask[None]


def key_padding(mask):
    """(B|1, S|1) key-validity mask if `mask` does not vary along queries
    (a (B, 1, S) padding mask), else None."""
    m = rank3_mask(mask)
    if m is None or m.shape[1] != 1:
        return None
    return m[:, 0]


def safe_divide(num, den):
    """num / den[..., None], 0 where den == 0 (a row with no allowed key)."""
    ok = den > 0.0
    return ops.where(
        ok[..., None], num / ops.where(ok, den, 1.0)[..., None], 0.0
    )


def prefix_scan(combine, elems):
    """Inclusive scan of an associative `combine` along axis 0.

    Work-efficient recursion (pairs, scan of the pairs, fill the evens):
    about 2 n combines in 2 log2(n) static steps, differentiable and
    XLA-compilable (keras' associative_scan / scan do not compile with
    gradients under XLA here). Element c combines elements 0..c only, so a
    later element never changes an earlier prefix. `elems` is a tuple of
    tensors with the same static size n on axis 0.
    """
    n = elems[0].shape[0]
    if n == 1:
        return elems
    pairs = combine(
        tuple(x[0 : n - 1 : 2] for x in elems), tuple(x[1::2] for x in elems)
    )
    odd = prefix_scan(combine, pairs)  # prefixes ending at 1, 3, 5, ...
    evens = tuple(x[:1] for x in elems)
    if n > 2:
        rest = combine(
            tuple(o[: (n - 1) // 2] for o in odd),
            tuple(x[2::2] for x in elems),
        )
        evens = tuple(
            ops.concatenate([e, r], axis=0) for e, r in zip(evens, rest)
        )
    return tuple(_interleave(e, o) for e, o in zip(evens, odd))


def _interleave(evens, odds):
    """[e0, o0, e1, o1, ...] along axis 0 (len(evens) - len(odds) in {0, 1})."""
    k = odds.shape[0]
    shape = list(ops.shape(odds))
    pairs = ops.reshape(
        ops.stack([evens[:k], odds], axis=1), [2 * k] + shape[1:]
    )
    if evens.shape[0] > k:
        pairs = ops.concatenate([pairs, evens[k:]], axis=0)
    return pairs


def exclusive(x, axis, fill):
    """Shifts an inclusive scan by one: element c holds the prefix 0..c-1."""
    return _shift(x, axis, 1, fill)


def _shift(x, axis, offset, fill):
    """x shifted right by `offset` along `axis`, `fill` entering at 0."""
    n = x.shape[axis]
    head_shape = list(ops.shape(x))
    head_shape[axis] = min(offset, n)
    head = ops.full(head_shape, fill, dtype=x.dtype)
    if offset >= n:
        return head
    body = ops.slice(
        x, [0] * len(x.shape), _with(ops.shape(x), axis, n - offset)
    )
    return ops.concatenate([head, body], axis=axis)


def _with(shape, axis, size):
    shape = list(shape)
    shape[axis] = size
    return shape


def numpy_rng(seed):
    """np.random.Generator; seed None draws a seed from NumPy's global RNG
    (so `keras.utils.set_random_seed` makes it reproducible)."""
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    return np.random.default_rng(seed)
