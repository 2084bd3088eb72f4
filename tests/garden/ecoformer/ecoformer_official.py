"""Shared by the parity test and `make_official_golden.py`: the values
given to every official state-dict entry (NumPy, seeded by the key, so no
weights are stored) and the configurations of the golden runs."""

import os
import zlib

import numpy as np

DATA = os.path.join(os.path.dirname(__file__), "data")
GOLDEN = os.path.join(DATA, "official_ecoformer.npz")
COMMIT = "a277f9e8c75655814d25016f61ffba290bad68cf"

# The model golden: the `tiny` preset (64x64 images, b = 8, m = 8, topk 3).
MODEL_BATCH = 2
# The KSH golden: one KernelSH fit (B, H, N, d, b, m, topk) per learning
# rate (the official 5e-4 and a larger one that changes many bits).
KSH_SHAPE = dict(batch=2, heads=2, tokens=40, head_dim=8, bits=8, anchors=6,
                 topk=5)
KSH_RATES = (5e-4, 5e-2)


def official_value(key, shape):
    """The deterministic value given to official state-dict entry `key`."""
    rng = np.random.RandomState(zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "A":
        return rng.normal(0.0, 1.0, shape)
    if leaf == "anchor":
        return rng.normal(0.0, 1.0 / np.sqrt(shape[-1]), shape)
    if leaf == "mvec":
        return rng.uniform(0.0, 0.2, shape)
    if len(shape) == 1:
        if leaf == "weight":
            return rng.uniform(0.5, 1.5, shape)
        return rng.uniform(-0.2, 0.2, shape)
    fan_in = int(np.prod(shape[1:]))
    return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)


def model_images():
    rng = np.random.default_rng(0)
    return rng.uniform(size=(MODEL_BATCH, 64, 64, 3)).astype("float32")


def ksh_inputs():
    """Normalised tokens, initial A and a second batch for the forward."""
    s = KSH_SHAPE
    rng = np.random.default_rng(1)
    # Clustered tokens: 4 centres per head plus noise.
    centres = rng.normal(size=(s["heads"], 4, s["head_dim"]))
    def batch():
        idx = rng.integers(0, 4, size=(s["batch"], s["heads"], s["tokens"]))
        x = np.take_along_axis(centres[None, :, :, :], idx[..., None], 2)
        x = x + 0.5 * rng.normal(size=x.shape)
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(
            "float32")
    a0 = rng.normal(size=(s["heads"], s["bits"], s["anchors"])).astype(
        "float32")
    return batch(), a0, batch()
