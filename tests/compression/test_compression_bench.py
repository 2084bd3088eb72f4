"""The table helpers of official.compression.bench and measure (the full
table is written by tests/compression/compression_table.py)."""

import keras
import numpy as np
import pytest
from compression_fixtures import TinyCausalLM
from compression_fixtures import digits_mlp

from official import compression as C
from official.compression import bench


def test_kv_cache_rows_on_a_tiny_lm():
    keras.utils.set_random_seed(0)
    lm = TinyCausalLM()
    lm(np.zeros((1, 4), "int32"))
    rows = bench.kv_cache_rows(lm.step, lm, lm.empty_cache, 32, [12],
                               new_tokens=4, log=lambda *_: None)
    (row,) = rows
    assert row["bytes_int8"] * 4 == row["bytes_float"]
    # 2 layers x (k, v) x 16 positions x 4 heads, one float32 scale each.
    assert row["bytes_scales"] == 2 * 2 * 16 * 4 * 4
    assert row["top1_agreement"] == 1.0 and row["max_logit_diff"] < 2e-3
    assert "| 12 |" in bench.kv_markdown(rows)


def test_sizes_and_markdown():
    model = digits_mlp()
    dense = C.compressed_bytes(model)
    assert C.weight_bytes(model) == 4 * (64 * 64 + 64 + 64 * 10 + 10)
    C.MagnitudePruner(model).update_masks(0.5)
    assert C.compressed_bytes(model) < 0.75 * dense
    assert C.median_ms(lambda: None, repeats=3, warmup=1) >= 0.0
    rows = [{"variant": v, "params": 1, "bytes": 4, "zlib_bytes": 3,
             "ms_b1": ms, "ms_bN": 2 * ms, "ms_bN_xla": None,
             "accuracy": 0.5, "note": ""}
            for v, ms in (("a", 2.0), ("b", 1.0))]
    table = bench.markdown(rows, 64)
    assert "| b | 1 | 4 | 3 | 1.00 (0.50x) | 2.00 (0.50x) | n/a | 0.500 |" \
        in table
    with pytest.raises(ValueError):
        C.polynomial_sparsity(0, 0.0, 0.5, 10, 10)
