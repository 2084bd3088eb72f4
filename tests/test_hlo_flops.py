"""`official.ops.hlo_flops` and the work complexity of structured kernels.

A kernel's complexity claim is pinned on the FLOPs XLA compiles, not on
wall time (which bends with the achieved GFLOP/s)."""

import math

import numpy as np
import pytest

from official.attention import attention
from official.ops import hlo_flops


def test_dot_flops_of_a_matmul_and_a_batched_einsum():
    import tensorflow as tf

    a = tf.zeros((3, 5, 7))
    b = tf.zeros((7, 11))
    flops = hlo_flops.function_dot_flops(lambda a, b: tf.einsum(
        "bij,jk->bik", a, b), a, b)
    assert flops == 2 * 3 * 5 * 7 * 11
    c = tf.zeros((3, 7, 4))
    flops = hlo_flops.function_dot_flops(lambda a, c: tf.matmul(a, c), a, c)
    assert flops == 2 * 3 * 5 * 7 * 4


def test_dots_inside_loops_are_refused():
    import tensorflow as tf

    def looped(x):
        return tf.while_loop(lambda i, y: i < 3,
                             lambda i, y: (i + 1, tf.matmul(y, y)),
                             (0, x))[1]

    with pytest.raises(ValueError, match="while loops"):
        hlo_flops.function_dot_flops(looped, tf.eye(4))


def _flops(kernel, length):
    q = np.random.default_rng(0).standard_normal((1, length, 2, 16))
    q = q.astype("float32")
    return hlo_flops.function_dot_flops(
        lambda q: attention(q, q, q, kernel=kernel), q)


@pytest.mark.parametrize("kernel, slope", [
    ("dense", 2.0),            # L^2
    ("combiner_fixed", 1.5),   # L sqrt L (segments of sqrt L)
    ("combiner_axial", 1.5),
    ("combiner_mixture", 1.5),
])
def test_structured_kernels_compile_their_claimed_work(kernel, slope):
    f1, f4 = _flops(kernel, 1024), _flops(kernel, 4096)
    measured = math.log(f4 / f1) / math.log(4)
    assert abs(measured - slope) < 0.02, (kernel, f1, f4, measured)


def test_a_dot_in_a_fusion_called_from_a_loop_body_is_found():
    # XLA may fuse a dot; the loop check follows calls= into fusions.
    hlo = "\n".join([
        "%fused_computation (p0: f32[4,4]) -> f32[4,4] {",
        "  %p0 = f32[4,4]{1,0} parameter(0)",
        "  ROOT %d = f32[4,4]{1,0} dot(%p0, %p0), lhs_contracting_dims={1}",
        "}",
        "",
        "%body (t: (s32[], f32[4,4])) -> (s32[], f32[4,4]) {",
        "  %x = f32[4,4]{1,0} get-tuple-element(%t), index=1",
        "  %f = f32[4,4]{1,0} fusion(%x), kind=kOutput, "
        "calls=%fused_computation",
        "}",
        "",
        "ENTRY %main (a: f32[4,4]) -> f32[4,4] {",
        "  %w = (s32[], f32[4,4]) while(%i), condition=%c, body=%body",
        "}",
    ])
    assert hlo_flops._computations_with_dots_in_loops(hlo) == ["body"]
