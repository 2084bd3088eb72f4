"""FSQ against the paper's appendix A.1 reference code, in NumPy."""

import math

import numpy as np
import pytest
import tensorflow as tf

from official.quantization import FiniteScalarQuantizer


def np_fsq(z, levels, eps=1e-3):
    """Mentzer et al. 2023, appendix A.1 (bound, round, renormalise)."""
    lv = np.asarray(levels, np.float64)
    half_l = (lv - 1) * (1 - eps) / 2
    offset = np.where(lv % 2 == 1, 0.0, 0.5)
    shift = np.tan(offset / half_l)
    bounded = np.tanh(z + shift) * half_l - offset
    return np.round(bounded) / (lv // 2), bounded


def test_matches_reference_code():
    levels = [8, 5, 5, 5]
    z = np.random.default_rng(0).normal(size=(3, 50, 4)).astype("float32") * 2
    out = FiniteScalarQuantizer(levels)(z)
    ref, bounded = np_fsq(z.astype(np.float64), levels)
    # Skip values within 1e-4 of a rounding boundary (float32 vs float64).
    safe = np.abs(np.abs(bounded - np.floor(bounded)) - 0.5) > 1e-4
    np.testing.assert_allclose(
        np.asarray(out["quantized"])[safe], ref[safe], atol=1e-6
    )
    assert safe.mean() > 0.99
    np.testing.assert_array_equal(out["loss"], 0.0)


@pytest.mark.parametrize("levels", [[4, 3, 5], [2, 6], [7]])
def test_distinct_codes_equal_prod_levels(levels):
    d = len(levels)
    z = np.random.default_rng(1).normal(size=(20000, d)).astype("float32") * 3
    fsq = FiniteScalarQuantizer(levels)
    out = fsq(z)
    codes = np.asarray(out["quantized"])
    for i, level in enumerate(levels):  # exactly L_i values per channel
        assert len(np.unique(codes[:, i])) == level
        assert codes[:, i].min() >= -1.0 and codes[:, i].max() <= 1.0
    indices = np.asarray(out["indices"])
    assert fsq.codebook_size == math.prod(levels)
    assert len(np.unique(indices)) == math.prod(levels)
    assert indices.min() == 0 and indices.max() == math.prod(levels) - 1
    assert len(np.unique(codes, axis=0)) == math.prod(levels)


def test_index_round_trip():
    levels = [8, 5, 5, 5]
    fsq = FiniteScalarQuantizer(levels)
    all_idx = np.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(all_idx)
    np.testing.assert_array_equal(fsq.codes_to_indices(codes), all_idx)
    assert len(np.unique(np.asarray(codes), axis=0)) == 1000
    z = np.random.default_rng(2).normal(size=(4, 9, 4)).astype("float32")
    out = fsq(z)
    np.testing.assert_array_equal(
        fsq.indices_to_codes(out["indices"]), out["quantized"]
    )
    # Mixed radix: first channel least significant (basis 1, 8, 40, 200).
    np.testing.assert_array_equal(
        fsq.indices_to_codes(np.array([1, 8, 40, 200])),
        [
            [-0.75, -1, -1, -1],
            [-1, -0.5, -1, -1],
            [-1, -1, -0.5, -1],
            [-1, -1, -1, -0.5],
        ],
    )


def test_straight_through_gradient():
    levels = [8, 5]
    fsq = FiniteScalarQuantizer(levels)
    z = tf.constant(np.random.default_rng(3).normal(size=(6, 2)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        total = tf.reduce_sum(fsq(z)["quantized"])
    lv = np.array(levels, np.float64)
    half_l = (lv - 1) * (1 - 1e-3) / 2
    shift = np.tan(np.where(lv % 2 == 1, 0.0, 0.5) / half_l)
    dtanh = 1 - np.tanh(z.numpy() + shift) ** 2
    np.testing.assert_allclose(
        tape.gradient(total, z),
        dtanh * half_l / (lv // 2),
        rtol=1e-5,
        atol=1e-6,
    )


def test_perplexity_and_errors():
    fsq = FiniteScalarQuantizer([3, 3])
    grid = fsq.indices_to_codes(np.arange(9))
    # L = 3: bound = 0.999 tanh(z), so arctanh(0.9 c) lands on code c.
    z = np.arctanh(np.asarray(grid) * 0.9)
    out = fsq(z.astype("float32"))
    np.testing.assert_array_equal(np.sort(out["indices"]), np.arange(9))
    np.testing.assert_allclose(out["perplexity"], 9.0, rtol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        fsq(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=">= 2"):
        FiniteScalarQuantizer([1, 4])
    clone = FiniteScalarQuantizer.from_config(fsq.get_config())
    assert clone.get_config() == fsq.get_config()
