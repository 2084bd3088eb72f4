"""Lean Attention's stream-K schedule and a host-merge simulator.

Lean Attention (Sanovar et al. 2024, arXiv 2405.10480, Sec. IV; garden spec
`lean_attention.md` Sec. 4.1, read from ONNX Runtime's `lean_api.cc`) does
not cut each head's context into a fixed number of equal pieces
(Flash-Decoding, the `split_k` kernel's partition). It flattens all
(batch, kv-head, KV-tile) "LeanTiles" into one iteration space and gives
every worker (CTA) an almost equal contiguous range of it: the first
`high_load` workers get `ceil(total / G)` tiles, the others one fewer. A
worker's range may start or end inside a head and may span several heads;
for every head it touches it produces one partial softmax state, and the
worker owning the head's first tile (the "host") merges the others' partials
with the associative re-scaling (paper Sec. III). The result is exact for
any schedule because the merge is associative and commutative.

This module is bookkeeping, not speed: `lean_schedule` computes the
assignment, `simulate_lean_decode` walks it worker by worker in float64
NumPy and merges at each host with `official.attention`'s `merge_partials`
(the same operator the `split_k` kernel uses), so the schedule can be
checked against dense attention. The model decodes with `split_k`.
"""

import dataclasses
import math

import numpy as np
from keras import ops

from official.attention.kernels.split_k import merge_partials


def lean_tile_size(head_dim):
    """LeanTile width along the context (ONNX Runtime `lean_api.cc`)."""
    if head_dim <= 64:
        return 256
    if head_dim <= 128:
        return 128
    return 64


@dataclasses.dataclass
class Segment:
    """One partial: worker `worker`, head (batch, kv_head), key range."""

    worker: int
    batch: int
    kv_head: int
    key_start: int
    key_end: int
    host: bool


@dataclasses.dataclass
class LeanSchedule:
    batch: int
    kv_heads: int
    context: int
    block_n: int
    tiles_per_head: int
    total_tiles: int
    workers: int
    tile_ranges: list  # per worker: [first_tile, end_tile) in flat order
    segments: list  # Segment per (worker, head) touched

    @property
    def num_splits(self):
        """Most partials any head receives (the scratch buffer depth)."""
        counts = {}
        for s in self.segments:
            key = (s.batch, s.kv_head)
            counts[key] = counts.get(key, 0) + 1
        return max(counts.values())

    def split_bound(self):
        """Upper bound on `num_splits`: a head's T contiguous tiles touch at
        most ceil((T - 1) / lo) + 1 workers holding >= lo tiles each."""
        lo = min(e - s for s, e in self.tile_ranges)
        if lo == 0:
            return self.tiles_per_head
        return math.ceil((self.tiles_per_head - 1) / lo) + 1


def lean_schedule(batch, kv_heads, context, block_n, workers):
    """Stream-K assignment of (batch, kv_head, tile) LeanTiles to workers.

    Tiles are flattened batch-major, then head, then position along the
    context; `workers` is clamped to the number of tiles. The last tile of
    a head is ragged when `context % block_n != 0`.
    """
    if min(batch, kv_heads, context, block_n, workers) < 1:
        raise ValueError("lean_schedule: all sizes must be >= 1.")
    tiles_per_head = math.ceil(context / block_n)
    total = tiles_per_head * batch * kv_heads
    g = min(workers, total)
    max_tiles = math.ceil(total / g)
    high_load = total - (max_tiles - 1) * g
    ranges, start = [], 0
    for w in range(g):
        count = max_tiles if w < high_load else max_tiles - 1
        ranges.append((start, start + count))
        start += count
    segments = []
    for w, (first, end) in enumerate(ranges):
        tile = first
        while tile < end:
            head = tile // tiles_per_head
            head_end = (head + 1) * tiles_per_head
            stop = min(end, head_end)
            in_head = tile - head * tiles_per_head
            segments.append(Segment(
                worker=w, batch=head // kv_heads, kv_head=head % kv_heads,
                key_start=in_head * block_n,
                key_end=min((stop - head * tiles_per_head) * block_n,
                            context),
                host=in_head == 0))
            tile = stop
    return LeanSchedule(batch, kv_heads, context, block_n, tiles_per_head,
                        total, g, ranges, segments)


def _partial(q, k, v, scale):
    """Normalised partial (o (G, D), lse (G,)) of queries q (G, D) over keys
    k, v (S, D), float64."""
    s = (q @ k.T) * scale
    m = s.max(axis=-1, keepdims=True)
    p = np.exp(s - m)
    denom = p.sum(axis=-1, keepdims=True)
    return (p @ v) / denom, (m + np.log(denom))[:, 0]


def simulate_lean_decode(query, key, value, schedule, scale=None):
    """Decode attention computed the Lean Attention way, in float64.

    Args:
        query: (B, H, D) one decode query per head (H = G * H_kv heads,
            grouped-query heads of a kv head are rows of the same tile).
        key, value: (B, S, H_kv, D) the cache.
        schedule: a `LeanSchedule` for (B, H_kv, S).

    Returns:
        (B, H, D): for every head, the partials of the workers touching it,
        merged host-first in worker order with `merge_partials`.
    """
    q = np.asarray(query, np.float64)
    k = np.asarray(key, np.float64)
    v = np.asarray(value, np.float64)
    b, h, d = q.shape
    h_kv = k.shape[2]
    g = h // h_kv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    partials = {}
    for seg in schedule.segments:  # what each worker writes
        rows = q[seg.batch, seg.kv_head * g:(seg.kv_head + 1) * g]
        ks = k[seg.batch, seg.key_start:seg.key_end, seg.kv_head]
        vs = v[seg.batch, seg.key_start:seg.key_end, seg.kv_head]
        o, lse = _partial(rows, ks, vs, scale)
        head = (seg.batch, seg.kv_head)
        entry = (not seg.host, seg.worker, o, lse)  # host first
        partials.setdefault(head, []).append(entry)
    out = np.zeros((b, h, d))
    for (bi, hk), entries in partials.items():  # what each host merges
        entries.sort(key=lambda e: (e[0], e[1]))
        o = np.stack([e[2] for e in entries])
        lse = np.stack([e[3] for e in entries])
        merged, _ = merge_partials(ops.convert_to_tensor(o),
                                   ops.convert_to_tensor(lse), axis=0)
        out[bi, hk * g:(hk + 1) * g] = ops.convert_to_numpy(merged)
    return out
