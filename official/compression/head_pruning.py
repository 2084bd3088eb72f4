"""Structured attention-head pruning (survey T7; Michel et al. 2019, "Are
Sixteen Heads Really Better than One?", sec. 4; spec 2.2, 2.3 check 5).

Head gates. Michel et al. put a gate xi_h (= 1) on each head's output
before the output projection W_O and score a head by
I_h = E_x |dL/dxi_h|. In `official.attention.MultiHeadAttention` the head
outputs o (B, T, H*d) meet W_O (H*d, D) in one product, and
(o * xi) W_O = o (diag(xi) W_O), so a gate is exactly a scaling of head h's
d rows of W_O. Hence
  dL/dxi_h (at xi = 1) = sum_{i in rows of h, j} W_O[i, j] dL/dW_O[i, j],
computed from the gradient of the output kernel alone: no extra variable
and no change to the model (`head_importance`). `head_gates(model, gates)`
applies arbitrary gates the same way (and restores W_O on exit), so a model
"with gates xi_h = 0 for pruned heads" is W_O with those rows zeroed.

Importance: |dL/dxi_h| of each calibration batch's mean loss, averaged
over batches (Michel et al. accumulate per batch as well), optionally
L2-normalised per layer (their sec. 4.2, after Molchanov et al. 2017).

Physical pruning (`prune_heads`): keep heads S, slice
W_Q' = W_Q[:, S, :], W_K', W_V' likewise (plus biases), W_O' = W_O[S, :, :]
and set `num_heads = |S|`. With grouped-query attention
(`num_kv_heads < num_heads`, query head h reads KV head h // (H / H_kv))
whole groups are kept or removed. The sliced model equals the gated model
(xi = 1 on S, 0 elsewhere) up to float rounding; parameters drop by
(number of removed query heads) * (D_q d [+ d] + d D_out) plus
(removed KV heads) * 2 (D_kv d [+ d]).
"""

import contextlib

import numpy as np
from keras import ops

from official.attention import MultiHeadAttention
from official.compression.gradients import sparse_logits_loss
from official.compression.gradients import value_and_gradients
from official.compression.layer_keys import index_layers
from official.compression.layer_keys import layer_key
from official.compression.layer_keys import resolve
from official.compression.surgery import record_edit
from official.compression.surgery import replace_sublayer
from official.compression.surgery import replayable_edit
from official.compression.surgery import reset_compiled_functions
from official.compression.surgery import resized_copy


def attention_layers(model):
    """Every `official.attention.MultiHeadAttention` of `model`, in order."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, MultiHeadAttention)]


def _head_rows(layer, w):
    """(H*d, D) output kernel -> (H, d, D)."""
    return np.reshape(w, (layer.num_heads, layer.key_dim, -1))


def head_importance(model, batches, loss_fn=None, normalize=True):
    """I_h = mean over batches of |dL/dxi_h| for every attention layer.

    Args:
        model: a built Keras model.
        batches: iterable of (x, y).
        loss_fn: `loss_fn(model, x, y) -> scalar`; default: mean sparse
            cross-entropy of the model's logits.
        normalize: divide each layer's scores by their L2 norm.

    Returns:
        dict layer key (path without the model name, see
        `official.compression.layer_keys`) -> (H,) float64 importance.
    """
    loss_fn = loss_fn or sparse_logits_loss
    layers = attention_layers(model)
    if not layers:
        raise ValueError("head_importance: the model has no "
                         "official.attention.MultiHeadAttention.")
    kernels = [layer.output_dense.kernel for layer in layers]
    totals = [np.zeros(layer.num_heads) for layer in layers]
    count = 0
    for x, y in batches:
        _, grads = value_and_gradients(lambda: loss_fn(model, x, y), kernels)
        for i, (layer, k, g) in enumerate(zip(layers, kernels, grads)):
            w = _head_rows(layer, ops.convert_to_numpy(k).astype(np.float64))
            gw = _head_rows(layer, ops.convert_to_numpy(g).astype(np.float64))
            totals[i] += np.abs(np.sum(w * gw, axis=(1, 2)))
        count += 1
    if count == 0:
        raise ValueError("head_importance: `batches` is empty.")
    out = {}
    for layer, total in zip(layers, totals):
        score = total / count
        if normalize:
            score = score / max(np.linalg.norm(score), 1e-20)
        out[layer_key(model, layer)] = score
    return out


@contextlib.contextmanager
def head_gates(model, gates):
    """Applies head gates {layer key: (H,) values} by scaling W_O rows;
    restores the original W_O on exit."""
    layers = index_layers(model, attention_layers(model))
    saved = []
    try:
        for path, xi in gates.items():
            layer = resolve(model, layers, path)
            kernel = layer.output_dense.kernel
            w = ops.convert_to_numpy(kernel)
            saved.append((kernel, w.copy()))
            scale = np.repeat(np.asarray(xi, w.dtype), layer.key_dim)
            kernel.assign(w * scale[:, None])
        yield
    finally:
        for kernel, w in saved:
            kernel.assign(w)


def keep_to_gates(model, keep):
    """{key: kept heads} -> {key: (H,) 0/1 gates}."""
    layers = index_layers(model, attention_layers(model))
    gates = {}
    for path, heads in keep.items():
        xi = np.zeros(resolve(model, layers, path).num_heads, "float32")
        xi[list(heads)] = 1.0
        gates[path] = xi
    return gates


def select_heads(model, importance, keep_fraction=0.5, scope="layer",
                 min_heads=1):
    """Heads to keep: the most important ones.

    Args:
        importance: dict path -> (H,) scores (`head_importance`).
        keep_fraction: fraction of heads kept (rounded, at least
            `min_heads` per layer).
        scope: "layer" (the same count per layer) or "global" (one ranking
            over all layers; Michel et al.'s iterative pruning ranks
            globally).
    With grouped-query layers whole KV groups are ranked (by the sum of
    their heads' scores) and kept.

    Returns:
        dict key -> sorted list of kept query-head indices.
    """
    layers = index_layers(model, attention_layers(model))
    units = {}  # key -> (group size, (G,) group scores)
    for path, score in importance.items():
        layer = resolve(model, layers, path)
        r = layer.num_heads // layer.num_kv_heads
        units[path] = (r, np.asarray(score).reshape(-1, r).sum(axis=1))
    min_units = {p: int(np.ceil(min_heads / r)) for p, (r, _) in
                 units.items()}
    kept_units = {}
    if scope == "layer":
        for path, (r, s) in units.items():
            n = max(min_units[path], int(round(keep_fraction * len(s))))
            kept_units[path] = np.argsort(-s, kind="stable")[:n]
    elif scope == "global":
        total = sum(len(s) for _, s in units.values())
        budget = int(round(keep_fraction * total))
        kept_units = {p: list(np.argsort(-s, kind="stable")[:min_units[p]])
                      for p, (_, s) in units.items()}
        budget -= sum(len(v) for v in kept_units.values())
        rest = sorted(((-s[g], p, g) for p, (_, s) in units.items()
                       for g in range(len(s)) if g not in kept_units[p]))
        for _, p, g in rest[:max(budget, 0)]:
            kept_units[p].append(g)
    else:
        raise ValueError(f"scope must be 'layer' or 'global'; got "
                         f"'{scope}'.")
    keep = {}
    for path, groups in kept_units.items():
        r = units[path][0]
        keep[path] = sorted(int(g) * r + j for g in groups for j in range(r))
    return keep


def _kv_groups(layer, heads):
    r = layer.num_heads // layer.num_kv_heads
    groups = sorted({h // r for h in heads})
    if sorted(heads) != [g * r + j for g in groups for j in range(r)]:
        raise ValueError(
            f"prune_heads: '{layer.path}' has {layer.num_kv_heads} KV heads "
            f"for {layer.num_heads} query heads; keep whole groups of {r} "
            f"query heads (got {sorted(heads)}).")
    return groups


def predicted_parameter_reduction(layer, heads):
    """Parameters removed from `layer` when keeping query heads `heads`."""
    groups = _kv_groups(layer, heads)
    d = layer.key_dim
    bias = d if layer.qkv_bias else 0
    d_q = layer.query_dense.kernel.shape[0]
    d_v = layer.value_dense.kernel.shape[0]
    d_out = layer.output_dense.kernel.shape[1]
    removed_q = layer.num_heads - len(heads)
    removed_kv = layer.num_kv_heads - len(groups)
    removed = removed_q * (d_q * d + bias + d * d_out)
    removed += removed_kv * (d_v * d + bias)
    if layer.key_dense is not None:  # None: shared-QK kernels (`lsh`)
        removed += removed_kv * (layer.key_dense.kernel.shape[0] * d + bias)
    return removed


def _slice_projection(dense, heads, key_dim):
    """q/k/v EinsumDense "nd,de->ne" keeping heads (columns h*d..)."""
    kernel = ops.convert_to_numpy(dense.kernel)
    d_in = kernel.shape[0]
    kernel = kernel.reshape(d_in, -1, key_dim)[:, heads, :]
    weights = [kernel.reshape(d_in, -1)]
    if dense.bias is not None:
        bias = ops.convert_to_numpy(dense.bias).reshape(-1, key_dim)
        weights.append(bias[heads].reshape(-1))
    width = len(heads) * key_dim
    return resized_copy(dense, (None, d_in), weights,
                        output_shape=[width])


def _slice_output(dense, heads, key_dim):
    """Output EinsumDense "ne,ed->nd" keeping heads (rows h*d..)."""
    kernel = ops.convert_to_numpy(dense.kernel)
    d_out = kernel.shape[1]
    kernel = kernel.reshape(-1, key_dim, d_out)[heads].reshape(-1, d_out)
    weights = [kernel]
    if dense.bias is not None:
        weights.append(ops.convert_to_numpy(dense.bias))
    return resized_copy(dense, (None, kernel.shape[0]), weights)


@replayable_edit("prune_heads")
def prune_heads(model, keep):
    """Physically removes the heads not in `keep` (key -> kept heads).

    Modifies the model in place; recompile before training further. On a
    `GardenModel` the edit is recorded, so its `.keras` file reloads
    sliced (`official.compression.surgery`).

    Returns:
        dict key -> {"heads": (before, after), "params_removed": int}.
    """
    layers = index_layers(model, attention_layers(model))
    summary, done = {}, {}
    for path, heads in keep.items():
        layer = resolve(model, layers, path)
        heads = sorted(int(h) for h in heads)
        done[layer_key(model, layer)] = heads
        if not heads:
            raise ValueError(f"prune_heads: keep at least one head in "
                             f"'{path}'.")
        if layer.kernel_params:
            raise ValueError(
                f"prune_heads: kernel '{layer.kernel}' of '{path}' owns "
                "per-head weights; slicing them is not supported.")
        groups = _kv_groups(layer, heads)
        removed = predicted_parameter_reduction(layer, heads)
        before = layer.num_heads
        d = layer.key_dim
        new = {
            "query_dense": _slice_projection(layer.query_dense, heads, d),
            "value_dense": _slice_projection(layer.value_dense, groups, d),
            "output_dense": _slice_output(layer.output_dense, heads, d),
        }
        if layer.key_dense is not None:  # None: shared-QK kernels (`lsh`)
            new["key_dense"] = _slice_projection(layer.key_dense, groups, d)
        for attribute, sub in new.items():
            replace_sublayer(layer, attribute, sub)
        layer.num_heads = len(heads)
        layer.num_kv_heads = len(groups)
        summary[layer_key(model, layer)] = {"heads": (before, len(heads)),
                         "params_removed": removed}
    reset_compiled_functions(model)
    record_edit(model, "garden>prune_heads", keep=done)
    return summary
