"""Semi-parallel (fast) sampling == naive (slow) sampling (§3.2, §4).

Same Gumbel noise -> bit-identical images from `sample(fast=True)` (outer
decoder once per row, inner row decoder once per pixel on a 1 x W row) and
`sample(fast=False)` (the whole model once per pixel), for one channel and
for channel slices (C = 2, exterior context). The logits each pixel was
drawn from equal the teacher-forced logits of the final image. Call counts
follow the formulas (outer: H·C fast vs H·W·C slow; inner: H·W·C both).
Mutation check: a fast sampler whose upper-context cache goes stale (u
computed once per image instead of once per row) no longer matches.
"""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import garden

SMALL = dict(num_channels=1, num_values=17, hidden_dim=16, num_heads=2,
             mlp_ratio=2, num_exterior_layers=0, num_outer_layers=2,
             num_inner_layers=1, emb_init_scale=1.0, res_init_scale=1.0,
             logits_init_scale=1.0)


def make_model(h, w, **overrides):
    keras.utils.set_random_seed(0)
    model = garden.axial_transformer.AxialTransformer(
        image_height=h, image_width=w, **dict(SMALL, **overrides))
    model.build()
    return model


def noise_for(model, batch, seed):
    shape = (batch,) + model.image_shape + (model.num_values,)
    return garden.axial_transformer.gumbel_noise(shape, seed=seed)


def test_fast_equals_slow_and_teacher_forcing():
    model = make_model(6, 6)
    noise = noise_for(model, 3, seed=1)
    fast = tf.function(lambda n: model.sample(n, True, return_logits=True))
    slow = tf.function(lambda n: model.sample(n, False, return_logits=True))
    images_fast, logits_fast = (np.asarray(a) for a in fast(noise))
    images_slow, logits_slow = (np.asarray(a) for a in slow(noise))
    np.testing.assert_array_equal(images_fast, images_slow)
    assert images_fast.dtype == np.int32 and images_fast.shape == (3, 6, 6, 1)
    # Not a degenerate image: many distinct values were drawn.
    assert len(np.unique(images_fast)) > 8
    np.testing.assert_allclose(logits_fast, logits_slow, atol=1e-5)
    teacher = np.asarray(model(images_fast)["logits"])
    np.testing.assert_allclose(logits_fast, teacher, atol=1e-5)


def test_fast_equals_slow_with_channel_slices():
    model = make_model(2, 3, num_channels=2, num_exterior_layers=2)
    noise = noise_for(model, 2, seed=2)
    images_fast, logits_fast = model.sample(noise, True, return_logits=True)
    images_slow = model.sample(noise, False)
    np.testing.assert_array_equal(images_fast, images_slow)
    teacher = np.asarray(model(np.asarray(images_fast))["logits"])
    np.testing.assert_allclose(logits_fast, teacher, atol=1e-5)


def count_calls(model, monkeypatch):
    counts = {"outer": 0, "inner": 0}
    for name, key in (("upper_context", "outer"), ("row_decoder", "inner")):
        method = getattr(model, name)

        def counted(*args, _method=method, _key=key, **kwargs):
            counts[_key] += 1
            return _method(*args, **kwargs)

        monkeypatch.setattr(model, name, counted)
    return counts


@pytest.mark.parametrize("fast", [True, False])
def test_call_counts(fast, monkeypatch):
    h, w = 2, 3
    model = make_model(h, w)
    counts = count_calls(model, monkeypatch)
    model.sample(noise_for(model, 1, seed=3), fast=fast)  # eager loops
    outer = h if fast else h * w
    assert counts == {"outer": outer, "inner": h * w}


def test_detects_stale_upper_context(monkeypatch):
    model = make_model(2, 3)
    noise = noise_for(model, 2, seed=4)
    reference = np.asarray(model.sample(noise, fast=False))
    cache = {}
    original = model.upper_context

    def stale(h, cond=None, training=None):
        if "u" not in cache:
            cache["u"] = original(h, cond, training)
        return cache["u"]

    monkeypatch.setattr(model, "upper_context", stale)
    broken = np.asarray(model.sample(noise, fast=True))
    assert not np.array_equal(broken, reference)


def test_generate_draws_valid_images():
    model = make_model(2, 2)
    images = np.asarray(model.generate(3, seed=5, temperature=0.9))
    assert images.shape == (3, 2, 2, 1) and images.dtype == np.int32
    assert images.min() >= 0 and images.max() < model.num_values


@pytest.mark.large
def test_fast_sampling_is_faster_under_xla():
    """8x8 tiny preset, batch 4, XLA: equal samples; fast beats slow."""
    model = garden.build("axial_transformer", preset="tiny")
    model.build()
    noise = noise_for(model, 4, seed=7)
    timings, images = {}, {}
    for fast in (True, False):
        fn = tf.function(lambda n, f=fast: model.sample(n, f),
                         jit_compile=True)
        fn(noise)  # compile
        start = time.perf_counter()
        for _ in range(3):
            images[fast] = np.asarray(fn(noise))
        timings[fast] = (time.perf_counter() - start) / 3
    np.testing.assert_array_equal(images[True], images[False])
    assert timings[True] < timings[False], timings
