"""Point-cloud ops: farthest point sampling, kNN grouping, Chamfer distance.

Plain TensorFlow functions on batched clouds `(B, N, 3)`, written so that
they run in graph mode and under XLA, and convert with builtin ops only to
LiteRT (TFLite) and through tf2onnx to ONNX:

* FPS is a Python loop unrolled over the static number of samples (no
  `tf.while_loop`, no TensorArray) of `tf.argmax(min_dist)`, vectorised over
  the batch; `tf.argmax` and not `keras.ops.argmax`, whose float path does
  not convert (../shared/STACK.md).
* kNN is brute force: pairwise squared distances + `tf.math.top_k`.
* Chamfer distances follow the `extensions/chamfer_dist` module of
  Point-MAE (Pang et al., ECCV 2022; github.com/Pang-Yatian/Point-MAE): L2 =
  mean of squared nearest distances in both directions, summed; L1 = mean of
  the (unsquared) nearest distances in both directions, halved.
"""

import tensorflow as tf

# Sentinel of pointnet2_ops' `furthest_point_sample` wrapper: the running
# min-distance buffer starts at 1e10.
_FPS_INIT_DIST = 1e10
# sampling_gpu.cu skips points with |p|^2 <= 1e-3 (`if (mag <= 1e-3)
# continue;`): they are never chosen after the first sample.
_FPS_ORIGIN_EPS = 1e-3


def squared_distances(a, b):
    """Pairwise squared Euclidean distances.

    Computed as sum((a_i - b_j)^2) rather than |a|^2 + |b|^2 - 2ab, which
    cancels badly for close points (exactly what kNN and Chamfer look at).

    Args:
        a: (..., n, 3) float.
        b: (..., m, 3) float.

    Returns:
        (..., n, m) float.
    """
    diff = a[..., :, None, :] - b[..., None, :, :]
    return tf.reduce_sum(tf.square(diff), axis=-1)


def farthest_point_sample(points, num_samples, skip_near_origin=True):
    """Farthest point sampling, as pointnet2_ops' CUDA kernel does it.

    The first sample is point 0 (`int old = 0; idxs[0] = old;` in
    pointnet2_ops `sampling_gpu.cu`), then each step picks the point whose
    squared distance to the already chosen set is largest (ties: the lowest
    index). With `skip_near_origin` the kernel's quirk is kept: points with
    |p|^2 <= 1e-3 are never chosen after the first sample (for the centred,
    unit-radius clouds Point-MAE feeds, a ball of radius 0.032 round the
    centroid).

    Args:
        points: (B, N, 3) float.
        num_samples: int. Static number of samples G (<= N).
        skip_near_origin: bool. Keep the kernel's near-origin exclusion.

    Returns:
        (B, num_samples) int32 indices into the N points. Deterministic.
    """
    points = tf.convert_to_tensor(points)
    num_points = points.shape[1]
    if num_points is not None and num_samples > num_points:
        raise ValueError(
            f"farthest_point_sample: cannot draw {num_samples} samples from "
            f"{num_points} points."
        )
    batch = tf.shape(points)[0]
    if skip_near_origin:
        magnitude = tf.reduce_sum(tf.square(points), axis=-1)
        eligible = magnitude > _FPS_ORIGIN_EPS
    idx = tf.zeros([batch], dtype=tf.int32)
    min_dist = tf.fill(tf.shape(points)[:2], tf.constant(
        _FPS_INIT_DIST, points.dtype))
    chosen = [idx]
    # Unrolled over the static sample count: converts to builtin LiteRT ops
    # and to ONNX without Loop/TensorList support.
    for _ in range(1, num_samples):
        last = tf.gather(points, idx, batch_dims=1)  # (B, 3)
        dist = tf.reduce_sum(tf.square(points - last[:, None, :]), axis=-1)
        min_dist = tf.minimum(min_dist, dist)
        score = min_dist
        if skip_near_origin:
            score = tf.where(eligible, min_dist, -tf.ones_like(min_dist))
        idx = tf.argmax(score, axis=1, output_type=tf.int32)
        chosen.append(idx)
    return tf.stack(chosen, axis=1)


def knn_indices(query, reference, k):
    """Indices of the k nearest reference points of every query point.

    Args:
        query: (B, G, 3) float.
        reference: (B, N, 3) float.
        k: int. Static neighbour count (<= N).

    Returns:
        (B, G, k) int32, nearest first (ties: the lowest index).
    """
    dist = squared_distances(query, reference)  # (B, G, N)
    _, idx = tf.math.top_k(-dist, k=k, sorted=True)
    return idx


def group_points(points, num_groups, group_size, skip_near_origin=True):
    """Point-MAE's `Group` module: FPS centres + kNN patches (Sec. 3.1).

    Args:
        points: (B, N, 3) float.
        num_groups: int. G, the number of FPS centres.
        group_size: int. K, points per patch (the centre itself included).
        skip_near_origin: bool. See `farthest_point_sample`.

    Returns:
        neighborhood: (B, G, K, 3) patch points relative to their centre.
        centers: (B, G, 3) the FPS centres.
    """
    points = tf.convert_to_tensor(points)
    center_idx = farthest_point_sample(
        points, num_groups, skip_near_origin=skip_near_origin)
    centers = tf.gather(points, center_idx, batch_dims=1)  # (B, G, 3)
    idx = knn_indices(centers, points, group_size)  # (B, G, K)
    neighborhood = tf.gather(points, idx, batch_dims=1)  # (B, G, K, 3)
    return neighborhood - centers[:, :, None, :], centers


def chamfer_nearest(a, b):
    """Squared nearest-neighbour distances both ways between two clouds.

    Args:
        a: (..., n, 3) float.
        b: (..., m, 3) float.

    Returns:
        dist_ab: (..., n) min_j |a_i - b_j|^2.
        dist_ba: (..., m) min_i |b_j - a_i|^2.
    """
    dist = squared_distances(a, b)
    return tf.reduce_min(dist, axis=-1), tf.reduce_min(dist, axis=-2)


def _safe_sqrt(x):
    # sqrt with a zero (not infinite) gradient at 0: an exact match between
    # two points is common (e.g. a patch centre), and d sqrt/dx is inf there.
    positive = x > 0.0
    return tf.where(positive, tf.sqrt(tf.where(positive, x, tf.ones_like(x))),
                    tf.zeros_like(x))


def chamfer_l2(a, b, reduction="mean"):
    """Chamfer-L2 (`cdl2` of Point-MAE): squared distances, no square root.

    CD = mean_i min_j |a_i - b_j|^2 + mean_j min_i |b_j - a_i|^2.

    Args:
        a: (..., n, 3) float. b: (..., m, 3) float.
        reduction: "mean" (scalar: each direction averaged over all points of
            all clouds, as `ChamferDistanceL2`) or "none" (one value per
            cloud, shape `(...)`; their mean equals "mean" when all clouds
            have the same n and m).
    """
    d_ab, d_ba = chamfer_nearest(a, b)
    if reduction == "none":
        return tf.reduce_mean(d_ab, axis=-1) + tf.reduce_mean(d_ba, axis=-1)
    if reduction != "mean":
        raise ValueError(f"chamfer_l2: unknown reduction '{reduction}'.")
    return tf.reduce_mean(d_ab) + tf.reduce_mean(d_ba)


def chamfer_l1(a, b, reduction="mean"):
    """Chamfer-L1 (`cdl1` of Point-MAE): unsquared distances, halved.

    CD = (mean_i min_j |a_i - b_j| + mean_j min_i |b_j - a_i|) / 2.

    Args: as `chamfer_l2`.
    """
    d_ab, d_ba = chamfer_nearest(a, b)
    d_ab, d_ba = _safe_sqrt(d_ab), _safe_sqrt(d_ba)
    if reduction == "none":
        return 0.5 * (tf.reduce_mean(d_ab, axis=-1)
                      + tf.reduce_mean(d_ba, axis=-1))
    if reduction != "mean":
        raise ValueError(f"chamfer_l1: unknown reduction '{reduction}'.")
    return 0.5 * (tf.reduce_mean(d_ab) + tf.reduce_mean(d_ba))
