"""Small models and data shared by the compression tests (fast on 2 CPUs).

* `digits_mlp()`: a functional MLP on sklearn's 8x8 digits (64 -> 64 ->
  10), trained once per session (15 epochs, ~10 s; test accuracy 0.953)
  and returned as a fresh copy.
* `TinyAttentionModel`: tokens -> official MultiHeadAttention (optionally
  grouped-query) -> official MLP -> mean pool -> logits, for head/FFN
  pruning tests.
* `TinyCausalLM`: the smallest causal LM on official MultiHeadAttention
  with a `step(token_ids, cache)` in the MHA cache convention, for KV cache
  tests.
"""

import functools

import keras
import numpy as np
from keras import ops

import data_pipelines
from official.attention import MultiHeadAttention
from official.layers import MLP


@functools.lru_cache(maxsize=None)
def digits_arrays():
    xtr, ytr = data_pipelines.digits.load("train", seed=0, image_size=8)
    xte, yte = data_pipelines.digits.load("test", seed=0, image_size=8)
    return (xtr.reshape(len(xtr), -1), ytr, xte.reshape(len(xte), -1), yte)


def _mlp():
    inputs = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu", name="fc1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, name="fc2")(h))


@functools.lru_cache(maxsize=None)
def _trained_mlp_weights():
    keras.utils.set_random_seed(0)
    xtr, ytr, _, _ = digits_arrays()
    model = _mlp()
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(xtr, ytr, batch_size=64, epochs=15, verbose=0)
    return tuple(model.get_weights())


def digits_mlp():
    """A fresh copy of the trained digits MLP (float32)."""
    model = _mlp()
    model.set_weights(list(_trained_mlp_weights()))
    return model


def accuracy(model, x, y):
    logits = ops.convert_to_numpy(model(x, training=False))
    return float(np.mean(np.argmax(logits, -1) == y))


class TinyAttentionModel(keras.Model):
    """(B, T, D) features -> MHA -> MLP -> mean over T -> logits."""

    def __init__(self, dim=16, num_heads=4, num_kv_heads=None, hidden=32,
                 num_classes=5, kernel="dense", kernel_options=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.attn = MultiHeadAttention(num_heads, dim // num_heads,
                                       num_kv_heads=num_kv_heads,
                                       kernel=kernel,
                                       kernel_options=kernel_options,
                                       name="attn")
        self.mlp = MLP(hidden, activation="gelu", name="mlp")
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.head = keras.layers.Dense(num_classes, name="head")

    def call(self, x, training=False):
        x = x + self.attn(x)
        x = x + self.mlp(self.norm(x))
        return self.head(ops.mean(x, axis=1))


def tiny_attention_model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    # One name, so that twins built with different seeds share layer paths.
    model = TinyAttentionModel(name="tiny_attention_model", **kwargs)
    x = np.random.default_rng(seed).normal(size=(4, 6, 16)).astype("float32")
    model(x)
    return model, x


class TinyCausalLM(keras.Model):
    """Embedding -> 2 x causal MHA (residual) -> logits; `step` decodes."""

    def __init__(self, vocab=32, dim=32, num_heads=4, num_layers=2,
                 max_length=64, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.embed = keras.layers.Embedding(vocab, dim)
        self.pos = keras.layers.Embedding(max_length, dim)
        self.attn = [MultiHeadAttention(num_heads, dim // num_heads,
                                        name=f"attn_{i}")
                     for i in range(num_layers)]
        self.out = keras.layers.Dense(vocab)

    def _embed(self, ids, start):
        positions = start + ops.arange(ops.shape(ids)[1])
        return self.embed(ids) + self.pos(positions)[None]

    def call(self, ids):
        x = self._embed(ids, 0)
        for attn in self.attn:
            x = x + attn(x, causal=True)
        return self.out(x)

    def empty_cache(self, batch):
        z = ops.zeros((batch, 0, self.num_heads, self.head_dim))
        return [(z, z) for _ in self.attn]

    def step(self, ids, cache):
        x = self._embed(ops.convert_to_tensor(ids), cache[0][0].shape[1])
        new = []
        for attn, layer_cache in zip(self.attn, cache):
            out, layer_cache = attn(x, causal=True, cache=layer_cache)
            x = x + out
            new.append(layer_cache)
        return self.out(x), new
