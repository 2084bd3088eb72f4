"""RepBN and progressive RepBN (PRepBN), SLAB's normalisation.

Paper: Guo et al. 2024, "SLAB: Efficient Transformers with Simplified Linear
Attention and Progressive Re-parameterized Batch Normalization", ICML 2024,
https://arxiv.org/abs/2405.11582 (PRepBN section and Fig. 2). Official code:
xinghaochen/SLAB `classification/models/prepbn.py` (`RepBN`, `LinearNorm`).

* RepBN(x) = BN(x) + alpha * x, alpha a learnable scalar (init 1); BN
  normalises each channel (last axis) with statistics over every other axis
  (PyTorch `BatchNorm1d` on x.transpose(1, 2)).
* PRepBN(x) = gamma * LN(x) + (1 - gamma) * RepBN(x) in training, with
  gamma = r0 * (T - t) / T clamped at 0 (t = training steps after the warm-up,
  T = `total_steps`), and LN alone during the first `warm_steps` steps; at
  inference PRepBN(x) = RepBN(x) with running statistics (LN dropped), an
  affine map a * x + b that folds into the next linear layer
  (`garden/slab/slab_fold.py`).
"""

import keras
from keras import ops

from official.registry import register_layer


@register_layer()
class RepBatchNorm(keras.layers.Layer):
    """RepBN(x) = BN(x) + alpha * x over the last (channel) axis.

    The batch normalisation is written out (not `keras.layers.
    BatchNormalization`) to match PyTorch exactly and to let PRepBN freeze the
    running statistics during its warm-up: training normalises with the batch
    mean and biased variance; the running variance is updated with the
    unbiased one (n / (n - 1)), as `torch.nn.BatchNorm1d` does. Statistics
    are computed in float32.

    Args:
        epsilon: float. 1e-5 (PyTorch default).
        momentum: float. Keras convention: running = momentum * running +
            (1 - momentum) * batch; 0.9 = PyTorch momentum 0.1.

    Call args:
        x: (..., C).
        training: bool. Batch statistics (and running-statistics update).
        update_stats: optional scalar bool tensor; False keeps the running
            statistics unchanged in training mode.
    """

    def __init__(self, epsilon=1e-5, momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.momentum = momentum

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(c,),
                                     initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(c,),
                                    initializer="zeros")
        self.alpha = self.add_weight(name="alpha", shape=(1,),
                                     initializer="ones")
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(c,), initializer="zeros",
            trainable=False, dtype="float32")
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(c,), initializer="ones",
            trainable=False, dtype="float32")

    def call(self, x, training=False, update_stats=None):
        xf = ops.cast(x, "float32")
        if training:
            axes = tuple(range(len(x.shape) - 1))
            mean, var = ops.moments(xf, axes=axes)
            shape = ops.shape(xf)
            n = 1
            for i in axes:
                n = n * shape[i]
            n = ops.cast(n, "float32")
            unbiased = var * n / ops.maximum(n - 1.0, 1.0)
            m = self.momentum
            new_mean = self.moving_mean * m + mean * (1.0 - m)
            new_var = self.moving_variance * m + unbiased * (1.0 - m)
            if update_stats is not None:
                new_mean = ops.where(update_stats, new_mean, self.moving_mean)
                new_var = ops.where(update_stats, new_var,
                                    self.moving_variance)
            self.moving_mean.assign(new_mean)
            self.moving_variance.assign(new_var)
        else:
            mean, var = self.moving_mean, self.moving_variance
        normed = (xf - mean) * ops.rsqrt(var + self.epsilon)
        gamma = ops.cast(self.gamma, "float32")
        beta = ops.cast(self.beta, "float32")
        alpha = ops.cast(self.alpha, "float32")
        return ops.cast(normed * gamma + beta + alpha * xf, x.dtype)

    def inference_affine(self):
        """(a, b) with RepBN(x) = a * x + b at inference, as NumPy float64:
        a = gamma / sqrt(var + eps) + alpha, b = beta - gamma * mean /
        sqrt(var + eps) (official `merge_bn`)."""
        import numpy as np

        gamma = np.asarray(self.gamma.numpy(), np.float64)
        beta = np.asarray(self.beta.numpy(), np.float64)
        alpha = np.asarray(self.alpha.numpy(), np.float64)
        mean = np.asarray(self.moving_mean.numpy(), np.float64)
        var = np.asarray(self.moving_variance.numpy(), np.float64)
        inv = gamma / np.sqrt(var + self.epsilon)
        return inv + alpha, beta - mean * inv

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "momentum": self.momentum}


def prepbn_ln_weight(step, total_steps, warm_steps=0, r0=1.0):
    """gamma, the LayerNorm weight of PRepBN, after `step` training calls.

    Official `LinearNorm.forward`: the first `warm_steps` calls use LN only
    (gamma = 1); afterwards gamma = r0 * iter / total_steps where `iter`
    starts at `total_steps` and drops by one per call until 0. Works on
    Python numbers and tensors.
    """
    if isinstance(step, (int, float)):
        if step < warm_steps:
            return 1.0
        remaining = min(max(total_steps - (step - warm_steps), 0), total_steps)
        return r0 * remaining / total_steps
    step = ops.cast(step, "float32")
    remaining = ops.clip(total_steps - (step - warm_steps), 0.0,
                         float(total_steps))
    return ops.where(step < warm_steps, 1.0, r0 * remaining / total_steps)


@register_layer()
class ProgressiveRepBN(keras.layers.Layer):
    """PRepBN: LayerNorm progressively replaced by RepBN (official
    `LinearNorm(norm1=LayerNorm(eps=1e-6), norm2=RepBN)`).

    Training: y = gamma * LN(x) + (1 - gamma) * RepBN(x) with gamma from
    `prepbn_ln_weight(step, ...)`, LN alone (and no running-statistics
    update) during the warm-up; then `step` grows by one. Inference:
    y = RepBN(x) with running statistics.

    `step` is a non-trainable weight, saved with the model, counting
    training-mode calls exactly as the official buffers do. (The spec
    suggested counting optimizer steps instead; with gradient accumulation
    or extra training-mode calls per step, set it explicitly with
    `set_prepbn_step`.)

    Args:
        total_steps: int. T, the length of the decay (60000 in the official
            DeiT/Swin factories).
        warm_steps: int. LN-only steps before the decay (official default 0).
        r0: float. gamma right after the warm-up (official default 1.0).
        layer_norm_epsilon: float. 1e-6 (official `partial(nn.LayerNorm,
            eps=1e-6)`).
        epsilon, momentum: of the RepBN batch normalisation.
    """

    def __init__(self, total_steps=60000, warm_steps=0, r0=1.0,
                 layer_norm_epsilon=1e-6, epsilon=1e-5, momentum=0.9,
                 **kwargs):
        super().__init__(**kwargs)
        if total_steps < 1 or warm_steps < 0:
            raise ValueError(
                "ProgressiveRepBN: total_steps must be >= 1 and warm_steps "
                f">= 0; received {total_steps}, {warm_steps}.")
        self.total_steps = total_steps
        self.warm_steps = warm_steps
        self.r0 = r0
        self.layer_norm_epsilon = layer_norm_epsilon
        self.epsilon = epsilon
        self.momentum = momentum
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
            name="layer_norm")
        self.repbn = RepBatchNorm(epsilon=epsilon, momentum=momentum,
                                  dtype=self.dtype_policy, name="repbn")

    def build(self, input_shape):
        self.layer_norm.build(input_shape)
        self.repbn.build(input_shape)
        self.step = self.add_weight(name="step", shape=(),
                                    initializer="zeros", trainable=False,
                                    dtype="float32")

    def ln_weight(self):
        """The current gamma (a scalar tensor)."""
        return prepbn_ln_weight(self.step, self.total_steps,
                                self.warm_steps, self.r0)

    def call(self, x, training=False):
        if not training:
            return self.repbn(x, training=False)
        gamma = self.ln_weight()
        in_warmup = ops.cast(self.step, "float32") < self.warm_steps
        ln = self.layer_norm(x)
        bn = self.repbn(x, training=True,
                        update_stats=ops.logical_not(in_warmup))
        gamma = ops.cast(gamma, ln.dtype)
        self.step.assign_add(1.0)
        return gamma * ln + (1.0 - gamma) * bn

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "total_steps": self.total_steps,
            "warm_steps": self.warm_steps,
            "r0": self.r0,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
        }


def prepbn_layers(model):
    """Every `ProgressiveRepBN` inside `model` (any nesting)."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, ProgressiveRepBN)]


def set_prepbn_step(model, step):
    """Sets the schedule position of every PRepBN layer of `model` (e.g. to
    `optimizer.iterations` when resuming or accumulating gradients)."""
    for layer in prepbn_layers(model):
        layer.step.assign(float(step))
