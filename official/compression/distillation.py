"""Knowledge distillation (survey T9, T10; spec 2.1, 2.2, 2.3 check 6).

Logit distillation (Hinton et al. 2015, "Distilling the Knowledge in a
Neural Network", sec. 2):
  L = alpha * CE(y, z_s) + (1 - alpha) * T^2 * KL(softmax(z_t / T) ||
      softmax(z_s / T)),
averaged over the batch. The T^2 factor keeps the soft-target gradient on
the scale of the hard-label one: per example
  dL_soft / dz_s = (1 - alpha) * T * (softmax(z_s / T) - softmax(z_t / T)).
Defaults T = 4, alpha = 0.1 (10% weight on the hard labels, as the Keras
distillation example, keras-io `examples/vision/knowledge_distillation.py`,
which uses T = 10; we take Hinton et al.'s intermediate temperatures).

Feature distillation (TinyBERT, Jiao et al. 2020, sec. 3.1 eq. 8-9;
FitNets, Romero et al. 2015): MSE(h_s W_h, h_t) between hidden states, with
a learned projection W_h when the widths differ, added with weight beta.

`Distiller(student, teacher)` is a `keras.Model` whose forward pass is the
student's and whose `compute_loss` is the objective above, so `compile` +
`fit` train the student (and the projection) only: the teacher is frozen
(`trainable = False`) and always called with `training=False`.
"""

import keras
from keras import ops


def _loss_dtype(x):
    """float64 stays float64 (gradient checks); everything else float32."""
    x = ops.convert_to_tensor(x)
    if keras.backend.standardize_dtype(x.dtype) == "float64":
        return "float64"
    return "float32"


def kd_loss(student_logits, teacher_logits, temperature=4.0):
    """T^2 * KL(softmax(z_t/T) || softmax(z_s/T)), mean over the batch.

    The KL is summed over classes (the last axis) and averaged over every
    other axis.
    """
    t = float(temperature)
    dtype = _loss_dtype(student_logits)
    zs = ops.cast(student_logits, dtype) / t
    zt = ops.cast(teacher_logits, dtype) / t
    log_ps = ops.log_softmax(zs, axis=-1)
    log_pt = ops.log_softmax(zt, axis=-1)
    kl = ops.sum(ops.exp(log_pt) * (log_pt - log_ps), axis=-1)
    return t * t * ops.mean(kl)


def feature_distillation_loss(student_features, teacher_features):
    """Mean squared error between (projected) hidden states."""
    diff = ops.cast(student_features, "float32") - ops.cast(
        teacher_features, "float32")
    return ops.mean(ops.square(diff))


def hard_label_loss(y, logits):
    """Mean sparse categorical cross-entropy of logits."""
    logits = ops.cast(logits, _loss_dtype(logits))
    return ops.mean(keras.losses.sparse_categorical_crossentropy(
        y, logits, from_logits=True))


class Distiller(keras.Model):
    """Trains `student` to match `teacher` (see the module docstring).

    Args:
        student: Keras model returning logits.
        teacher: Keras model returning logits (frozen here).
        temperature: float T.
        alpha: float. Weight of the hard-label loss.
        student_features, teacher_features: optional callables
            `fn(model, x) -> (B, ..., D)` giving the hidden states to match
            (e.g. `lambda m, x: m.features(x)`); both or neither. They run an
            extra forward pass of each model per step.
        feature_weight: float beta of the feature term.
        feature_projection_dim: int or None. Width of the teacher features:
            a bias-free Dense (the TinyBERT W_h) maps the student features to
            it; None = no projection (widths must match).

    Call args: `x` as the student takes it. Returns the student's logits.

    Example:

    >>> import keras, numpy as np
    >>> from official.compression import Distiller
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> distiller = Distiller(student, teacher, temperature=4.0, alpha=0.1)
    >>> distiller.compile(optimizer="adam")
    >>> x, y = np.ones((8, 4), "float32"), np.zeros((8,), "int32")
    >>> _ = distiller.fit(x, y, epochs=1, verbose=0)
    """

    def __init__(self, student, teacher, temperature=4.0, alpha=0.1,
                 student_features=None, teacher_features=None,
                 feature_weight=0.0, feature_projection_dim=None, **kwargs):
        super().__init__(**kwargs)
        if (student_features is None) != (teacher_features is None):
            raise ValueError("Distiller: give both student_features and "
                             "teacher_features, or neither.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Distiller: alpha must be in [0, 1]; got "
                             f"{alpha}.")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.student_features = student_features
        self.teacher_features = teacher_features
        self.feature_weight = float(feature_weight)
        self.projection = None
        if feature_projection_dim is not None:
            self.projection = keras.layers.Dense(
                feature_projection_dim, use_bias=False,
                name="feature_projection")

    def build(self, input_shape):
        if self.projection is not None and not self.projection.built:
            # The projection's input width is the student features' width:
            # trace the feature function symbolically.
            spec = keras.tree.map_shape_structure(keras.KerasTensor,
                                                  input_shape)
            features = self.student_features(self.student, spec)
            self.projection.build(features.shape)
        self.built = True

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        loss = (1.0 - self.alpha) * kd_loss(y_pred, teacher_logits,
                                            self.temperature)
        if self.alpha > 0.0:
            loss = loss + self.alpha * hard_label_loss(y, y_pred)
        if self.student_features is not None and self.feature_weight > 0.0:
            h_s = self.student_features(self.student, x)
            h_t = ops.stop_gradient(self.teacher_features(self.teacher, x))
            if self.projection is not None:
                h_s = self.projection(h_s)
            loss = loss + self.feature_weight * feature_distillation_loss(
                h_s, h_t)
        return loss
