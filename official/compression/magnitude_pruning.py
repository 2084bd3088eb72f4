"""Unstructured magnitude pruning for Keras 3 (survey T6; spec 2.1, 2.2).

tfmot's `prune_low_magnitude` only works with Keras 2 (`tf_keras`;
tensorflow/model-optimization#1119), so this is a Keras 3 version of the
same algorithm (Zhu & Gupta 2017, "To prune, or not to prune", sec. 3):

* every prunable kernel W gets a binary mask m, a non-trainable
  `keras.Variable` owned by the pruner (the model's own variables and its
  saved files are unchanged: a pruned model simply holds zeros);
* at sparsity s the mask zeroes exactly k = round(s * n) entries, those with
  the smallest |W| (ties broken by flat index, a stable sort), per layer or
  with one global ranking over all kernels;
* sparsity follows the polynomial schedule (Zhu & Gupta eq. 1; tfmot
  `PolynomialDecay`)
  s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3 for t0 <= t <= t1,
  s_i before t0, s_f after t1, with masks recomputed every `frequency`
  steps from the current |W|;
* `PruningCallback` recomputes the masks when the schedule says so
  (`on_train_batch_begin`) and re-applies W <- W * m after every optimiser
  step (`on_train_batch_end`), so the forward pass always sees W * m and
  pruned weights stay exactly zero (momentum cannot revive them). With
  `steps_per_execution > 1` Keras calls the callback once per execution:
  keep it at 1 while pruning.
"""

import re

import keras
import numpy as np
from keras import ops

PRUNABLE = (keras.layers.Dense, keras.layers.EinsumDense,
            keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def polynomial_sparsity(step, initial_sparsity, final_sparsity, begin_step,
                        end_step, power=3):
    """Sparsity at `step` (Zhu & Gupta 2017, eq. 1)."""
    if end_step <= begin_step:
        raise ValueError("polynomial_sparsity: end_step must be > "
                         "begin_step.")
    p = min(1.0, max(0.0, (step - begin_step) / (end_step - begin_step)))
    return final_sparsity + (initial_sparsity - final_sparsity) * (
        1.0 - p) ** power


class PolynomialSparsity:
    """The schedule plus its update rule: masks change at steps
    begin_step + j * frequency <= end_step (tfmot `PolynomialDecay`)."""

    def __init__(self, initial_sparsity, final_sparsity, begin_step,
                 end_step, frequency=1, power=3):
        for s in (initial_sparsity, final_sparsity):
            if not 0.0 <= s < 1.0:
                raise ValueError(f"sparsity must be in [0, 1); got {s}.")
        self.initial_sparsity = initial_sparsity
        self.final_sparsity = final_sparsity
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self.power = power

    def __call__(self, step):
        return polynomial_sparsity(step, self.initial_sparsity,
                                   self.final_sparsity, self.begin_step,
                                   self.end_step, self.power)

    def should_update(self, step):
        return (self.begin_step <= step <= self.end_step
                and (step - self.begin_step) % self.frequency == 0)


def magnitude_mask(weights, sparsity):
    """Binary mask zeroing exactly round(sparsity * n) smallest-|w| entries
    (stable sort: among equal magnitudes the lower flat index goes first)."""
    w = np.asarray(weights)
    k = int(round(sparsity * w.size))
    mask = np.ones(w.size, dtype=w.dtype)
    if k > 0:
        order = np.argsort(np.abs(w).ravel(), kind="stable")
        mask[order[:k]] = 0
    return mask.reshape(w.shape)


def _selected(layer, filters):
    if filters is None:
        return True
    if callable(filters):
        return bool(filters(layer))
    if isinstance(filters, str):
        filters = [filters]
    return any(re.search(f, layer.name) for f in filters)


def prunable_kernels(model, filters=None):
    """(layer, kernel variable) of every float Dense/EinsumDense/Conv layer
    (biases, norms and embeddings are never pruned). `filters`: regex(es)
    searched in the layer name, or a callable on the layer."""
    out = []
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, PRUNABLE) or not layer.built:
            continue
        if getattr(layer, "quantization_mode", None):
            raise ValueError(f"prunable_kernels: '{layer.path}' is already "
                             "quantized; prune before quantizing.")
        if _selected(layer, filters):
            out.append((layer, layer.kernel))
    return out


class MagnitudePruner:
    """Masks for a model's kernels and the operations on them.

    Args:
        model: a built Keras model.
        filters: which layers to prune (see `prunable_kernels`).
        scope: "layer" (every kernel at the same sparsity) or "global" (one
            magnitude ranking over all selected kernels).
    """

    def __init__(self, model, filters=None, scope="layer"):
        if scope not in ("layer", "global"):
            raise ValueError(f"scope must be 'layer' or 'global'; got "
                             f"'{scope}'.")
        self.model = model
        self.scope = scope
        self.kernels = prunable_kernels(model, filters)
        if not self.kernels:
            raise ValueError("MagnitudePruner: no prunable kernel found.")
        self.masks = [
            keras.Variable(np.ones(tuple(v.shape), "float32"),
                           trainable=False, name=f"mask_{i}")
            for i, (_, v) in enumerate(self.kernels)
        ]
        self.sparsity_target = 0.0

    def update_masks(self, sparsity):
        """Recomputes every mask at `sparsity` from the current |W|, then
        applies them."""
        values = [ops.convert_to_numpy(v) for _, v in self.kernels]
        if self.scope == "layer":
            new = [magnitude_mask(w, sparsity) for w in values]
        else:
            flat = np.concatenate([w.ravel() for w in values])
            mask = magnitude_mask(flat, sparsity)
            new, start = [], 0
            for w in values:
                new.append(mask[start:start + w.size].reshape(w.shape))
                start += w.size
        for var, m in zip(self.masks, new):
            var.assign(m.astype("float32"))
        self.sparsity_target = sparsity
        self.apply()

    def apply(self):
        """W <- W * m for every kernel."""
        for (_, kernel), mask in zip(self.kernels, self.masks):
            kernel.assign(kernel * ops.cast(mask, kernel.dtype))

    def sparsity(self):
        """Achieved fraction of exact zeros over the pruned kernels."""
        zeros = total = 0
        for _, kernel in self.kernels:
            w = ops.convert_to_numpy(kernel)
            zeros += int(np.sum(w == 0))
            total += w.size
        return zeros / total

    def layer_sparsity(self):
        """{layer path: fraction of zeros}."""
        return {layer.path: float(np.mean(ops.convert_to_numpy(k) == 0))
                for layer, k in self.kernels}


class PruningCallback(keras.callbacks.Callback):
    """Runs a `MagnitudePruner` on a schedule during `fit`.

    The step t is the optimizer's iteration count (steps already applied),
    so resuming training continues the schedule.

    Args:
        pruner: MagnitudePruner.
        schedule: PolynomialSparsity (or any object with `__call__(step)`
            and `should_update(step)`).
    """

    def __init__(self, pruner, schedule):
        super().__init__()
        self.pruner = pruner
        self.schedule = schedule

    def _step(self):
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        self.pruner.apply()

    def on_train_batch_begin(self, batch, logs=None):
        step = self._step()
        if self.schedule.should_update(step):
            self.pruner.update_masks(self.schedule(step))

    def on_train_batch_end(self, batch, logs=None):
        self.pruner.apply()
