"""The shared model harness: what every registered garden model must pass.

`tests/test_all_models.py` runs these checks for every name in the registry,
so a new paper gets them the moment it registers a model.
"""

import json

import keras
import numpy as np
import tensorflow as tf

import garden


def to_numpy_tree(outputs):
    if isinstance(outputs, dict):
        return {k: to_numpy_tree(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return [to_numpy_tree(v) for v in outputs]
    return keras.ops.convert_to_numpy(outputs)


def flat_items(tree, prefix=""):
    if isinstance(tree, dict):
        for k in sorted(tree):
            yield from flat_items(tree[k], f"{prefix}{k}/")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from flat_items(v, f"{prefix}{i}/")
    else:
        yield prefix.rstrip("/") or "output", tree


def assert_trees_close(a, b, atol, what):
    items_a = dict(flat_items(a))
    items_b = dict(flat_items(b))
    assert sorted(items_a) == sorted(items_b), (what, items_a.keys(),
                                                items_b.keys())
    for key in items_a:
        x, y = np.asarray(items_a[key]), np.asarray(items_b[key])
        assert x.shape == y.shape, (what, key, x.shape, y.shape)
        diff = float(np.max(np.abs(x.astype(np.float64) - y.astype(
            np.float64)))) if x.size else 0.0
        assert diff <= atol, f"{what}: output '{key}' differs by {diff}"


def build_tiny(name, batch_size=2, seed=0):
    keras.utils.set_random_seed(seed)
    model = garden.build(name, preset="tiny")
    x = garden.example_inputs(name, preset="tiny", batch_size=batch_size,
                              seed=seed)
    y = garden.example_labels(name, preset="tiny", batch_size=batch_size,
                              seed=seed)
    return model, x, y


def trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def symbolic_build(model, x):
    """Builds a model's weights without running its FLOPs."""
    def spec(a):
        a = np.asarray(a)
        return keras.KerasTensor(a.shape, dtype=str(a.dtype))

    if isinstance(x, dict):
        sym = {k: spec(v) for k, v in x.items()}
    else:
        sym = spec(x)
    model(sym, training=False)
    return model


def gradients(model, x, y):
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    return loss, grads


def config_json(model):
    return json.dumps(model.get_config(), sort_keys=True, default=str)
