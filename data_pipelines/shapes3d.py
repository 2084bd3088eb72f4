"""Procedural 3-D shape point clouds (`shapes3d`): a NumPy generator + source.

Each cloud: `num_points` points uniform on one primitive's surface
(`shapes3d_surfaces`), random anisotropic scale U(0.7, 1.3) per axis, a random
rotation (about the up axis z by default, or uniform over SO(3)), Gaussian
jitter sigma 0.01, then `pc_norm` (zero mean, unit max radius). This is the
offline proxy data of Point-MAE (shared/papers/point_mae.md, "Offline proxy").

`generate` returns NumPy arrays (for linear probes, demos); `source` wraps them
as a `tf.data` source for `get_dataset("shapes3d", ...)`.
"""

import numpy as np
import tensorflow as tf

from data_pipelines import pipeline
from data_pipelines import pointcloud
from data_pipelines import shapes3d_surfaces

CLASS_NAMES = tuple(shapes3d_surfaces.SAMPLERS)
ROTATIONS = ("z", "so3", "none")
DEFAULT_NUM_SAMPLES = {"train": 2000, "test": 500}


def random_rotations(rng, num, mode="z"):
    """(num, 3, 3) rotation matrices.

    Args:
        rng: `np.random.Generator`.
        num: int.
        mode: "z" (uniform angle about the z axis), "so3" (uniform over SO(3),
            from normalised Gaussian quaternions, which are uniform on S^3),
            or "none" (identity).
    """
    if mode == "none":
        return np.broadcast_to(np.eye(3), (num, 3, 3)).copy()
    if mode == "z":
        a = rng.uniform(0.0, 2 * np.pi, num)
        c, s = np.cos(a), np.sin(a)
        zero, one = np.zeros(num), np.ones(num)
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
        return np.stack([np.stack(r, -1) for r in rows], -2)
    if mode == "so3":
        q = rng.standard_normal((num, 4))
        q /= np.linalg.norm(q, axis=-1, keepdims=True)
        w, x, y, z = q.T
        rows = [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
        return np.stack([np.stack(r, -1) for r in rows], -2)
    raise ValueError(f"rotation must be one of {ROTATIONS}, got {mode!r}.")


def _class_list(classes):
    if classes is None:
        return CLASS_NAMES
    classes = tuple(classes)
    unknown = [c for c in classes if c not in shapes3d_surfaces.SAMPLERS]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(
            f"classes must be distinct names from {CLASS_NAMES}, got {classes}."
        )
    return classes


def generate(
    num_samples,
    num_points,
    seed,
    rotation="z",
    classes=None,
    scale_range=(0.7, 1.3),
    jitter=0.01,
    normalize=True,
):
    """Generates labelled point clouds with NumPy, deterministic for `seed`.

    Args:
        num_samples: int. Number of clouds; labels are balanced (class counts
            differ by at most one) and in random order.
        num_points: int. Points per cloud.
        seed: int. The only source of randomness.
        rotation: "z" (default), "so3" or "none".
        classes: optional sequence of names from `CLASS_NAMES`; label i is
            `classes[i]`. Default: all of `CLASS_NAMES`.
        scale_range: (low, high) of the per-axis scale, or None for no scale.
        jitter: float. Std of the Gaussian noise added to every coordinate
            (after scale and rotation); 0 for none.
        normalize: bool. Apply `pc_norm` last.

    Returns:
        points: float32 (num_samples, num_points, 3).
        labels: int32 (num_samples,).
    """
    classes = _class_list(classes)
    if rotation is None:
        rotation = "none"
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_samples) % len(classes))
    points = np.empty((num_samples, num_points, 3), dtype=np.float64)
    for label, name in enumerate(classes):
        idx = np.flatnonzero(labels == label)
        if idx.size:
            sampler = shapes3d_surfaces.SAMPLERS[name]
            points[idx] = sampler(rng, idx.size, num_points)
    if scale_range is not None:
        low, high = scale_range
        points *= rng.uniform(low, high, (num_samples, 1, 3))
    rot = random_rotations(rng, num_samples, rotation)
    points = points @ rot.transpose(0, 2, 1)  # rotate each cloud
    if jitter:
        points += rng.normal(0.0, jitter, points.shape)
    if normalize:
        points = pointcloud.pc_norm(points)
    return points.astype(np.float32), labels.astype(np.int32)


def source(
    split="train",
    seed=0,
    num_samples=None,
    num_points=256,
    rotation="z",
    classes=None,
    scale_range=(0.7, 1.3),
    jitter=0.01,
):
    """`tf.data` source of `generate`; each split has its own derived seed.

    Yields {"points": float32 (num_points, 3), "labels": int32}.
    `num_samples` defaults to 2000 for "train" and 500 for other splits.
    """
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES.get(
            split, DEFAULT_NUM_SAMPLES["test"]
        )
    points, labels = generate(
        num_samples,
        num_points,
        pipeline.split_seed(seed, split),
        rotation=rotation,
        classes=classes,
        scale_range=scale_range,
        jitter=jitter,
    )
    ds = tf.data.Dataset.from_tensor_slices(
        {"points": points, "labels": labels}
    )
    return pipeline.Source(ds, num_samples)
