"""The exact kernels inside `MultiHeadAttention`: same outputs as `dense`,
and cached token-by-token decoding with `split_k` equals the causal full
forward (garden spec `lean_attention.md` Sec. 4.2, check 4)."""

import numpy as np
import pytest

from official.attention import MultiHeadAttention

TOL = 2e-5


def make_layers(kernel, options):
    ref = MultiHeadAttention(num_heads=4, key_dim=8, num_kv_heads=2)
    layer = MultiHeadAttention(
        num_heads=4,
        key_dim=8,
        num_kv_heads=2,
        kernel=kernel,
        kernel_options=options,
    )
    x = np.random.default_rng(0).standard_normal((2, 19, 32)).astype("float32")
    ref(x)
    layer(x)
    layer.set_weights(ref.get_weights())
    return ref, layer, x


@pytest.mark.parametrize(
    "kernel,options",
    [
        ("chunked", {"chunk_size": 6, "query_chunk_size": 4}),
        ("split_k", {"num_splits": 3}),
    ],
)
def test_layer_matches_dense(kernel, options):
    ref, layer, x = make_layers(kernel, options)
    mask = np.arange(19)[None, None, :] < np.array([19, 12])[:, None, None]
    for causal in (False, True):
        want = np.asarray(ref(x, attention_mask=mask, causal=causal))
        got = np.asarray(layer(x, attention_mask=mask, causal=causal))
        assert np.abs(got - want).max() < TOL


def test_cached_split_k_decode_equals_full_forward():
    ref, layer, x = make_layers("split_k", {"num_splits": 4})
    full = np.asarray(ref(x, causal=True))
    prompt = 15
    out, cache = layer(
        x[:, :prompt],
        causal=True,
        cache=(
            np.zeros((2, 0, 2, 8), "float32"),
            np.zeros((2, 0, 2, 8), "float32"),
        ),
    )
    steps = [np.asarray(out)]
    for i in range(prompt, 19):  # one new token per step, S grows
        out, cache = layer(x[:, i : i + 1], causal=True, cache=cache)
        steps.append(np.asarray(out))
    assert np.abs(np.concatenate(steps, axis=1) - full).max() < TOL
