"""The split-K merge operator: associative, commutative, identity, exact.

Lean Attention (arXiv 2405.10480) rests on the associativity of the softmax
re-scaling merge (garden spec `lean_attention.md` Sec. 4.2, checks 1-2):
merging (a, b) then c, a then (b, c), and all at once must agree, for any
order, with (0, -inf) as identity and all-empty merges free of NaN.
"""

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference
from keras import ops

from official.attention.kernels import online_softmax
from official.attention.kernels.split_k import merge_pair
from official.attention.kernels.split_k import merge_partials
from official.attention.kernels.split_k import split_partials

TOL = 1e-6  # relative, float32


def random_partials(n=5, shape=(3, 7), d=4, seed=0, spread=50.0):
    rng = np.random.default_rng(seed)
    o = rng.standard_normal((n,) + shape + (d,)).astype("float32")
    lse = (spread * rng.standard_normal((n,) + shape)).astype("float32")
    empty = min(1, n - 1)
    lse[empty, 0, :3] = -np.inf  # empty key ranges (the merge identity) ...
    o[empty, 0, :3] = 0.0  # ... with the output `partial_softmax` gives them
    return o, lse


def split(o, lse):
    return [(o[i], lse[i]) for i in range(o.shape[0])]


def close(a, b):
    (oa, la), (ob, lb) = a, b
    oa, ob, la, lb = (np.asarray(x) for x in (oa, ob, la, lb))
    assert np.array_equal(np.isfinite(la), np.isfinite(lb))
    fin = np.isfinite(la)
    lse_err = np.abs(la[fin] - lb[fin]).max() / max(1.0, np.abs(lb[fin]).max())
    o_err = np.abs(oa - ob).max() / max(1.0, np.abs(ob).max())
    return max(lse_err, o_err)


def associativity_error():
    o, lse = random_partials(n=3)
    a, b, c = split(o, lse)
    left = merge_pair(*merge_pair(*a, *b), *c)
    right = merge_pair(*a, *merge_pair(*b, *c))
    together = merge_partials(o, lse, axis=0)
    return max(close(left, together), close(right, together))


def test_merge_is_associative():
    assert associativity_error() < TOL


def test_merge_is_commutative_and_order_free():
    o, lse = random_partials(n=6, seed=1)
    together = merge_partials(o, lse, axis=0)
    perm = np.random.default_rng(2).permutation(6)
    assert close(merge_partials(o[perm], lse[perm], axis=0), together) < TOL
    # Left fold in the permuted order, and a balanced tree.
    parts = split(o[perm], lse[perm])
    acc = parts[0]
    for p in parts[1:]:
        acc = merge_pair(*acc, *p)
    assert close(acc, together) < TOL
    pairs = [merge_pair(*parts[i], *parts[i + 1]) for i in (0, 2, 4)]
    tree = merge_pair(*merge_pair(*pairs[0], *pairs[1]), *pairs[2])
    assert close(tree, together) < TOL


def test_merge_along_other_axis():
    o, lse = random_partials(n=4, seed=3)
    moved = merge_partials(
        np.moveaxis(o, 0, 2), np.moveaxis(lse, 0, 2), axis=-1
    )
    assert close(moved, merge_partials(o, lse, axis=0)) < TOL


def test_identity_and_all_empty():
    o, lse = random_partials(n=1, seed=4)
    x = (o[0], lse[0])
    empty = (np.zeros_like(o[0]), np.full_like(lse[0], -np.inf))
    assert close(merge_pair(*x, *empty), x) < TOL
    assert close(merge_pair(*empty, *x), x) < TOL
    out, out_lse = merge_pair(*empty, *empty)
    assert np.all(np.asarray(out) == 0.0)
    assert np.all(np.asarray(out_lse) == -np.inf)


@pytest.mark.parametrize("num_splits", [2, 4, 7])
def test_tree_merge_of_real_partials_is_exact(num_splits):
    """Partials of a real context, merged as a balanced tree, equal float64
    dense attention."""
    rng = np.random.default_rng(num_splits)
    q = rng.standard_normal((2, 3, 4, 8)).astype("float32")
    k = rng.standard_normal((2, 28, 2, 8)).astype("float32")
    v = rng.standard_normal((2, 28, 2, 8)).astype("float32")
    ref = dense_reference(q, k, v)  # (B, T, H, D)
    piece = -(-28 // num_splits)
    pad = num_splits * piece - 28
    kp = np.pad(k, ((0, 0), (0, pad), (0, 0), (0, 0)))
    vp = np.pad(v, ((0, 0), (0, pad), (0, 0), (0, 0)))
    allowed = np.broadcast_to(np.arange(28 + pad) < 28, (1, 3, 28 + pad))
    qs = ops.reshape(q / np.sqrt(8.0), (2, 3, 2, 2, 8))
    o, lse = split_partials(qs, kp, vp, allowed, num_splits)
    parts = [(o[:, i], lse[:, i]) for i in range(num_splits)]
    while len(parts) > 1:
        merged = [
            merge_pair(*parts[i], *parts[i + 1])
            for i in range(0, len(parts) - 1, 2)
        ]
        parts = merged + ([parts[-1]] if len(parts) % 2 else [])
    out = np.asarray(parts[0][0])  # (B, Hkv, G, T, D)
    out = np.transpose(out, (0, 3, 1, 2, 4)).reshape(ref.shape)
    assert np.abs(out - ref).max() < 2e-5


def test_merge_under_xla():
    o, lse = random_partials(n=5, seed=5)
    fn = tf.function(
        lambda a, b: merge_partials(a, b, axis=0), jit_compile=True
    )
    assert close(fn(o, lse), merge_partials(o, lse, axis=0)) < TOL


def test_detects_merge_without_rescaling(monkeypatch):
    """A merge that averages partials (no exp(lse_i - lse)) is not
    associative: the check above fails by orders of magnitude."""
    monkeypatch.setattr(
        online_softmax,
        "merge_weights",
        lambda lses, lse: ops.where(ops.isfinite(lses), 1.0, 0.0),
    )
    assert associativity_error() > 1e3 * TOL
