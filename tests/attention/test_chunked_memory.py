"""`chunked` never materialises a (T, S) score matrix, forward or backward.

The check reads the XLA program (HLO, `experimental_get_compiler_ir`) of the
jit-compiled call at T = S = 8192 and finds the largest array it declares. The
program is only lowered, never run, so the test is cheap. `dense` is the
control: its program holds the (B, H, T, S) scores, so the same detector
fails on it.
"""

import re

import numpy as np
import pytest
import tensorflow as tf

from official.attention import attention

T = S = 8192
H, H_KV, D = 2, 1, 16
_ARRAY = re.compile(r"\b(?:f|s|u|pred|bf)\d*\[([0-9,]*)\]")


def largest_array(fn, *args):
    """Element count of the largest array in the HLO of `fn(*args)`."""
    hlo = tf.function(fn, jit_compile=True).experimental_get_compiler_ir(*args)(
        stage="hlo"
    )
    sizes = [
        int(np.prod([int(x) for x in dims.split(",") if x]))
        for dims in _ARRAY.findall(hlo)
    ]
    assert sizes, "no arrays parsed from the HLO text"
    return max(sizes)


def inputs():
    q = tf.zeros((1, T, H, D))
    kv = tf.zeros((1, S, H_KV, D))
    mask = tf.ones((1, 1, S), "bool")  # a (B, 1, S) padding mask: O(S)
    return q, kv, mask


def forward(kernel, causal, **opts):
    def fn(q, k, v, mask):
        return attention(
            q, k, v, kernel=kernel, causal=causal, mask=mask, **opts
        )

    return fn


def backward(kernel, causal, **opts):
    def fn(q, k, v, mask):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = attention(
                q, k, v, kernel=kernel, causal=causal, mask=mask, **opts
            )
        return tape.gradient(out, [q, k, v])

    return fn


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("make", [forward, backward], ids=["fwd", "bwd"])
def test_chunked_has_no_score_matrix(make, causal):
    q, kv, mask = inputs()
    opts = dict(chunk_size=512, query_chunk_size=1024)
    biggest = largest_array(make("chunked", causal, **opts), q, kv, kv, mask)
    tile = H * opts["chunk_size"] * opts["query_chunk_size"]
    assert biggest <= tile, biggest  # the largest live tensor is one tile
    assert biggest * 64 <= T * S


@pytest.mark.parametrize("make", [forward, backward], ids=["fwd", "bwd"])
def test_detector_finds_dense_score_matrix(make):
    q, kv, mask = inputs()
    assert largest_array(make("dense", True), q, kv, kv, mask) >= T * S
