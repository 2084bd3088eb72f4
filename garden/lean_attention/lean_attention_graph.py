"""Graph-compiled (shape-polymorphic) forward functions for decoding.

Eagerly, one decode step of the decoder is a few hundred small TensorFlow
ops dispatched from Python (measured: ~0.6 s / step for the `bench` preset on
2 busy cores, ~40 ms as a graph), so the decode loop runs its steps as a
`tf.function` whose cache length is a `None` dimension: one trace serves
every context length (XLA is not used: it would recompile for every new
cache length).

Style note: raw TensorFlow belongs in `official/`; Keras 3 has no
backend-neutral way to compile a shape-polymorphic function, so this small
module is the one place in the paper folder that imports TensorFlow, kept
apart so it can move to `official/ops` unchanged.
"""

import weakref

import tensorflow as tf

# model -> {name: tf.function}. Kept outside the model: a tf.function
# attribute would be picked up (and traced with float inputs) by SavedModel.
_COMPILED = weakref.WeakKeyDictionary()


def _cache_spec(model):
    head = tf.TensorSpec((None, None, model.num_heads, model.head_dim),
                         tf.as_dtype(model.compute_dtype))
    return [(head, head) for _ in range(model.num_layers)]


def compiled_forward_with_cache(model):
    """`model.forward_with_cache` as one graph for any (B, T, S_past)."""
    fns = _COMPILED.setdefault(model, {})
    if "cached" not in fns:
        fns["cached"] = tf.function(
            lambda ids, cache: model.forward_with_cache(ids, cache),
            input_signature=[tf.TensorSpec((None, None), tf.int32),
                             _cache_spec(model)],
            autograph=False)
    return fns["cached"]


def compiled_forward(model):
    """The full causal forward `model(ids)` as one graph for any (B, T)."""
    fns = _COMPILED.setdefault(model, {})
    if "full" not in fns:
        fns["full"] = tf.function(
            lambda ids: model(ids, training=False),
            input_signature=[tf.TensorSpec((None, None), tf.int32)],
            autograph=False)
    return fns["full"]
