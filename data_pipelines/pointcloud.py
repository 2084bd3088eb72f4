"""Point-cloud helpers shared by the point sources: `pc_norm` and subsampling.

`pc_norm` is Point-MAE's normalisation (`datasets/ShapeNet55Dataset.py`,
`pc_norm`; Point-BERT's `pc_normalize`): subtract the centroid, divide by the
largest distance from it, so every cloud has zero mean and unit max radius.
"""

import numpy as np
import tensorflow as tf

_EPS = 1e-12


def pc_norm(points):
    """Zero mean, unit max radius, over the last two axes (..., N, 3).

    Args:
        points: array-like of shape (..., N, 3).

    Returns:
        float32 array of the same shape. A degenerate cloud (all points equal)
        maps to zeros instead of NaN.
    """
    points = np.asarray(points, dtype=np.float32)
    centred = points - points.mean(axis=-2, keepdims=True)
    radius = np.sqrt(np.sum(centred**2, axis=-1)).max(axis=-1)
    radius = np.maximum(radius, _EPS)[..., None, None]
    return (centred / radius).astype(np.float32)


def pc_norm_tf(points):
    """TensorFlow `pc_norm` for one cloud or a batch, shape (..., N, 3)."""
    points = tf.cast(points, tf.float32)
    centred = points - tf.reduce_mean(points, axis=-2, keepdims=True)
    radius = tf.reduce_max(tf.norm(centred, axis=-1), axis=-1)
    radius = tf.maximum(radius, _EPS)[..., None, None]
    return centred / radius


def subsample_tf(points, num_points, seed=None, name="points"):
    """The first `num_points` rows, or a seeded random subset of them.

    Args:
        points: float tensor (M, D) with M >= num_points.
        num_points: int.
        seed: None for the first `num_points` rows, or an int tensor of
            shape (2,) for `tf.random.stateless_uniform` (random subset
            without replacement, in random order, as Point-MAE's
            `random_sample`).
        name: used in the error message when M < num_points.

    Returns:
        (num_points, D) tensor.
    """
    available = tf.shape(points)[0]
    check = tf.debugging.assert_greater_equal(
        available,
        num_points,
        message=f"{name}: fewer points in the file than num_points="
        f"{num_points}",
    )
    with tf.control_dependencies([check]):
        if seed is None:
            return points[:num_points]
        keys = tf.random.stateless_uniform([available], seed=seed)
        idx = tf.math.top_k(keys, k=num_points, sorted=True).indices
        return tf.gather(points, idx)
