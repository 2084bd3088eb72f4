"""Procedural multi-channel "cells" images (NumPy generator + source).

The offline proxy of ChA-MAEViT (shared/papers/cha_mae_vit.md, "Offline
proxy"): 4 channels that are correlated but distinct, like cell-painting
microscopy.

- ch0 "nucleus": 1-3 Gaussian blobs.
- ch1 "membrane": a ring around each nucleus, *derived from ch0's blobs*
  (centre and radius), so ch1 is predictable from ch0 (cross-channel
  dependency) but not equal to it.
- ch2 "protein": its localisation is the class:
  0 nuclear (on the nuclei), 1 cytoplasmic (between nucleus and membrane),
  2 membrane (on the rings), 3 punctate (a few small dots inside the cells),
  4 diffuse (a dim, nearly uniform level over the whole image).
- ch3 "texture": smooth random waves, independent of everything else.

Every channel gets a random gain in [0.7, 1] and Gaussian noise (std 0.03),
then is clipped to [0, 1]. Labels are balanced.
"""

import numpy as np
import tensorflow as tf

from data_pipelines import pipeline

CLASS_NAMES = ("nuclear", "cytoplasmic", "membrane", "punctate", "diffuse")
CHANNEL_NAMES = ("nucleus", "membrane", "protein", "texture")
DEFAULT_NUM_SAMPLES = {"train": 2000, "test": 500}
MAX_BLOBS = 3
NUM_DOTS = 4
DOT_STD = 0.025  # punctate dot std, as a fraction of the image size
NOISE_STD = 0.03
RING_RADIUS = 2.2  # membrane radius, in units of the nucleus sigma
RING_WIDTH = 0.35  # membrane std, in units of the nucleus sigma


def _channel_ids(channels):
    """`channels` as a tuple of channel indices."""
    if isinstance(channels, (int, np.integer)):
        if not 1 <= channels <= len(CHANNEL_NAMES):
            raise ValueError(
                f"channels must be in 1..{len(CHANNEL_NAMES)} or a sequence "
                f"of channel ids, got {channels}."
            )
        return tuple(range(int(channels)))
    ids = tuple(int(c) for c in channels)
    if not ids or any(not 0 <= c < len(CHANNEL_NAMES) for c in ids):
        raise ValueError(
            f"channel ids must be in 0..{len(CHANNEL_NAMES) - 1}, got "
            f"{channels}."
        )
    return ids


def _cells(rng, n, size):
    """Blob geometry: centres (n, B, 2), sigma (n, B), active mask (n, B)."""
    num_blobs = rng.integers(1, MAX_BLOBS + 1, n)
    active = np.arange(MAX_BLOBS)[None, :] < num_blobs[:, None]
    centres = rng.uniform(0.2 * size, 0.8 * size, (n, MAX_BLOBS, 2))
    sigma = rng.uniform(0.05 * size, 0.08 * size, (n, MAX_BLOBS))
    return centres, sigma, active


def generate(num_samples, seed, image_size=32, channels=4):
    """Generates labelled multi-channel images with NumPy.

    Args:
        num_samples: int. Labels are balanced, in random order.
        seed: int. The only source of randomness.
        image_size: int. Height and width.
        channels: int C (the first C channels of `CHANNEL_NAMES`) or a
            sequence of channel ids, e.g. (0, 2) for a "nucleus + protein"
            source with missing channels.

    Returns:
        images: float32 (num_samples, image_size, image_size, C) in [0, 1].
        labels: int32 (num_samples,) in 0..4.
    """
    ids = _channel_ids(channels)
    n, size = int(num_samples), int(image_size)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    centres, sigma, active = _cells(rng, n, size)
    # Distances in units of each blob's sigma, float32 for speed; inactive
    # blobs sit far outside the image, so every map below is 0 there.
    far = np.where(active[..., None], centres, -1e4).astype(np.float32)
    grid = np.arange(size, dtype=np.float32) + 0.5
    dy = grid[None, None, :, None] - far[:, :, 0, None, None]
    dx = grid[None, None, None, :] - far[:, :, 1, None, None]
    z = np.sqrt(dx**2 + dy**2) / sigma[:, :, None, None].astype(np.float32)
    blob = np.exp(-0.5 * z**2)  # (n, B, S, S)
    ring = np.exp(-0.5 * ((z - RING_RADIUS) / RING_WIDTH) ** 2)
    inside = 0.5 - 0.5 * np.tanh((z - RING_RADIUS) / 0.4)  # soft cell body
    nucleus = blob.max(axis=1)
    membrane = ring.max(axis=1)

    # Every candidate localisation for every image, then one per label.
    candidates = [
        (blob ** (1 / 0.8**2)).max(axis=1),  # nuclear: sigma * 0.8
        (inside * (1.0 - blob)).max(axis=1),  # cytoplasmic
        (ring ** (1 / 0.6**2)).max(axis=1),  # membrane: width * 0.6
        _punctate(rng, centres, sigma, active, grid),
        np.full((n, size, size), 0.35, np.float32),  # diffuse
    ]
    protein = np.stack(candidates)[labels, np.arange(n)]

    texture = _texture(rng, n, size, grid)
    # Gains and noise are drawn for all channels before selecting `ids`, so
    # a channel subset shows exactly the same images with channels missing.
    stack = np.stack([nucleus, membrane, protein, texture], axis=-1)
    gain = rng.uniform(0.7, 1.0, (n, 1, 1, stack.shape[-1]))
    noise = rng.standard_normal(stack.shape, dtype=np.float32) * NOISE_STD
    stack = stack * gain.astype(np.float32) + noise
    images = np.clip(stack[..., list(ids)], 0.0, 1.0)
    return images.astype(np.float32), labels.astype(np.int32)


def _punctate(rng, centres, sigma, active, grid):
    """NUM_DOTS small dots per image, each inside a random active cell."""
    n = centres.shape[0]
    which = np.floor(rng.random((n, NUM_DOTS)) * active.sum(1)[:, None])
    which = which.astype(int)  # index among active blobs (they come first)
    c = np.take_along_axis(centres, which[..., None], axis=1)  # (n, D, 2)
    r = (
        np.take_along_axis(sigma, which, axis=1)
        * 1.8
        * np.sqrt(rng.random((n, NUM_DOTS)))
    )
    phi = rng.uniform(0, 2 * np.pi, (n, NUM_DOTS))
    py = (c[..., 0] + r * np.sin(phi)).astype(np.float32)
    px = (c[..., 1] + r * np.cos(phi)).astype(np.float32)
    d2 = (grid[None, None, :, None] - py[..., None, None]) ** 2 + (
        grid[None, None, None, :] - px[..., None, None]
    ) ** 2
    dot_std = DOT_STD * grid.size
    return np.exp(-d2 / (2 * dot_std**2)).max(axis=1)


def _texture(rng, n, size, grid, waves=3):
    """Sum of a few random low-frequency plane waves, scaled to [0.1, 0.6]."""
    shape = (n, waves, 1, 1)
    freq = (rng.uniform(0.5, 3.0, shape) / size).astype(np.float32)
    angle = rng.uniform(0, np.pi, shape).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, shape).astype(np.float32)
    y, x = grid[None, None, :, None], grid[None, None, None, :]
    arg = 2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + phase
    return 0.35 + 0.25 * np.sin(arg).mean(axis=1)


def source(split="train", seed=0, num_samples=None, image_size=32, channels=4):
    """`tf.data` source of `generate`; each split has its own derived seed.

    Yields {"images": float32 (S, S, C), "labels": int32}. `num_samples`
    defaults to 2000 for "train" and 500 for other splits.
    """
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES.get(
            split, DEFAULT_NUM_SAMPLES["test"]
        )
    images, labels = generate(
        num_samples, pipeline.split_seed(seed, split), image_size, channels
    )
    ds = tf.data.Dataset.from_tensor_slices(
        {"images": images, "labels": labels}
    )
    return pipeline.Source(ds, num_samples)
