"""The decode benchmark runs end to end on tiny lengths (numbers are in
the README; here only the plumbing)."""

import numpy as np

from garden.lean_attention.lean_attention_bench import decode_benchmark
from garden.lean_attention.lean_attention_bench import loglog_slope
from garden.lean_attention.lean_attention_bench import summarize
from garden.lean_attention.lean_attention_bench import to_markdown


def test_loglog_slope():
    n = np.array([1.0, 2.0, 4.0, 8.0])
    assert abs(loglog_slope(n, 3 * n**1.5) - 1.5) < 1e-9


def test_decode_benchmark_runs():
    rows = decode_benchmark("tiny", contexts=(8, 16, 32), steps=2,
                            recompute_reps=1, prefill_chunk=8,
                            recompute_max=16)
    assert [r["context"] for r in rows] == [8, 16, 32]
    assert all(r["cached_ms"] > 0 for r in rows)
    assert "speedup" in rows[0] and "speedup" not in rows[-1]
    table = to_markdown(rows, summarize(rows))
    assert "not run" in table and "slope" in table
