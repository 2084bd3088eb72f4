"""Uniform samplers on the surfaces of the `shapes3d` primitives (NumPy).

Each sampler draws `(num_clouds, num_points, 3)` points uniformly with respect
to surface area, in a canonical pose: centred near the origin, up axis +z,
extent about [-1, 1]. Where a surface has parts of different areas (cylinder
side vs caps, cone side vs base, pyramid faces), each point first picks a part
with probability proportional to its area, so the density is uniform overall.

This is the procedural source of Point-MAE's offline proxy (see
shared/papers/point_mae.md, "Offline proxy"; procedural primitives as
Point-MAE pre-training data: arXiv 2411.17467).
"""

import numpy as np

# Canonical dimensions (also used by the tests' geometric checks).
SPHERE_RADIUS = 1.0
CUBE_HALF = 1.0
CYLINDER_RADIUS = 0.6
CYLINDER_HALF_HEIGHT = 0.9
CONE_RADIUS = 0.9
CONE_HALF_HEIGHT = 0.9  # base at z=-h, apex at z=+h
TORUS_MAJOR = 0.7
TORUS_MINOR = 0.3
CAPSULE_RADIUS = 0.45
CAPSULE_HALF_LENGTH = 0.55  # half-length of the cylindrical part
PYRAMID_HALF_BASE = 0.9
PYRAMID_HALF_HEIGHT = 0.9  # base at z=-h, apex at z=+h


def _pick_parts(rng, shape, areas):
    """Index of the surface part of each point, area-weighted."""
    areas = np.asarray(areas, dtype=np.float64)
    return rng.choice(len(areas), size=shape, p=areas / areas.sum())


def _disk(rng, shape, radius):
    """Uniform points on a disk of `radius` in the xy-plane: (x, y)."""
    rho = radius * np.sqrt(rng.random(shape))
    phi = rng.random(shape) * 2 * np.pi
    return rho * np.cos(phi), rho * np.sin(phi)


def sphere(rng, num_clouds, num_points):
    v = rng.standard_normal((num_clouds, num_points, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return SPHERE_RADIUS * v


def cube(rng, num_clouds, num_points):
    """Surface of [-1, 1]^3: a face (all equal area), then a uniform point."""
    shape = (num_clouds, num_points)
    pts = rng.uniform(-CUBE_HALF, CUBE_HALF, size=shape + (3,))
    face = rng.integers(0, 6, size=shape)
    axis, sign = face // 2, np.where(face % 2 == 0, 1.0, -1.0)
    np.put_along_axis(
        pts, axis[..., None], (sign * CUBE_HALF)[..., None], axis=-1
    )
    return pts


def cylinder(rng, num_clouds, num_points):
    """Closed cylinder: side 2*pi*r*H, two caps pi*r^2 each (H = height)."""
    r, h = CYLINDER_RADIUS, CYLINDER_HALF_HEIGHT
    shape = (num_clouds, num_points)
    cap_area = np.pi * r**2
    part = _pick_parts(rng, shape, [2 * np.pi * r * 2 * h, cap_area, cap_area])
    phi = rng.random(shape) * 2 * np.pi
    side = np.stack(
        [r * np.cos(phi), r * np.sin(phi), rng.uniform(-h, h, shape)], -1
    )
    dx, dy = _disk(rng, shape, r)
    cap_z = np.where(part == 1, h, -h)
    cap = np.stack([dx, dy, cap_z], -1)
    return np.where((part == 0)[..., None], side, cap)


def cone(rng, num_clouds, num_points):
    """Closed cone: lateral pi*R*slant, base pi*R^2.

    On the lateral surface the area density grows linearly with the distance
    from the apex, so that distance (as a fraction t of the slant) is drawn
    as t = sqrt(u).
    """
    r, h = CONE_RADIUS, CONE_HALF_HEIGHT
    shape = (num_clouds, num_points)
    slant = np.hypot(r, 2 * h)
    part = _pick_parts(rng, shape, [np.pi * r * slant, np.pi * r**2])
    t = np.sqrt(rng.random(shape))
    phi = rng.random(shape) * 2 * np.pi
    side = np.stack(
        [r * t * np.cos(phi), r * t * np.sin(phi), h - 2 * h * t], -1
    )
    dx, dy = _disk(rng, shape, r)
    base = np.stack([dx, dy, np.full(shape, -h)], -1)
    return np.where((part == 0)[..., None], side, base)


def _torus_theta(u, major, minor, iterations=5):
    """Inverse CDF of the tube angle theta, density ~ (R + r cos theta).

    Solves (R*theta + r*sin(theta)) / (2*pi*R) = u by Newton's method; the
    derivative R + r*cos(theta) >= R - r > 0, so the map is monotone; from
    theta = 2*pi*u the residual is < 1e-15 after 4 steps (measured).
    """
    target = 2 * np.pi * major * u
    theta = 2 * np.pi * u
    for _ in range(iterations):
        g = major * theta + minor * np.sin(theta) - target
        theta = theta - g / (major + minor * np.cos(theta))
        theta = np.clip(theta, 0.0, 2 * np.pi)
    return theta


def torus(rng, num_clouds, num_points):
    """Ring torus in the xy-plane; the hole is around the z axis."""
    big, small = TORUS_MAJOR, TORUS_MINOR
    shape = (num_clouds, num_points)
    theta = _torus_theta(rng.random(shape), big, small)
    phi = rng.random(shape) * 2 * np.pi
    rho = big + small * np.cos(theta)
    return np.stack(
        [rho * np.cos(phi), rho * np.sin(phi), small * np.sin(theta)], -1
    )


def capsule(rng, num_clouds, num_points):
    """Cylinder of radius r, length 2a, capped by two hemispheres.

    Side area 2*pi*r*2a; the two hemispheres together are one sphere, 4*pi*r^2
    (uniform on a sphere, then pushed up or down by a along z).
    """
    r, a = CAPSULE_RADIUS, CAPSULE_HALF_LENGTH
    shape = (num_clouds, num_points)
    part = _pick_parts(rng, shape, [2 * np.pi * r * 2 * a, 4 * np.pi * r**2])
    phi = rng.random(shape) * 2 * np.pi
    side = np.stack(
        [r * np.cos(phi), r * np.sin(phi), rng.uniform(-a, a, shape)], -1
    )
    ball = r * sphere(rng, num_clouds, num_points) / SPHERE_RADIUS
    ball[..., 2] += np.where(ball[..., 2] >= 0, a, -a)
    return np.where((part == 0)[..., None], side, ball)


def _triangles(rng, corners, shape):
    """Uniform points on triangles `corners` (shape + (3, 3)) via sqrt trick."""
    s, t = np.sqrt(rng.random(shape)), rng.random(shape)
    w0, w1, w2 = 1 - s, s * (1 - t), s * t
    return (
        w0[..., None] * corners[..., 0, :]
        + w1[..., None] * corners[..., 1, :]
        + w2[..., None] * corners[..., 2, :]
    )


def pyramid(rng, num_clouds, num_points):
    """Square pyramid: base (2b)^2, four triangles b*sqrt(b^2 + (2h)^2)."""
    b, h = PYRAMID_HALF_BASE, PYRAMID_HALF_HEIGHT
    shape = (num_clouds, num_points)
    side_area = b * np.hypot(b, 2 * h)
    part = _pick_parts(rng, shape, [side_area] * 4 + [4 * b * b])
    base_corners = np.array(
        [[b, b, -h], [-b, b, -h], [-b, -b, -h], [b, -b, -h]]
    )
    apex = np.array([0.0, 0.0, h])
    faces = np.stack(
        [
            np.stack([apex, base_corners[i], base_corners[(i + 1) % 4]])
            for i in range(4)
        ]
    )  # (4, 3, 3)
    corners = faces[np.minimum(part, 3)]
    sides = _triangles(rng, corners, shape)
    base_xy = rng.uniform(-b, b, shape + (2,))
    base = np.concatenate([base_xy, np.full(shape + (1,), -h)], -1)
    return np.where((part < 4)[..., None], sides, base)


SAMPLERS = {
    "sphere": sphere,
    "cube": cube,
    "cylinder": cylinder,
    "cone": cone,
    "torus": torus,
    "capsule": capsule,
    "pyramid": pyramid,
}
