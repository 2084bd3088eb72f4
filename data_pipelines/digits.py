"""scikit-learn's bundled 8x8 digits as images: a NumPy loader + source.

`sklearn.datasets.load_digits` ships 1797 8x8 images (pixel values 0..16) of
10 classes inside the wheel, so nothing downloads. `load` scales them to
[0, 1] as float32 (N, H, W, C), optionally resized (bilinear, half-pixel
centres: the same values as `tf.image.resize(..., "bilinear")`) and
replicated to 3 channels, and splits train/test per class (stratified) with a
seeded permutation.
"""

import functools

import numpy as np
import tensorflow as tf

from data_pipelines import pipeline

NUM_CLASSES = 10
SPLITS = ("train", "test")


@functools.lru_cache(maxsize=1)
def _raw():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    return images, bunch.target.astype(np.int32)


def _bilinear_matrix(in_size, out_size):
    """(out, in) interpolation weights, half-pixel centres, edge clamped."""
    centres = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    centres = np.clip(centres, 0.0, in_size - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    frac = centres - low
    weights = np.zeros((out_size, in_size))
    np.add.at(weights, (np.arange(out_size), low), 1.0 - frac)
    np.add.at(weights, (np.arange(out_size), high), frac)
    return weights


def resize_bilinear(images, size):
    """Bilinear resize of (N, H, W) float images to (N, size, size).

    Matches `tf.image.resize(images, (size, size), "bilinear")` (no
    antialias), computed as two small matrix products.
    """
    n, h, w = images.shape
    wy = _bilinear_matrix(h, size)
    wx = _bilinear_matrix(w, size)
    out = np.einsum("yh,nhw,xw->nyx", wy, images, wx)
    return out.astype(np.float32)


def split_indices(labels, split, seed, test_fraction=0.2):
    """Indices of `split`: per class, a seeded permutation; the first
    round(test_fraction * class count) go to "test", the rest to "train".

    Returns the indices sorted, so the split's order does not depend on the
    seed beyond its membership (shuffling is the pipeline's job).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must be in (0, 1), got {test_fraction}."
        )
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * members.size))
        chosen.append(members[:n_test] if split == "test" else members[n_test:])
    return np.sort(np.concatenate(chosen))


def load(split="train", seed=0, image_size=8, channels=1, test_fraction=0.2):
    """Digits as arrays.

    Args:
        split: "train" or "test".
        seed: int. Decides which images are in which split.
        image_size: int. Side length; 8 keeps the original pixels.
        channels: 1 or 3 (the grey image replicated).
        test_fraction: float. Fraction of each class held out for "test".

    Returns:
        images: float32 (N, image_size, image_size, channels) in [0, 1].
        labels: int32 (N,) in 0..9.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    images, labels = _raw()
    idx = split_indices(labels, split, seed, test_fraction)
    images, labels = images[idx], labels[idx]
    if int(image_size) != images.shape[1]:
        images = np.clip(resize_bilinear(images, int(image_size)), 0.0, 1.0)
    images = np.repeat(images[..., None], channels, axis=-1)
    return images, labels


def source(split="train", seed=0, image_size=8, channels=1, test_fraction=0.2):
    """Yields {"images": float32 (S, S, C) in [0, 1], "labels": int32}."""
    images, labels = load(split, seed, image_size, channels, test_fraction)
    ds = tf.data.Dataset.from_tensor_slices(
        {"images": images, "labels": labels}
    )
    return pipeline.Source(ds, len(labels))
