"""`chunked` never materialises a (T, S) score matrix, forward or backward.

The check reads the XLA program (HLO, `experimental_get_compiler_ir`) of the
jit-compiled call at T = S = 8192 and finds the largest array it declares. The
program is only lowered, never run, so the test is cheap. `dense` is the
control: its program holds the (B, H, T, S) scores, so the same detector
fails on it.
"""

import os
import re
import subprocess
import sys

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


# --- the unrolled forward (static lengths, <= max_unrolled_tiles tiles) -------

_BUFFERS_SCRIPT = """
import numpy as np, tensorflow as tf
from official.attention import attention
q = tf.zeros((1, 4096, 4, 64))
def unrolled(q):
    return attention(q, q, q, kernel="chunked")
def looped(q):
    return attention(q, q, q, kernel="chunked", max_unrolled_tiles=0)
def training(q, kernel="chunked"):
    with tf.GradientTape() as tape:
        tape.watch(q)
        out = attention(q, q, q, kernel=kernel)
    return tape.gradient(out, q)
def dense_training(q):
    return training(q, "dense")
for fn in (unrolled, looped, training, dense_training):
    tf.function(fn, jit_compile=True)(q).numpy()
"""


def xla_temp_bytes(tmp_path):
    """{"unrolled"|"looped"|"training"|"dense_training": total bytes of
    XLA's buffer assignment} for the `chunked` forward, its forward +
    backward, and the `dense` forward + backward (the control) at
    T = S = 4096, H = 4, D = 64, read from an XLA dump (the flag must be set
    before XLA starts, hence the subprocess)."""
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_dump_to={tmp_path}",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    subprocess.run(
        [sys.executable, "-c", _BUFFERS_SCRIPT],
        env=env,
        check=True,
        capture_output=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    totals = {}
    for path in tmp_path.glob("*buffer-assignment.txt"):
        name = re.search(
            r"_(unrolled|looped|dense_training|training)_", path.name
        ).group(1)
        used = re.search(r"Total bytes used: (\d+)", path.read_text())
        totals[name] = int(used.group(1))
    return totals


def test_unrolled_forward_and_training_hold_few_tiles(tmp_path):
    """Unrolled, every tile's Q.K^T could be hoisted by XLA's scheduler and
    all of (B, H, T, S) held at once (measured: 274 MB of buffers when tiles
    are not chained); each Q.K^T waits for the tile two back, which keeps it
    to a few tiles (measured 78 MB; the loops: 32 MB; the (1, 4, 4096, 4096)
    scores: 268 MB). A training step (forward + the one-pass backward) stays
    below the score matrix too (83 MB; the old two-pass backward: 96 MB),
    where `dense` needs 835 MB."""
    totals = xla_temp_bytes(tmp_path)
    assert set(totals) == {
        "unrolled", "looped", "training", "dense_training"}, totals
    scores = 4 * 4096 * 4096 * 4
    tile = 4 * 1024 * 512 * 4
    assert totals["looped"] < 6 * tile, totals
    assert totals["unrolled"] < 0.4 * scores, totals  # <= ~12 tiles
    # Forward + backward (the one-pass backward accumulates dQ in place):
    # measured 83 MB; `dense` holds its scores and probabilities, 835 MB.
    assert totals["training"] < 0.4 * scores, totals
    assert totals["dense_training"] > 2 * scores, totals


@pytest.mark.parametrize(
    "length,opts,loops",
    [
        (4096, {}, False),  # 4 x 8 tiles <= 64: unrolled by default
        (4096, dict(max_unrolled_tiles=0), True),
        (8192, {}, True),  # 8 x 16 tiles: loops
        (4096, dict(max_unrolled_tiles=31), True),
    ],
)
def test_unrolling_follows_the_tile_count(length, opts, loops):
    q = tf.zeros((1, length, 1, 8))
    hlo = tf.function(
        lambda q: attention(q, q, q, kernel="chunked", **opts),
        jit_compile=True,
    ).experimental_get_compiler_ir(q)(stage="hlo")
    assert (" while(" in hlo) == loops
