"""What the four approximate kernels share: causality, eager == XLA, no
(T, S) array in the XLA program, and use inside `MultiHeadAttention`
(kernel-owned weights built through `register_kernel(params=...)`, saved
and reloaded with a `.keras` model).

Kernel-specific maths (exact limits, references, Performer's convergence,
LSH hashing) is in tests/attention/test_<kernel>_kernel.py.

Causality is checked bit for bit: positions >= CUT of q, k and v are
replaced by large random values and rows < CUT must not change at all.
Each causal kernel has a deliberately broken variant that the same check
rejects (a window/chunk mask that lets the future in, Performer's shared
key stabiliser of the official code, Reformer's own fixed chunks).
"""

import os
import re
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from official.attention import MultiHeadAttention
from official.attention import attention
from official.attention.kernels import local_global
from official.attention.kernels import performer

B, L, H, H_KV, D = 2, 40, 4, 2, 16
CUT = 23

OPTIONS = {
    "local_global": dict(window=5, global_tokens=[0, 9], block_size=8),
    "performer": dict(num_features=32, chunk_size=8),
    "lsh": dict(num_buckets=4, num_hashes=2, chunk_size=8),
    "lowrank": dict(k=12),
}
CAUSAL = ["local_global", "performer", "lsh"]


def inputs(seed=0, length=L, h_kv=H_KV):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, length, H, D)).astype("float32")
    k = rng.standard_normal((B, length, h_kv, D)).astype("float32")
    v = rng.standard_normal((B, length, h_kv, D)).astype("float32")
    return q, k, v


def perturb_future(x, seed):
    y = x.copy()
    rng = np.random.default_rng(seed)
    y[:, CUT:] = 5.0 * rng.standard_normal(y[:, CUT:].shape)
    return y


def causal_leak(kernel, opts, mask=None):
    """(max change of rows < CUT, max change of rows >= CUT)."""
    q, k, v = inputs()
    base = np.asarray(
        attention(q, k, v, kernel=kernel, causal=True, mask=mask, **opts)
    )
    q2, k2, v2 = (perturb_future(x, i) for i, x in enumerate((q, k, v), 1))
    new = np.asarray(
        attention(q2, k2, v2, kernel=kernel, causal=True, mask=mask, **opts)
    )
    diff = np.abs(new - base)
    return float(diff[:, :CUT].max()), float(diff[:, CUT:].max())


# --- causality ---------------------------------------------------------------


@pytest.mark.parametrize("kernel", CAUSAL)
def test_later_positions_never_change_earlier_outputs(kernel):
    before, after = causal_leak(kernel, OPTIONS[kernel])
    assert before == 0.0  # bit for bit
    assert after > 1e-2  # the perturbation did reach the later rows


def test_causal_with_padding_mask_is_exact():
    mask = np.arange(L)[None, None, :] < np.array([L, 31])[:, None, None]
    for kernel in CAUSAL:
        assert causal_leak(kernel, OPTIONS[kernel], mask)[0] == 0.0


def test_broken_local_window_is_caught(monkeypatch):
    """A causal band that still uses the non-causal window (j <= i + w)."""
    band = local_global.band_allowed
    monkeypatch.setattr(
        local_global,
        "band_allowed",
        lambda q, k, causal, w, dil: band(q, k, False, w, dil),
    )
    assert causal_leak("local_global", OPTIONS["local_global"])[0] > 1e-2


def test_broken_performer_chunk_mask_is_caught(monkeypatch):
    """Intra-chunk products without the j <= i mask."""
    monkeypatch.setattr(
        performer, "chunk_causal_mask", lambda c: ops.ones((c, c), "bool")
    )
    assert causal_leak("performer", OPTIONS["performer"])[0] > 1e-2


def test_shared_key_stabiliser_leaks(monkeypatch):
    """The official code's stabiliser: one max over *all* keys. A later key
    aligned with a random feature raises that max and the rescaling changes
    earlier outputs (rounding here; underflow for larger keys)."""
    real = performer.key_scales

    def shared(lk, valid):
        mj, _ = real(lk, valid)
        top = ops.max(mj, axis=(1, 2), keepdims=True)
        return ops.zeros_like(mj) + top, ops.exp(lk - top[..., None])

    opts = dict(OPTIONS["performer"], random_features=features())
    q, k, v = inputs()
    k2 = k.copy()
    k2[:, CUT] = opts["random_features"][0] * D**0.25  # m_j = ||w||^2 / 2
    correct = [
        np.asarray(attention(q, kk, v, kernel="performer", causal=True, **opts))
        for kk in (k, k2)
    ]
    assert np.abs(correct[0][:, :CUT] - correct[1][:, :CUT]).max() == 0.0
    monkeypatch.setattr(performer, "key_scales", shared)
    leaky = [
        np.asarray(attention(q, kk, v, kernel="performer", causal=True, **opts))
        for kk in (k, k2)
    ]
    assert np.abs(leaky[0][:, :CUT] - leaky[1][:, :CUT]).max() > 0.0


def features():
    return performer.draw_random_features(32, D, seed=3).astype("float32")


def test_reformer_fixed_chunks_leak():
    """Reformer's own causal pattern (chunk + previous chunk) is not causal
    in this sense: later tokens move chunk boundaries. strict_causal=False
    reproduces it and fails the check that the default passes."""
    opts = dict(OPTIONS["lsh"], strict_causal=False)
    assert causal_leak("lsh", opts)[0] > 1e-3


# --- eager == XLA ------------------------------------------------------------


# Each kernel's file already compares one XLA case with its reference;
# these repeat it for both causal settings (compilation is the cost).
XLA_CASES = [
    ("local_global", True),
    ("local_global", False),
    ("performer", True),
    ("performer", False),
    ("lsh", True),
    ("lsh", False),
    ("lowrank", False),
]


@pytest.mark.large
@pytest.mark.parametrize("kernel,causal", XLA_CASES)
def test_eager_equals_xla(kernel, causal):
    q, k, v = inputs(seed=5, length=37)  # not a block multiple
    mask = np.arange(37)[None, None, :] < np.array([37, 30])[:, None, None]

    def fn(q, k, v):
        return attention(
            q,
            k,
            v,
            kernel=kernel,
            causal=causal,
            mask=mask,
            **OPTIONS[kernel],
        )

    eager = np.asarray(fn(q, k, v))
    xla = np.asarray(tf.function(fn, jit_compile=True)(q, k, v))
    assert np.isfinite(eager).all()
    assert np.abs(eager - xla).max() < 1e-5


# --- no (T, S) array in the XLA program --------------------------------------

_ARRAY = re.compile(r"\b(?:f|s|u|pred|bf)\d*\[([0-9,]*)\]")
BIG = 8192
BIG_OPTIONS = {
    "local_global": dict(window=64, global_tokens=2),
    "performer": dict(num_features=64, chunk_size=64),
    "lsh": dict(num_buckets=64, num_hashes=2, chunk_size=32),
    "lowrank": dict(k=64),
    "dense": {},
}


def largest_array(kernel, causal):
    """Element count of the largest array in the (lowered, not compiled)
    HLO of a forward + backward pass at T = S = 8192."""
    q = tf.zeros((1, BIG, 2, 16))
    kv = tf.zeros((1, BIG, 1, 16))

    def fn(q, k, v):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = attention(
                q, k, v, kernel=kernel, causal=causal, **BIG_OPTIONS[kernel]
            )
        return tape.gradient(out, [q, k, v])

    hlo = tf.function(fn, jit_compile=True).experimental_get_compiler_ir(
        q, kv, kv
    )(stage="hlo")
    sizes = [
        int(np.prod([int(x) for x in dims.split(",") if x]))
        for dims in _ARRAY.findall(hlo)
    ]
    return max(sizes)


@pytest.mark.parametrize(
    "kernel,causal",
    [
        ("local_global", True),
        ("performer", True),
        ("lsh", True),
        ("lowrank", False),
        pytest.param("local_global", False, marks=pytest.mark.large),
        pytest.param("performer", False, marks=pytest.mark.large),
    ],
)
def test_no_score_matrix(kernel, causal):
    """Dense holds H * T * S = 2 * 8192^2 scores; these kernels' largest
    array (forward or backward) is O(T) and at least 16x smaller."""
    assert largest_array(kernel, causal) * 16 <= 2 * BIG * BIG


def test_detector_sees_dense_scores():
    assert largest_array("dense", False) >= 2 * BIG * BIG


# --- inside MultiHeadAttention ----------------------------------------------

LAYER_OPTIONS = {
    "local_global": dict(window=3, global_tokens=1),
    "performer": dict(num_features=16),
    "lsh": dict(num_buckets=4, num_hashes=2, chunk_size=4),
    "lowrank": dict(k=8),
}
# name: (shape, trainable) of the weights the kernel owns
OWN_WEIGHTS = {
    "local_global": {},
    "performer": {"performer_features": ((16, 8), False)},
    "lsh": {"lsh_rotations": ((8, 2, 2), False)},
    "lowrank": {"lowrank_e": ((8, 16), True), "lowrank_f": ((8, 16), True)},
}
SEQ, WIDTH = 16, 32


def small_model(kernel, causal):
    inp = keras.Input((SEQ, WIDTH))
    x = MultiHeadAttention(
        num_heads=2,
        key_dim=8,
        kernel=kernel,
        kernel_options=LAYER_OPTIONS[kernel],
        name="attn",
    )(inp, causal=causal)
    return keras.Model(inp, keras.layers.Dense(3)(x))


@pytest.mark.parametrize("kernel", sorted(LAYER_OPTIONS))
def test_layer_weights_save_and_load(kernel):
    causal = kernel != "lowrank"
    keras.utils.set_random_seed(1)
    model = small_model(kernel, causal)
    layer = model.get_layer("attn")
    own = {
        w.name: (tuple(w.shape), w.trainable)
        for w in layer.weights
        if w.name not in ("kernel", "bias")
    }
    assert own == OWN_WEIGHTS[kernel]
    x = np.random.default_rng(0).standard_normal((2, SEQ, WIDTH))
    x = x.astype("float32")
    want = np.asarray(model(x))
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    keras.utils.set_random_seed(2)  # a fresh build would draw other weights
    loaded = keras.saving.load_model(path)
    assert np.array_equal(np.asarray(loaded(x)), want)
    if OWN_WEIGHTS[kernel]:
        fresh = small_model(kernel, causal)
        fresh(x)
        name = sorted(OWN_WEIGHTS[kernel])[0]
        fresh_w = [w for w in fresh.get_layer("attn").weights if w.name == name]
        saved_w = [w for w in layer.weights if w.name == name]
        assert not np.array_equal(fresh_w[0].numpy(), saved_w[0].numpy())


@pytest.mark.parametrize(
    "kernel",
    [
        "lowrank",
        "performer",
        pytest.param("lsh", marks=pytest.mark.large),
        pytest.param("local_global", marks=pytest.mark.large),
    ],
)
def test_layer_trains_under_xla(kernel):
    """One jit-compiled fit step: trainable kernel weights (Linformer's E,
    F) move, non-trainable ones (random features, rotations) do not."""
    keras.utils.set_random_seed(3)
    model = small_model(kernel, kernel != "lowrank")
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, SEQ, WIDTH)).astype("float32")
    y = rng.standard_normal((4, SEQ, 3)).astype("float32")
    layer = model.get_layer("attn")
    model(x)
    before = {w.name: w.numpy().copy() for w in layer.weights}
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for w in layer.weights:
        moved = not np.array_equal(before[w.name], w.numpy())
        if w.name in OWN_WEIGHTS[kernel]:
            assert moved == OWN_WEIGHTS[kernel][w.name][1], w.name


def test_redraw_features_changes_output():
    model = small_model("performer", True)
    x = np.random.default_rng(0).standard_normal((1, SEQ, WIDTH))
    x = x.astype("float32")
    before = np.asarray(model(x))
    performer.redraw_features(model.get_layer("attn"), seed=123)
    assert not np.allclose(np.asarray(model(x)), before)
