"""Shared pieces of the training tests: a tiny GardenModel and seeded data.

Imported by the test files and by the helper scripts that run in
subprocesses (logical devices, TF_CONFIG and SIGKILL need their own process).
"""

import os
import sys

import keras
import numpy as np
import tensorflow as tf

from official.models.garden_model import GardenModel
from official.registry import register_layer

REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
HERE = os.path.dirname(os.path.abspath(__file__))
FEATURES, TARGETS = 8, 4


@register_layer(name="TrainingTestRegressor")
class TinyRegressor(GardenModel):
    """Two Dense layers, mean squared error; no dropout (deterministic)."""

    input_names = ("features",)

    def __init__(self, hidden=16, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.dense_1 = keras.layers.Dense(
            hidden,
            activation="tanh",
            kernel_initializer=keras.initializers.GlorotUniform(1),
        )
        self.dense_2 = keras.layers.Dense(
            TARGETS, kernel_initializer=keras.initializers.GlorotUniform(2)
        )

    def call(self, inputs, training=False):
        x = self.unpack_inputs(inputs)["features"]
        return self.dense_2(self.dense_1(x))

    def task_loss(self, x, y, y_pred, sample_weight=None):
        return keras.ops.mean(
            keras.ops.square(y_pred - keras.ops.cast(y, y_pred.dtype))
        )

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


def arrays(n=80, seed=0):
    rng = np.random.RandomState(seed)
    w = rng.normal(size=(FEATURES, TARGETS)).astype("float32")
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    y = (np.tanh(x @ w) + 0.1 * rng.normal(size=(n, TARGETS))).astype("float32")
    return x, y


def dataset(n=80, batch=8, shuffle_seed=0, data_seed=0):
    """Global batches of {"features", "labels"}; seeded, reshuffled per pass."""
    x, y = arrays(n, data_seed)
    ds = tf.data.Dataset.from_tensor_slices({"features": x, "labels": y})
    if shuffle_seed is not None:
        # A tf.data op seed combines with the global seed, which earlier tests
        # in the same process may have set: fix it so the order does not
        # depend on what ran before (worker processes start fresh).
        tf.random.set_seed(0)
        ds = ds.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch, drop_remainder=True)


def epoch_dataset_fn(n=80, batch=8):
    """`fn(epoch)`: each epoch shuffled with its own seed."""

    def fn(epoch):
        return dataset(n, batch, shuffle_seed=1000 + epoch)

    return fn


def weights(model):
    return [np.array(w) for w in model.get_weights()]


def max_diff(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


def sgd_config(learning_rate=0.1, **kwargs):
    return dict(
        name="sgd", learning_rate=learning_rate, weight_decay=None, **kwargs
    )


def adamw_config(**kwargs):
    base = dict(
        name="adamw",
        learning_rate=1e-2,
        weight_decay=0.05,
        warmup_steps=3,
        total_steps=12,
    )
    base.update(kwargs)
    return base


def script_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The equivalence checks are about CPU replicas; keep any GPU (and its
    # TF32 matmuls) out of the helper processes.
    env["CUDA_VISIBLE_DEVICES"] = "-1"
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


def script(name):
    return [sys.executable, os.path.join(HERE, name)]
