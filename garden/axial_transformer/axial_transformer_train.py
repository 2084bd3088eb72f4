"""The digits proxy: bits/dim of an Axial Transformer on 8x8 sklearn digits.

The paper reports negative log-likelihood in bits/dim on ImageNet 32x32 /
64x64 (§4.2). Offline we model `data_pipelines.digits` (1797 8x8 images,
17 grey levels 0..16, stratified 80/20 split) as 1-channel images with
K = 17 values and compare the held-out bits/dim with two models that see no
other pixel:

* `no_context_bits_per_dim`: one histogram per pixel position (add-one
  smoothing) fitted on the training split, the best model that knows where a
  pixel is but nothing about the others;
* `unigram_bits_per_dim`: one histogram for all positions.

An autoregressive model only beats the per-position histogram by using its
context (the pixels before in raster order).
"""

import math
import time

import keras
import numpy as np

import official.registry
from data_pipelines import digits

NUM_LEVELS = 17  # sklearn digits: integer pixel values 0..16


def digit_levels(split, seed=0):
    """int32 (N, 8, 8, 1) images with values 0..16 (the original levels)."""
    images, _ = digits.load(split, seed=seed)
    return np.rint(images * (NUM_LEVELS - 1)).astype("int32")


def _histogram_bits(train, test, num_values, per_position, smoothing=1.0):
    train = train.reshape(len(train), -1)
    test = test.reshape(len(test), -1)
    positions = train.shape[1] if per_position else 1
    counts = np.full((positions, num_values), smoothing)
    for p in range(positions):
        column = train[:, p] if per_position else train.reshape(-1)
        counts[p] += np.bincount(column, minlength=num_values)
    log_probs = np.log2(counts / counts.sum(1, keepdims=True))
    index = np.arange(test.shape[1]) if per_position else 0
    return float(-np.mean(log_probs[index, test]))


def no_context_bits_per_dim(train, test, num_values=NUM_LEVELS):
    """Held-out bits/dim of per-position histograms (add-one smoothing)."""
    return _histogram_bits(train, test, num_values, per_position=True)


def unigram_bits_per_dim(train, test, num_values=NUM_LEVELS):
    """Held-out bits/dim of one histogram shared by all positions."""
    return _histogram_bits(train, test, num_values, per_position=False)


def evaluate_bits_per_dim(model, images, batch_size=512, per_position=False):
    """Float64 bits/dim of `images` under `model` (teacher forcing).

    With `per_position`, returns the (H, W, C) mean over images instead.
    """
    nll = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        logits = np.asarray(model(x, training=False)["logits"], np.float64)
        peak = logits.max(-1, keepdims=True)
        log_z = peak[..., 0] + np.log(np.exp(logits - peak).sum(-1))
        picked = np.take_along_axis(logits, x[..., None], -1)[..., 0]
        nll.append((log_z - picked) / math.log(2.0))
    nll = np.concatenate(nll)
    return nll.mean(0) if per_position else float(nll.mean())


class _RandomBatches(keras.utils.PyDataset):
    """`steps` batches drawn with replacement, seeded (fixed batch shape, so
    the XLA train step compiles once)."""

    def __init__(self, images, batch_size, steps, seed):
        super().__init__()
        self.images = images
        self.batch_size = batch_size
        self.steps = steps
        self.rng = np.random.RandomState(seed)

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        idx = self.rng.randint(0, len(self.images), self.batch_size)
        return ({"images": self.images[idx]},)


def train(model, images, steps, batch_size=32, seed=0, learning_rate=1e-3,
          jit_compile=True):
    """Adam on the model's own loss (bits/dim); returns seconds taken."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  jit_compile=jit_compile)
    start = time.perf_counter()
    if steps > 0:
        model.fit(_RandomBatches(images, batch_size, steps, seed), epochs=1,
                  verbose=0)
    return time.perf_counter() - start


def digits_proxy(steps=300, batch_size=32, seed=0, learning_rate=1e-3,
                 preset="tiny", **overrides):
    """Trains `axial_transformer` on the digits train split; held-out
    bits/dim vs the no-context baselines.

    Returns a dict: `test_bits_per_dim`, `no_context_bits_per_dim`,
    `unigram_bits_per_dim`, `train_seconds`, `steps`, `model`.
    """
    keras.utils.set_random_seed(seed)
    train_images = digit_levels("train")
    test_images = digit_levels("test")
    model = official.registry.build("axial_transformer", preset, **overrides)
    seconds = train(model, train_images, steps, batch_size, seed,
                    learning_rate)
    return {
        "test_bits_per_dim": evaluate_bits_per_dim(model, test_images),
        "no_context_bits_per_dim": no_context_bits_per_dim(
            train_images, test_images),
        "unigram_bits_per_dim": unigram_bits_per_dim(
            train_images, test_images),
        "train_seconds": seconds,
        "steps": steps,
        "model": model,
    }
