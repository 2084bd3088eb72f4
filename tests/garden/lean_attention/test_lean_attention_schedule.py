"""Lean Attention's stream-K schedule (spec `lean_attention.md` Sec. 4.2,
checks 1 and 3): invariants, and exact attention for any worker count."""

import itertools
import math

import numpy as np
import pytest
from keras import ops

from garden.lean_attention import lean_attention_schedule as la
from official.attention import attention

GRID = list(itertools.product((1, 2), (1, 3), (1, 64, 1000), (1, 7, 64),
                              (1, 2, 3, 7, 64, 10_000)))


@pytest.mark.parametrize("b,h,n,block,g", GRID)
def test_schedule_invariants(b, h, n, block, g):
    s = la.lean_schedule(b, h, n, block, g)
    # Every LeanTile goes to exactly one worker, in contiguous ranges.
    assert s.tile_ranges[0][0] == 0 and s.tile_ranges[-1][1] == s.total_tiles
    for (_, e), (s2, _) in zip(s.tile_ranges, s.tile_ranges[1:]):
        assert e == s2
    counts = [e - st for st, e in s.tile_ranges]
    assert max(counts) - min(counts) <= 1 and min(counts) >= 1
    assert s.workers == min(g, s.total_tiles)
    # Per head: the partial key ranges tile [0, n) exactly; one host.
    heads = {}
    for seg in s.segments:
        heads.setdefault((seg.batch, seg.kv_head), []).append(seg)
    assert len(heads) == b * h
    for segs in heads.values():
        segs.sort(key=lambda x: x.key_start)
        assert segs[0].key_start == 0 and segs[-1].key_end == n
        for x, y in zip(segs, segs[1:]):
            assert x.key_end == y.key_start
        assert sum(x.host for x in segs) == 1 and segs[0].host
    assert s.num_splits <= s.split_bound()


def test_unequal_splits_cross_head_boundaries():
    """What distinguishes stream-K from Flash-Decoding's equal pieces."""
    s = la.lean_schedule(1, 3, 1000, 64, 7)  # 48 tiles over 7 workers
    assert [e - st for st, e in s.tile_ranges] == [7] * 6 + [6]
    spans = {}
    for seg in s.segments:
        spans.setdefault(seg.worker, set()).add(seg.kv_head)
    assert any(len(v) > 1 for v in spans.values())
    sizes = {seg.key_end - seg.key_start for seg in s.segments}
    assert len(sizes) > 2


def test_tile_size_follows_head_dim():
    assert [la.lean_tile_size(d) for d in (32, 64, 128, 256)] == [
        256, 256, 128, 64]


def _inputs(seed=0, b=2, hq=4, hkv=2, d=16, n=1000, logit_scale=30.0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(b, hq, d)) * logit_scale
    k = rng.normal(size=(b, n, hkv, d))
    v = rng.normal(size=(b, n, hkv, d))
    return q, k, v


def _dense64(q, k, v):
    b, hq, d = q.shape
    g = hq // k.shape[2]
    kk = np.repeat(k, g, axis=2)
    vv = np.repeat(v, g, axis=2)
    s = np.einsum("bhd,bshd->bhs", q, kk) / math.sqrt(d)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhs,bshd->bhd", p, vv)


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 64, 32])
def test_simulated_lean_decode_is_exact(workers):
    """GQA (4 query / 2 kv heads), ragged N = 1000 with block_n = 64, logits
    scaled x30; 64 workers = one tile each (2 * 2 * 16 tiles, 16 partials
    per head). Measured: 1.4e-14 to 2.0e-14 from float64 dense; the float32
    split_k kernel 1.2e-6."""
    q, k, v = _inputs()
    s = la.lean_schedule(2, 2, 1000, 64, workers)
    got = la.simulate_lean_decode(q, k, v, s)
    want = _dense64(q, k, v)
    assert np.abs(got - want).max() < 1e-10
    # The garden kernel (equal pieces) agrees in float32.
    kernel = attention(q[:, None].astype("float32"), k.astype("float32"),
                       v.astype("float32"), kernel="split_k", causal=True,
                       num_splits=7)
    assert np.abs(ops.convert_to_numpy(kernel)[:, 0] - want).max() < 1e-5


def test_unweighted_merge_fails(monkeypatch):
    """Broken host merge (plain mean of the partials, no exp(lse) weights):
    the exactness check above fails (measured error 1.68)."""

    def mean_merge(outputs, lses, axis=0):
        return ops.mean(outputs, axis=axis), ops.max(lses, axis=axis)

    monkeypatch.setattr(la, "merge_partials", mean_merge)
    q, k, v = _inputs()
    got = la.simulate_lean_decode(q, k, v, la.lean_schedule(2, 2, 1000, 64, 7))
    assert np.abs(got - _dense64(q, k, v)).max() > 1e-2
