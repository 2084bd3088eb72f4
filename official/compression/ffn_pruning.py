"""Structured FFN-neuron pruning of `official.layers.MLP` (survey T8; spec
2.1).

Hidden unit j of Dense(D, r·D) -> act -> Dense(r·D, D_out) contributes
act(x W1[:, j] + b1[j]) * W2[j, :]; its importance is
||W1[:, j]||_2 * ||W2[j, :]||_2 (a weight-magnitude proxy of that
contribution). Pruning keeps the top units and slices W1's columns, b1 and
W2's rows (`prune_neurons`). Zeroing W2[j, :] of the removed units
(`mask_neurons`) gives the same function, which the tests check; each
removed unit removes D + 1 + D_out parameters.
"""

import numpy as np
from keras import ops

from official.compression.layer_keys import index_layers
from official.compression.layer_keys import layer_key
from official.compression.layer_keys import resolve
from official.compression.surgery import record_edit
from official.compression.surgery import replace_sublayer
from official.compression.surgery import replayable_edit
from official.compression.surgery import reset_compiled_functions
from official.compression.surgery import resized_copy
from official.layers.mlp import MLP


def mlp_layers(model):
    """Every `official.layers.MLP` of `model`, in order."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, MLP)]


def neuron_importance(mlp):
    """(hidden,) scores ||W1[:, j]|| * ||W2[j, :]||."""
    w1 = ops.convert_to_numpy(mlp.fc1.kernel).astype(np.float64)
    w2 = ops.convert_to_numpy(mlp.fc2.kernel).astype(np.float64)
    return np.linalg.norm(w1, axis=0) * np.linalg.norm(w2, axis=1)


def select_neurons(model, keep_fraction=0.5):
    """{mlp key: sorted kept unit indices}, the top units of every MLP
    (keys: `official.compression.layer_keys`)."""
    keep = {}
    for mlp in mlp_layers(model):
        score = neuron_importance(mlp)
        n = max(1, int(round(keep_fraction * len(score))))
        keep[layer_key(model, mlp)] = sorted(
            int(j) for j in np.argsort(-score, kind="stable")[:n])
    return keep


def mask_neurons(model, keep):
    """Zeroes W2 rows of the units not kept (same function as pruning)."""
    mlps = index_layers(model, mlp_layers(model))
    for path, units in keep.items():
        fc2 = resolve(model, mlps, path).fc2
        w = ops.convert_to_numpy(fc2.kernel)
        mask = np.zeros((w.shape[0], 1), w.dtype)
        mask[list(units)] = 1
        fc2.kernel.assign(w * mask)


@replayable_edit("prune_neurons")
def prune_neurons(model, keep):
    """Physically removes the hidden units not in `keep` (in place).

    On a `GardenModel` the edit is recorded, so its `.keras` file reloads
    sliced (`official.compression.surgery`).

    Returns:
        dict key -> {"hidden": (before, after), "params_removed": int}.
    """
    mlps = index_layers(model, mlp_layers(model))
    summary, done = {}, {}
    for path, units in keep.items():
        mlp = resolve(model, mlps, path)
        units = sorted(int(j) for j in units)
        done[layer_key(model, mlp)] = units
        if not units:
            raise ValueError(f"prune_neurons: keep at least one unit in "
                             f"'{path}'.")
        w1 = ops.convert_to_numpy(mlp.fc1.kernel)
        b1 = ops.convert_to_numpy(mlp.fc1.bias)
        w2 = ops.convert_to_numpy(mlp.fc2.kernel)
        d_in, hidden = w1.shape
        d_out = w2.shape[1]
        fc1 = resized_copy(mlp.fc1, (None, d_in), [w1[:, units], b1[units]],
                           units=len(units))
        fc2_weights = [w2[units]]
        if mlp.fc2.bias is not None:
            fc2_weights.append(ops.convert_to_numpy(mlp.fc2.bias))
        fc2 = resized_copy(mlp.fc2, (None, len(units)), fc2_weights)
        replace_sublayer(mlp, "fc1", fc1)
        replace_sublayer(mlp, "fc2", fc2)
        mlp.hidden_dim = len(units)
        summary[layer_key(model, mlp)] = {
            "hidden": (hidden, len(units)),
            "params_removed": (hidden - len(units)) * (d_in + 1 + d_out)}
    reset_compiled_functions(model)
    record_edit(model, "garden>prune_neurons", keep=done)
    return summary
