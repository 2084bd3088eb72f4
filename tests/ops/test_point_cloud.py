"""official.ops.point_cloud against NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from official.ops import point_cloud as pc


def np_fps(points, num_samples, skip_near_origin=True):
    """Reference: pointnet2_ops `sampling_gpu.cu` on one cloud, in float64."""
    n = len(points)
    temp = np.full(n, 1e10)
    eligible = (points ** 2).sum(-1) > 1e-3 if skip_near_origin else \
        np.ones(n, bool)
    idx = [0]
    for _ in range(1, num_samples):
        d = ((points - points[idx[-1]]) ** 2).sum(-1)
        temp = np.minimum(temp, d)
        score = np.where(eligible, temp, -1.0)
        idx.append(int(np.argmax(score)))  # first maximum = strict '>'
    return np.array(idx)


def np_chamfer(a, b):
    """Brute force: (mean_i min_j |a_i-b_j|^2, mean_j min_i |b_j-a_i|^2)."""
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return d.min(1), d.min(0)


def clouds(batch, n, seed):
    rng = np.random.RandomState(seed)
    pts = rng.standard_normal((batch, n, 3))
    pts /= np.linalg.norm(pts, axis=-1).max(1)[:, None, None]
    return pts.astype("float32")


def test_fps_matches_numpy_reference_and_starts_at_zero():
    pts = clouds(3, 200, 0)
    got = pc.farthest_point_sample(pts, 32).numpy()
    assert got.shape == (3, 32) and got.dtype == np.int32
    assert np.all(got[:, 0] == 0)
    for b in range(3):
        np.testing.assert_array_equal(got[b], np_fps(pts[b].astype(
            np.float64), 32))
        assert len(set(got[b])) == 32  # no point chosen twice


def test_fps_picks_the_farthest_point_at_every_step():
    pts = clouds(2, 150, 1)
    idx = pc.farthest_point_sample(pts, 20, skip_near_origin=False).numpy()
    for b in range(2):
        p = pts[b].astype(np.float64)
        for j in range(1, 20):
            chosen = p[idx[b, :j]]
            dist = ((p[:, None] - chosen[None]) ** 2).sum(-1).min(1)
            assert np.isclose(dist[idx[b, j]], dist.max(), rtol=1e-5), (b, j)


def test_fps_is_deterministic_and_vectorised_over_the_batch():
    pts = clouds(4, 100, 2)
    a = pc.farthest_point_sample(pts, 10).numpy()
    b = pc.farthest_point_sample(pts, 10).numpy()
    np.testing.assert_array_equal(a, b)
    single = pc.farthest_point_sample(pts[2:3], 10).numpy()
    np.testing.assert_array_equal(single[0], a[2])


def test_fps_near_origin_quirk_of_the_cuda_kernel():
    # After (1,0,0) and (-1,0,0), the point at the origin is the farthest
    # (distance 1), but the kernel skips |p|^2 <= 1e-3; (0.5,0,0) is next.
    pts = np.array([[[1, 0, 0], [-1, 0, 0], [0, 0, 0.001], [0.5, 0, 0]]],
                   "float32")
    with_quirk = pc.farthest_point_sample(pts, 3).numpy()[0]
    textbook = pc.farthest_point_sample(
        pts, 3, skip_near_origin=False).numpy()[0]
    np.testing.assert_array_equal(with_quirk, [0, 1, 3])
    np.testing.assert_array_equal(textbook, [0, 1, 2])


def test_fps_rejects_too_many_samples():
    with pytest.raises(ValueError, match="cannot draw"):
        pc.farthest_point_sample(clouds(1, 8, 0), 9)


def test_knn_matches_numpy_and_is_sorted():
    pts = clouds(2, 120, 3)
    query = pts[:, :10]
    got = pc.knn_indices(query, pts, 7).numpy()
    d = ((query[:, :, None] - pts[:, None]) ** 2).sum(-1)
    want = np.argsort(d, axis=-1, kind="stable")[..., :7]
    np.testing.assert_array_equal(got, want)
    # A query point that is an input point is its own nearest neighbour.
    np.testing.assert_array_equal(got[:, :, 0], np.arange(10)[None].repeat(
        2, 0))


def test_group_points_are_centre_normalised_knn_patches():
    pts = clouds(2, 128, 4)
    neighborhood, centers = pc.group_points(pts, 8, 16)
    neighborhood, centers = neighborhood.numpy(), centers.numpy()
    assert neighborhood.shape == (2, 8, 16, 3) and centers.shape == (2, 8, 3)
    for b in range(2):
        idx = np_fps(pts[b].astype(np.float64), 8)
        np.testing.assert_array_equal(centers[b], pts[b][idx])
        for g in range(8):
            d = ((pts[b] - centers[b, g]) ** 2).sum(-1)
            nn = np.argsort(d, kind="stable")[:16]
            np.testing.assert_allclose(
                neighborhood[b, g], pts[b][nn] - centers[b, g], atol=1e-7)
    # The centre is in its own patch, at the origin of the patch frame.
    np.testing.assert_allclose(neighborhood[:, :, 0], 0.0, atol=1e-7)


def test_chamfer_l2_and_l1_equal_brute_force_numpy():
    rng = np.random.RandomState(5)
    a = rng.standard_normal((4, 3, 11, 3)).astype("float32")
    b = rng.standard_normal((4, 3, 13, 3)).astype("float32")
    d_ab = np.zeros((4, 3, 11))
    d_ba = np.zeros((4, 3, 13))
    for i in range(4):
        for j in range(3):
            d_ab[i, j], d_ba[i, j] = np_chamfer(
                a[i, j].astype(np.float64), b[i, j].astype(np.float64))
    l2 = d_ab.mean() + d_ba.mean()
    l1 = 0.5 * (np.sqrt(d_ab).mean() + np.sqrt(d_ba).mean())
    np.testing.assert_allclose(pc.chamfer_l2(a, b).numpy(), l2, rtol=1e-5)
    np.testing.assert_allclose(pc.chamfer_l1(a, b).numpy(), l1, rtol=1e-5)
    per = pc.chamfer_l2(a, b, reduction="none").numpy()
    np.testing.assert_allclose(per, d_ab.mean(-1) + d_ba.mean(-1),
                               rtol=1e-5)
    np.testing.assert_allclose(per.mean(), l2, rtol=1e-5)
    # Symmetric, zero on identical sets, invariant to point order.
    np.testing.assert_allclose(pc.chamfer_l2(b, a).numpy(), l2, rtol=1e-5)
    assert pc.chamfer_l2(a, a).numpy() == 0.0
    np.testing.assert_allclose(
        pc.chamfer_l2(a[..., ::-1, :], b).numpy(), l2, rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        pc.chamfer_l2(a, b, reduction="sum")


def test_chamfer_l1_gradient_is_finite_at_exact_matches():
    a = tf.Variable(np.zeros((1, 4, 3), "float32"))
    b = tf.constant(np.zeros((1, 4, 3), "float32"))
    with tf.GradientTape() as tape:
        loss = pc.chamfer_l1(a, b)
    grad = tape.gradient(loss, a).numpy()
    assert np.all(np.isfinite(grad))


def test_group_points_under_xla_matches_eager():
    pts = clouds(2, 96, 6)
    eager = pc.group_points(pts, 8, 8)
    compiled = tf.function(lambda p: pc.group_points(p, 8, 8),
                           jit_compile=True)(pts)
    for e, c in zip(eager, compiled):
        np.testing.assert_allclose(e.numpy(), c.numpy(), atol=1e-6)


def test_group_points_converts_to_litert_with_builtin_ops():
    from ai_edge_litert.interpreter import Interpreter

    @tf.function(input_signature=[tf.TensorSpec([2, 64, 3], tf.float32)])
    def group(points):
        neighborhood, centers = pc.group_points(points, 8, 8)
        return neighborhood, centers

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [group.get_concrete_function()], group)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    pts = clouds(2, 64, 7)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pts)
    interpreter.invoke()
    got = sorted((interpreter.get_tensor(d["index"])
                  for d in interpreter.get_output_details()),
                 key=lambda t: t.ndim)
    want = [t.numpy() for t in group(pts)][::-1]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-6)
