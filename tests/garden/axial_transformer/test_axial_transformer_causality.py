"""The model's receptive field is exactly the raster-order past (§3.2).

Paper claim: the Axial Transformer models p(x_i | x_<i) for every pixel in
raster order with the *full* context and nothing else. Two checks on a tiny
4x4 model with init scales 1 (upstream's 1e-10 would make every block
start as the identity):

* Jacobian: J[(r,c), (r',c')] = d logits[r,c,:]·w / d E[r',c',:] for the
  input embeddings E. J must be exactly 0 for (r',c') >= (r,c) and nonzero
  for **every** (r',c') < (r,c) (a wrong shift or mask shows up as a leak
  or as a hole in the context).
* Integer inputs: changing pixel j changes no logit of a pixel i < j (and
  does change later ones).

The `broken` fixtures are the mutation checks: an unmasked outer column
layer, a missing shift_down, an unmasked inner row layer and a missing
shift_right each make the check fail. With C = 2 channel slices, slice c
depends on every pixel of the slices < c and on none of the slices >= c.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import garden
from garden.axial_transformer import axial_transformer_layers as layers

N = 4
TINY = dict(image_height=N, image_width=N, num_channels=1, num_values=7,
            hidden_dim=16, num_heads=2, mlp_ratio=2, num_exterior_layers=0,
            num_outer_layers=2, num_inner_layers=2, emb_init_scale=1.0,
            res_init_scale=1.0, logits_init_scale=1.0)


def make_model(**overrides):
    keras.utils.set_random_seed(0)
    config = dict(TINY, **overrides)
    model = garden.axial_transformer.AxialTransformer(**config)
    model.build()
    return model


def jacobian_norms(model, seed=0):
    """(L, L) |J|: row = output pixel (raster), column = input pixel."""
    rng = np.random.default_rng(seed)
    length = N * N
    x = rng.integers(0, model.num_values, (1, N, N))
    h = tf.tile(model.embed(x), (length, 1, 1, 1))  # one copy per output
    w = tf.constant(rng.standard_normal((length, model.num_values)),
                    tf.float32)
    pick = tf.reshape(tf.eye(length), (length, N, N, 1))
    with tf.GradientTape() as tape:
        tape.watch(h)
        logits = model.decode_slice(h)  # (L, N, N, K)
        target = tf.reduce_sum(logits * pick * w[:, None, None, :])
    grad = tape.gradient(target, h)  # copy i: d logits[i] / d E
    return np.linalg.norm(np.reshape(grad, (length, length, -1)), axis=-1)


def violations(norms):
    """(leaks into the future or self, holes in the past)."""
    past = np.tril(np.ones_like(norms, bool), k=-1)
    leaks = int(np.sum(norms[~past] != 0))
    holes = int(np.sum(norms[past] == 0))
    return leaks, holes


def test_receptive_field_is_exactly_the_raster_past():
    norms = jacobian_norms(make_model())
    assert violations(norms) == (0, 0)
    past = np.tril(np.ones_like(norms, bool), k=-1)
    assert norms[past].min() > 1e-6  # the context is really used


def _unmask(blocks):
    for block in blocks:
        block.attn.masked = False


def _no_outer_column_mask(model, monkeypatch):
    _unmask(model.outer_blocks[1::2])


def _no_inner_row_mask(model, monkeypatch):
    _unmask(model.inner_blocks)


def _no_shift_down(model, monkeypatch):
    monkeypatch.setattr(layers, "shift_down", lambda x: x)


def _no_shift_right(model, monkeypatch):
    monkeypatch.setattr(layers, "shift_right", lambda x: x)


BROKEN = {
    "outer_column_unmasked": _no_outer_column_mask,
    "inner_row_unmasked": _no_inner_row_mask,
    "no_shift_down": _no_shift_down,
    "no_shift_right": _no_shift_right,
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_detects_broken_masking(name, monkeypatch):
    model = make_model()
    BROKEN[name](model, monkeypatch)
    leaks, _ = violations(jacobian_norms(model))
    assert leaks > 0, name


def test_changing_a_pixel_never_changes_earlier_predictions():
    model = make_model()
    rng = np.random.default_rng(1)
    base = rng.integers(0, model.num_values, (1, N, N, 1)).astype("int32")
    changed = np.repeat(base, N * N, axis=0)
    flat = changed.reshape(N * N, N * N)
    flat[np.arange(N * N), np.arange(N * N)] += 1 + rng.integers(
        0, model.num_values - 1, N * N)
    flat %= model.num_values
    images = np.concatenate([base, flat.reshape(-1, N, N, 1)])
    logits = np.asarray(model(images)["logits"]).reshape(
        1 + N * N, N * N, -1)
    diff = np.abs(logits[1:] - logits[:1]).max(-1)  # (changed j, pixel i)
    before = np.tril(np.ones((N * N, N * N), bool), k=-1)  # [j, i]: i < j
    assert diff[before].max() == 0.0  # masked weights are exact zeros
    # ...and the change is seen by every later pixel.
    after = np.triu(np.ones((N * N, N * N), bool), k=1)  # [j, i]: i > j
    assert diff[after].min() > 1e-3  # measured min 0.029


def test_changing_a_pixel_detects_a_leak():
    model = make_model()
    _unmask(model.inner_blocks)
    base = np.zeros((1, N, N, 1), "int32")
    changed = base.copy()
    changed[0, 1, 2] = 3
    logits = np.asarray(model(np.concatenate([base, changed]))["logits"])
    # Pixel (1, 1) precedes (1, 2) but now sees it through the row.
    assert np.abs(logits[1, 1, 1] - logits[0, 1, 1]).max() > 1e-3


def test_channel_slices_see_exactly_the_previous_channels():
    model = make_model(num_channels=3, num_exterior_layers=2)
    rng = np.random.default_rng(2)
    values = tf.constant(rng.random((1, N, N, 3)), tf.float32)
    for c in range(3):
        with tf.GradientTape() as tape:
            tape.watch(values)
            cond = model.channel_context(values, c)
            h = model.embed(np.zeros((1, N, N), "int32"))
            out = tf.reduce_sum(model.decode_slice(h, cond) ** 2)
        grad = np.abs(np.asarray(tape.gradient(out, values)))[0]
        for c_in in range(3):
            if c_in < c:  # every pixel of every previous channel is used
                assert grad[..., c_in].min() > 0, (c, c_in)
            else:
                assert grad[..., c_in].max() == 0, (c, c_in)
