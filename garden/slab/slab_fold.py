"""Exact BatchNorm folding of a trained SLAB model (official `merge_bn`).

At inference PRepBN is RepBN with running statistics, a per-channel affine
map RepBN(x) = a * x + b (`RepBatchNorm.inference_affine`). Every norm in
SLAB-DeiT feeds linear layers only (norm1 -> the q/k/v projections, norm2 ->
MLP fc1, the final norm -> mean over tokens -> head; the residual stream
never sees the normalised tensor), so with y = x W + c:

    y = (a * x + b) W + c = x (diag(a) W) + (b W + c)

W' = diag(a) W, c' = b W + c, and the norm disappears. The mean over tokens
is linear and commutes with the per-channel affine map, so the final norm
folds into the head the same way. Exact in exact arithmetic; the folded
weights are computed in float64 and rounded once.
"""

import numpy as np

from garden.slab.slab_norms import ProgressiveRepBN
from garden.slab.slab_norms import RepBatchNorm


def norm_affine(layer):
    """(a, b) float64 with layer(x) = a * x + b at inference."""
    if isinstance(layer, ProgressiveRepBN):
        layer = layer.repbn
    if not isinstance(layer, RepBatchNorm):
        raise ValueError(
            "fold_batchnorm: only RepBN / PRepBN norms fold into a linear "
            f"layer (LayerNorm depends on each token); received "
            f"{type(layer).__name__}.")
    return layer.inference_affine()


def fold_affine_into_dense(a, b, kernel, bias=None):
    """Folds x -> a * x + b into y = x W + c; W is (D_in, D_out).

    Returns (W', c') = (diag(a) W, b W + c) as float64.
    """
    w = np.asarray(kernel, np.float64)
    c = np.zeros(w.shape[-1]) if bias is None else np.asarray(bias,
                                                              np.float64)
    return a[:, None] * w, b @ w + c


def _fold_into(a, b, src, dst):
    bias = src.bias.numpy() if getattr(src, "bias", None) is not None else None
    w, c = fold_affine_into_dense(a, b, src.kernel.numpy(), bias)
    dst.kernel.assign(w.astype(dst.kernel.dtype))
    dst.bias.assign(c.astype(dst.bias.dtype))


def fold_batchnorm(model):
    """A copy of a `SLABDeiT` with every RepBN/PRepBN folded away.

    The copy is built from `model`'s config with `norm_type="folded"`: it has
    no norm layers at all, and at inference it computes the same logits as
    `model(x, training=False)` (to float32 rounding). The source model is
    not modified.
    """
    if model.norm_type not in ("prepbn", "repbn"):
        raise ValueError(
            f"fold_batchnorm: model norm_type is {model.norm_type!r}; only "
            "'prepbn' and 'repbn' models fold ('layernorm' cannot: LN "
            "statistics depend on each token).")
    if not model.built:
        model.build()
    config = model.get_config()
    config["norm_type"] = "folded"
    folded = type(model).from_config(config)
    folded.build()
    folded.patch_embed.set_weights(model.patch_embed.get_weights())
    folded.pos_embed.assign(model.pos_embed)
    if model.unused_cls_token:
        folded.cls_token.assign(model.cls_token)
    for src, dst in zip(model.blocks, folded.blocks):
        a, b = norm_affine(src.norm1)
        for name in ("query_dense", "key_dense", "value_dense"):
            _fold_into(a, b, getattr(src.attn, name), getattr(dst.attn, name))
        dst.attn.output_dense.set_weights(src.attn.output_dense.get_weights())
        for key, var in src.attn.kernel_params.items():
            dst.attn.kernel_params[key].assign(var)
        a, b = norm_affine(src.norm2)
        _fold_into(a, b, src.mlp.fc1, dst.mlp.fc1)
        dst.mlp.fc2.set_weights(src.mlp.fc2.get_weights())
    a, b = norm_affine(model.norm)
    _fold_into(a, b, model.head, folded.head)
    return folded
