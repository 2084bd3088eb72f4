"""Logit and feature distillation (spec 2.2, 2.3 check 6, 2.5 (c))."""

import keras
import numpy as np
import pytest
from compression_fixtures import accuracy
from compression_fixtures import digits_arrays
from keras import ops

from official import compression as C


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _total_loss(zs, zt, y, alpha, t, kd=C.kd_loss):
    from official.compression.distillation import hard_label_loss

    soft = kd(ops.convert_to_tensor(zs), ops.convert_to_tensor(zt), t)
    hard = hard_label_loss(ops.convert_to_tensor(y), ops.convert_to_tensor(
        zs))
    return float(alpha * hard + (1 - alpha) * soft)


def _finite_difference(zs, zt, y, alpha, t, kd=C.kd_loss, eps=1e-6):
    grad = np.zeros_like(zs)
    for idx in np.ndindex(zs.shape):
        up, down = zs.copy(), zs.copy()
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (_total_loss(up, zt, y, alpha, t, kd)
                     - _total_loss(down, zt, y, alpha, t, kd)) / (2 * eps)
    return grad


def _logits(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3, 5)) * 3, rng.normal(size=(3, 5)) * 3


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise():
    zs, zt = _logits(0)
    assert float(C.kd_loss(zs, zs, 4.0)) == pytest.approx(0.0, abs=1e-12)
    assert float(C.kd_loss(zs, zt, 4.0)) > 1e-3
    # Broken variant: the soft cross-entropy (KL + teacher entropy) is not 0.
    p = _softmax(zs / 4)
    assert -np.mean(np.sum(p * np.log(p), -1)) * 16 > 1e-3


@pytest.mark.parametrize("alpha,t", [(0.0, 4.0), (0.1, 4.0), (0.5, 2.0)])
def test_gradient_matches_the_closed_form(alpha, t):
    """dL/dz_s = [alpha (softmax(z_s) - onehot(y)) + (1 - alpha) T
    (softmax(z_s/T) - softmax(z_t/T))] / B, by central finite differences
    in float64."""
    zs, zt = _logits(1)
    y = np.array([0, 3, 4])
    b = zs.shape[0]
    want = (alpha * (_softmax(zs) - np.eye(5)[y])
            + (1 - alpha) * t * (_softmax(zs / t) - _softmax(zt / t))) / b
    got = _finite_difference(zs, zt, y, alpha, t)
    np.testing.assert_allclose(got, want, atol=1e-7)


def test_gradient_check_catches_a_missing_t_squared():
    zs, zt = _logits(2)
    y = np.array([0, 3, 4])

    def no_t2(s, tt, t):
        return C.kd_loss(s, tt, t) / (t * t)

    want = 4.0 * (_softmax(zs / 4) - _softmax(zt / 4)) / 3
    got = _finite_difference(zs, zt, y, 0.0, 4.0, kd=no_t2)
    assert not np.allclose(got, want, atol=1e-7)


def _mlp(width, seed, name):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(width, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(h),
                       name=name)


def test_fit_trains_the_student_only():
    xtr, ytr, _, _ = digits_arrays()
    teacher, student = _mlp(32, 0, "teacher"), _mlp(8, 1, "student")
    t_before = [w.copy() for w in teacher.get_weights()]
    s_before = [w.copy() for w in student.get_weights()]
    distiller = C.Distiller(student, teacher)
    distiller.compile(optimizer="adam", jit_compile=True)
    distiller.fit(xtr[:128], ytr[:128], batch_size=64, epochs=1, verbose=0)
    for a, b in zip(teacher.get_weights(), t_before):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b)
               for a, b in zip(student.get_weights(), s_before))
    # Broken variant: teacher left trainable and its logits not stopped.

    class Leaky(C.Distiller):
        def compute_loss(self, x=None, y=None, y_pred=None,
                         sample_weight=None, training=True):
            return C.kd_loss(y_pred, self.teacher(x), self.temperature)

    leaky = Leaky(student, teacher)
    teacher.trainable = True
    leaky.compile(optimizer="adam")
    leaky.fit(xtr[:128], ytr[:128], batch_size=64, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b)
               for a, b in zip(teacher.get_weights(), t_before))


def test_feature_distillation_term_and_projection():
    xtr, ytr, _, _ = digits_arrays()
    teacher, student = _mlp(32, 0, "teacher"), _mlp(8, 1, "student")

    def features(name):
        def fn(model, x):
            return keras.Model(model.input, model.get_layer(name).output)(x)
        return fn

    distiller = C.Distiller(student, teacher, alpha=0.0,
                            student_features=features("hidden"),
                            teacher_features=features("hidden"),
                            feature_weight=1.0, feature_projection_dim=32)
    distiller.compile(optimizer="adam")
    x, y = xtr[:64], ytr[:64]
    distiller.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert distiller.projection.kernel.shape == (8, 32)
    assert len(distiller.trainable_variables) == 4 + 1  # student + W_h
    zs = distiller(x)
    h_s = distiller.projection(features("hidden")(student, x))
    h_t = features("hidden")(teacher, x)
    want = (C.kd_loss(zs, teacher(x), 4.0)
            + C.feature_distillation_loss(h_s, h_t))
    got = distiller.compute_loss(x, y, zs)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert float(C.feature_distillation_loss(h_t, h_t)) == 0.0
    with pytest.raises(ValueError, match="both"):
        C.Distiller(student, teacher, student_features=features("hidden"))


@pytest.mark.large
def test_distilled_student_beats_hard_label_student_on_few_labels():
    """Spec 2.5 (c): teacher on all labels; students (8 hidden units) on
    10% of the labels, hard labels only vs distillation; mean of 3 seeds."""
    xtr, ytr, xte, yte = digits_arrays()
    teacher = _mlp(128, 0, "teacher")
    teacher.compile(optimizer=keras.optimizers.Adam(1e-2),
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    teacher.fit(xtr, ytr, batch_size=64, epochs=30, verbose=0)
    few = np.random.default_rng(0).permutation(len(xtr))[:len(xtr) // 10]
    hard, soft = [], []
    for seed in range(3):
        plain = _mlp(8, 10 + seed, "plain")
        plain.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        plain.fit(xtr[few], ytr[few], batch_size=32, epochs=60, verbose=0)
        hard.append(accuracy(plain, xte, yte))
        student = _mlp(8, 10 + seed, "student")
        distiller = C.Distiller(student, teacher, temperature=4.0, alpha=0.1)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
        distiller.fit(xtr[few], ytr[few], batch_size=32, epochs=60,
                      verbose=0)
        soft.append(accuracy(student, xte, yte))
    print("teacher", accuracy(teacher, xte, yte), "hard", hard, "soft", soft)
    assert accuracy(teacher, xte, yte) > 0.95
    assert np.mean(soft) >= np.mean(hard), (hard, soft)
