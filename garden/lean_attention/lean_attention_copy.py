"""Behavioural proxy: a tiny decoder trained on a copy task, decoded with the
cache + `split_k` and by `dense` recomputation (garden spec
`lean_attention.md` Sec. 4.4: "decoded with dense vs split_k must produce
identical greedy outputs").

Sequences are `a_1 .. a_n SEP a_1 .. a_n` with a_i uniform over
`num_symbols` tokens; the model is prompted with `a_1 .. a_n SEP` and
generates n tokens greedily. Copying needs attention to reach back n + 1
positions through the cache, so a wrong cache shows as a wrong copy.
"""

import keras
import numpy as np

from official import registry


def copy_batch(rng, batch_size, length=8, num_symbols=32):
    """(B, 2n + 1) int32: n symbols, separator (= num_symbols), the copy."""
    a = rng.integers(0, num_symbols, (batch_size, length))
    sep = np.full((batch_size, 1), num_symbols)
    return np.concatenate([a, sep, a], axis=1).astype("int32")


def copy_accuracy(generated, sequences, length):
    """Fraction of copied symbols generated correctly."""
    copied = slice(length + 1, None)
    return float(np.mean(generated[:, copied] == sequences[:, copied]))


def train_copy_model(steps=250, batch_size=64, length=8, num_symbols=32,
                     learning_rate=3e-3, seed=0, **overrides):
    """The `tiny` decoder (width 64) trained for `steps` XLA steps."""
    keras.utils.set_random_seed(seed)
    config = dict(vocab_size=64, hidden_dim=64)
    config.update(overrides)
    model = registry.build("lean_attention", preset="tiny", **config)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate,
                                                   weight_decay=0.0),
                  jit_compile=True)
    rng = np.random.default_rng(seed)
    x = copy_batch(rng, steps * batch_size, length, num_symbols)
    model.fit({"token_ids": x}, batch_size=batch_size, epochs=1, verbose=0)
    return model


def evaluate_copy(model, num_sequences=128, length=8, num_symbols=32,
                  seed=1, **generate_kwargs):
    """(accuracy, generate() output) on fresh sequences."""
    seqs = copy_batch(np.random.default_rng(seed), num_sequences, length,
                      num_symbols)
    out = model.generate(seqs[:, :length + 1], length, **generate_kwargs)
    return copy_accuracy(out["token_ids"], seqs, length), out
