"""shapes3d: surface geometry, area weighting, labels, pc_norm, determinism.

Tolerances: canonical samplers are exact (1e-9); through `generate` (jitter
sigma=0.01, checked before pc_norm) points stay within BAND of the surface.
Area fractions use 8000 points, so their sampling error is ~0.005.
"""

import time

import numpy as np
import pytest

from data_pipelines import pc_norm
from data_pipelines import shapes3d
from data_pipelines import shapes3d_surfaces as surf

N = 2000  # points per canonical cloud: fraction errors ~ 1/sqrt(N) ~ 0.02


def _sample(name, num_clouds=4, seed=0):
    return surf.SAMPLERS[name](np.random.default_rng(seed), num_clouds, N)


def _rho(p):
    return np.hypot(p[..., 0], p[..., 1])


def test_sphere_points_have_unit_radius():
    p = _sample("sphere")
    np.testing.assert_allclose(np.linalg.norm(p, axis=-1), 1.0, atol=1e-9)


def test_cube_points_lie_on_faces_and_cover_all_six_equally():
    p = _sample("cube")
    np.testing.assert_allclose(np.abs(p).max(-1), surf.CUBE_HALF, atol=1e-9)
    axis = np.argmax(np.abs(p), -1)
    negative = np.take_along_axis(p, axis[..., None], -1)[..., 0] < 0
    face = 2 * axis + negative
    fractions = np.bincount(face.ravel(), minlength=6) / face.size
    np.testing.assert_allclose(fractions, 1 / 6, atol=0.02)
    # Uniform on a face: not concentrated at its centre or edges.
    on_top = p[p[..., 2] > 1 - 1e-9]
    assert abs(np.mean(np.abs(on_top[:, 0]) < 0.5) - 0.5) < 0.05


def test_cylinder_on_side_or_caps_area_weighted():
    r, h = surf.CYLINDER_RADIUS, surf.CYLINDER_HALF_HEIGHT
    p = _sample("cylinder")
    on_side = np.isclose(_rho(p), r, atol=1e-9) & (np.abs(p[..., 2]) <= h)
    on_cap = np.isclose(np.abs(p[..., 2]), h, atol=1e-9) & (_rho(p) <= r)
    assert np.all(on_side | on_cap)
    cap_fraction = 2 * np.pi * r**2 / (2 * np.pi * r**2 + 4 * np.pi * r * h)
    assert abs(on_cap.mean() - cap_fraction) < 0.02


def test_cone_on_lateral_or_base_area_weighted():
    r, h = surf.CONE_RADIUS, surf.CONE_HALF_HEIGHT
    p = _sample("cone")
    on_base = np.isclose(p[..., 2], -h, atol=1e-9)
    lateral_rho = r * (h - p[..., 2]) / (2 * h)
    on_side = np.isclose(_rho(p), lateral_rho, atol=1e-9)
    assert np.all(on_base | on_side)
    slant = np.hypot(r, 2 * h)
    base_fraction = r / (r + slant)  # pi r^2 / (pi r^2 + pi r slant)
    assert abs(on_base.mean() - base_fraction) < 0.02
    # Area density on the lateral surface: half the lateral points lie
    # within 1/sqrt(2) of the slant from the apex.
    t = (h - p[..., 2][on_side & ~on_base]) / (2 * h)
    assert abs(np.mean(t < 1 / np.sqrt(2)) - 0.5) < 0.03


def test_torus_surface_equation_hole_and_area_weighting():
    big, small = surf.TORUS_MAJOR, surf.TORUS_MINOR
    p = _sample("torus")
    tube = (_rho(p) - big) ** 2 + p[..., 2] ** 2
    np.testing.assert_allclose(tube, small**2, atol=1e-9)
    assert _rho(p).min() >= big - small - 1e-9  # the hole
    # Outer half (cos(theta) > 0) has more area: 1/2 + r / (pi R).
    outer = np.mean(_rho(p) > big)
    assert abs(outer - (0.5 + small / (np.pi * big))) < 0.02


def test_capsule_and_pyramid_surfaces():
    r, a = surf.CAPSULE_RADIUS, surf.CAPSULE_HALF_LENGTH
    p = _sample("capsule")
    z_clamped = np.clip(p[..., 2], -a, a)
    axis_dist = np.sqrt(_rho(p) ** 2 + (p[..., 2] - z_clamped) ** 2)
    np.testing.assert_allclose(axis_dist, r, atol=1e-9)
    b, h = surf.PYRAMID_HALF_BASE, surf.PYRAMID_HALF_HEIGHT
    q = _sample("pyramid")
    on_base = np.isclose(q[..., 2], -h, atol=1e-9)
    # Side faces: max(|x|, |y|) = b * (h - z) / (2h).
    cheb = np.maximum(np.abs(q[..., 0]), np.abs(q[..., 1]))
    on_side = np.isclose(cheb, b * (h - q[..., 2]) / (2 * h), atol=1e-9)
    assert np.all(on_base | on_side)
    base_fraction = 4 * b * b / (4 * b * b + 4 * b * np.hypot(b, 2 * h))
    assert abs(on_base.mean() - base_fraction) < 0.02


def test_generate_shapes_dtypes_balanced_labels_and_pc_norm():
    points, labels = shapes3d.generate(703, 64, seed=1)
    assert points.shape == (703, 64, 3) and points.dtype == np.float32
    assert labels.shape == (703,) and labels.dtype == np.int32
    counts = np.bincount(labels, minlength=len(shapes3d.CLASS_NAMES))
    assert counts.max() - counts.min() <= 1
    assert len(counts) == 7
    # Balanced, but not sorted by class.
    assert not np.all(np.diff(labels) >= 0)
    np.testing.assert_allclose(points.mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(points, axis=-1).max(axis=1), 1.0, atol=1e-6
    )


def test_pc_norm_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 100, 3)) * [1.0, 3.0, 0.5] + [4.0, -2.0, 7.0]
    y = pc_norm(x)
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1).max(1), 1.0, 1e-6)
    # Shape-preserving: a similarity transform of x normalises to the same.
    np.testing.assert_allclose(pc_norm(3.0 * x + 5.0), y, atol=1e-5)
    assert np.all(np.isfinite(pc_norm(np.ones((10, 3)))))


def _by_class(name, **kwargs):
    """Clouds of one class, *without* pc_norm (so the surface is at its
    canonical place; `test_normalize_is_pc_norm_of_raw` covers pc_norm)."""
    points, labels = shapes3d.generate(
        70, 512, seed=2, classes=[name], normalize=False, **kwargs
    )
    assert np.all(labels == 0)
    return points


JITTER = 0.01
# The largest of ~36k Gaussian jitters is ~4.5 sigma (measured: sphere 4.6,
# cube 4.0); 6 sigma bounds the jittered surface without flakiness.
BAND = 6 * JITTER


def test_normalize_is_pc_norm_of_raw():
    raw, labels = shapes3d.generate(30, 64, seed=4, normalize=False)
    normed, labels2 = shapes3d.generate(30, 64, seed=4)
    np.testing.assert_array_equal(labels, labels2)
    np.testing.assert_allclose(normed, pc_norm(raw), atol=1e-6)


def test_generated_sphere_radius_constant_without_scale():
    """Sphere radius is 1 up to jitter; with the anisotropic scale on, the
    radius spread is several times larger."""
    plain = np.linalg.norm(_by_class("sphere", scale_range=None), axis=-1)
    scaled = np.linalg.norm(_by_class("sphere"), axis=-1)
    assert np.abs(plain - 1.0).max() < BAND
    assert plain.std(axis=1).max() < 1.5 * JITTER
    assert scaled.std(axis=1).mean() > 5 * JITTER


def test_generated_cube_points_on_faces_without_scale_or_rotation():
    p = _by_class("cube", scale_range=None, rotation="none")
    cheb = np.abs(p).max(-1)  # Chebyshev radius: constant on a cube
    assert np.abs(cheb - surf.CUBE_HALF).max() < BAND
    # Rotated about z, the top and bottom faces stay flat at |z| = 1.
    q = _by_class("cube", scale_range=None, rotation="z")
    assert np.abs(np.abs(q[..., 2]).max(1) - surf.CUBE_HALF).max() < BAND


def test_generated_torus_has_a_hole_around_the_up_axis():
    """Rotation about z keeps the hole around z: no points near the axis."""
    hole = surf.TORUS_MAJOR - surf.TORUS_MINOR
    torus = _by_class("torus", scale_range=None)
    assert _rho(torus).min() > hole - BAND
    # The same check rejects a cloud without a hole.
    cone = _by_class("cone", scale_range=None)
    assert _rho(cone).min() < hole - BAND
    # With scale on, the hole shrinks at most to 0.7 x its radius.
    scaled = _by_class("torus")
    assert _rho(scaled).min() > 0.7 * hole - BAND


def test_rotation_modes():
    """'z' keeps the up axis (a cylinder stays upright); 'so3' does not."""
    height = 2 * surf.CYLINDER_HALF_HEIGHT
    upright = _by_class("cylinder", scale_range=None, rotation="z")
    tumbled = _by_class("cylinder", scale_range=None, rotation="so3")
    z_extent = lambda p: np.ptp(p[..., 2], axis=1)  # noqa: E731
    assert np.abs(z_extent(upright) - height).max() < 2 * BAND
    assert np.mean(np.abs(z_extent(tumbled) - height) > 2 * BAND) > 0.5
    rot = shapes3d.random_rotations(np.random.default_rng(0), 50, "so3")
    np.testing.assert_allclose(
        rot @ rot.transpose(0, 2, 1),
        np.broadcast_to(np.eye(3), rot.shape),
        atol=1e-9,
    )
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="rotation"):
        shapes3d.generate(7, 8, 0, rotation="x")


def test_generate_deterministic_for_seed_and_class_subset():
    a = shapes3d.generate(50, 32, seed=5)
    b = shapes3d.generate(50, 32, seed=5)
    c = shapes3d.generate(50, 32, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    _, labels = shapes3d.generate(30, 8, 0, classes=["torus", "cube"])
    assert set(labels) == {0, 1}
    with pytest.raises(ValueError, match="classes"):
        shapes3d.generate(10, 8, 0, classes=["teapot"])


def test_train_and_test_splits_differ():
    train = shapes3d.source("train", seed=0, num_samples=20, num_points=8)
    test = shapes3d.source("test", seed=0, num_samples=20, num_points=8)
    first = lambda s: next(iter(s.dataset))["points"].numpy()  # noqa: E731
    assert not np.array_equal(first(train), first(test))


def test_generation_is_fast():
    """2000 clouds x 256 points: ~0.5 s measured on 2 cores; the bound is
    loose because the CPU is shared."""
    start = time.perf_counter()
    shapes3d.generate(2000, 256, seed=0)
    assert time.perf_counter() - start < 5.0
