"""Official SLAB-DeiT state dict -> `SLABDeiT` weights.

`load_official_state(model, state)` takes the `state_dict()` of the official
`slab_deit.VisionTransformer` (xinghaochen/SLAB `classification/models/
slab_deit.py`, e.g. the released `slab_deit_tiny.pth`, `torch.load(...)
["model"]`) as a dict of NumPy arrays and copies every parameter and buffer:

* `patch_embed.proj.weight` (D, C, p, p) -> the (p*p*C, D) Dense kernel of
  `PatchEmbedding` (patch vectors ordered row, column, channel);
  Linear (out, in) -> (in, out); the fused `attn.qkv` (3D, D) -> the q, k, v
  projections (rows s*D + h*d + e: `reshape(B, N, 3, C)` then heads).
* `attn.dwc.weight` (h, 1, k, k) -> `dwc_kernel` (k, k, h, 1);
  `attn.positional_encoding` (1, N, D) -> `key_position` (N, H, h).
* `LinearNorm`: `norm1` (LayerNorm) -> `layer_norm`, `norm2` (RepBN:
  `alpha`, `bn.weight/bias/running_mean/running_var`) -> `repbn`; the
  count-down buffers `warm` and `iter` -> the count-up `step`
  (= warm_steps - warm + total_step - iter; `total_step` must equal the
  model's `total_steps`). `num_batches_tracked` is not used.
* `cls_token` only if the model keeps `unused_cls_token`.

Raises ValueError listing missing or unused keys, or on a shape mismatch.
"""

import numpy as np


def _t(state, key):
    return np.asarray(state[key]).T


def _assign(var, value, name):
    value = np.asarray(value)
    if tuple(var.shape) != value.shape:
        raise ValueError(
            f"load_official_state: shape mismatch for '{name}': Keras "
            f"{tuple(var.shape)}, official {value.shape}.")
    var.assign(value.astype(var.dtype))


def _norm_pairs(layer, state, key, total_steps, warm_steps):
    ln, bn = layer.layer_norm, layer.repbn
    if int(np.asarray(state[key + ".total_step"])) != total_steps:
        raise ValueError(
            f"load_official_state: '{key}.total_step' is "
            f"{int(np.asarray(state[key + '.total_step']))}, the model's "
            f"total_steps is {total_steps}.")
    step = (warm_steps - float(np.asarray(state[key + ".warm"]))
            + total_steps - float(np.asarray(state[key + ".iter"])))
    return [
        (ln.gamma, state[key + ".norm1.weight"], key + ".norm1.weight"),
        (ln.beta, state[key + ".norm1.bias"], key + ".norm1.bias"),
        (bn.alpha, state[key + ".norm2.alpha"], key + ".norm2.alpha"),
        (bn.gamma, state[key + ".norm2.bn.weight"], key + ".norm2.bn.weight"),
        (bn.beta, state[key + ".norm2.bn.bias"], key + ".norm2.bn.bias"),
        (bn.moving_mean, state[key + ".norm2.bn.running_mean"],
         key + ".norm2.bn.running_mean"),
        (bn.moving_variance, state[key + ".norm2.bn.running_var"],
         key + ".norm2.bn.running_var"),
        (layer.step, np.float32(step), key + ".iter"),
    ]


def official_weight_map(model, state):
    """(keras_variable, value, official_key) triples for `state`."""
    if model.norm_type != "prepbn" or model.attention_kernel != "linear_relu":
        raise ValueError(
            "load_official_state: the official SLAB-DeiT has PRepBN norms and "
            "SLA attention; received norm_type="
            f"{model.norm_type!r}, attention_kernel="
            f"{model.attention_kernel!r}.")
    if not model.built:
        model.build()
    d = model.hidden_dim
    heads, hd = model.num_heads, model.hidden_dim // model.num_heads
    conv = np.asarray(state["patch_embed.proj.weight"])  # (D, C, p, p)
    pairs = [
        (model.patch_embed.proj.kernel,
         conv.transpose(2, 3, 1, 0).reshape(-1, d), "patch_embed.proj.weight"),
        (model.patch_embed.proj.bias, state["patch_embed.proj.bias"],
         "patch_embed.proj.bias"),
        (model.pos_embed, state["pos_embed"], "pos_embed"),
        (model.head.kernel, _t(state, "head.weight"), "head.weight"),
        (model.head.bias, state["head.bias"], "head.bias"),
    ]
    if model.unused_cls_token:
        pairs.append((model.cls_token, state["cls_token"], "cls_token"))
    norm_args = (model.total_steps, model.warm_steps)
    pairs += _norm_pairs(model.norm, state, "norm", *norm_args)
    for i, block in enumerate(model.blocks):
        key = f"blocks.{i}"
        pairs += _norm_pairs(block.norm1, state, key + ".norm1", *norm_args)
        pairs += _norm_pairs(block.norm2, state, key + ".norm2", *norm_args)
        attn = block.attn
        qkv_w = np.asarray(state[key + ".attn.qkv.weight"])
        qkv_b = np.asarray(state[key + ".attn.qkv.bias"])
        for s, proj in enumerate((attn.query_dense, attn.key_dense,
                                  attn.value_dense)):
            pairs.append((proj.kernel, qkv_w[s * d:(s + 1) * d].T,
                          key + ".attn.qkv.weight"))
            pairs.append((proj.bias, qkv_b[s * d:(s + 1) * d],
                          key + ".attn.qkv.bias"))
        pairs += [
            (attn.output_dense.kernel, _t(state, key + ".attn.proj.weight"),
             key + ".attn.proj.weight"),
            (attn.output_dense.bias, state[key + ".attn.proj.bias"],
             key + ".attn.proj.bias"),
            (attn.kernel_params["dwc_kernel"],
             np.asarray(state[key + ".attn.dwc.weight"]).transpose(
                 2, 3, 0, 1), key + ".attn.dwc.weight"),
            (attn.kernel_params["dwc_bias"], state[key + ".attn.dwc.bias"],
             key + ".attn.dwc.bias"),
            (attn.kernel_params["key_position"],
             np.asarray(state[key + ".attn.positional_encoding"]).reshape(
                 -1, heads, hd), key + ".attn.positional_encoding"),
            (block.mlp.fc1.kernel, _t(state, key + ".mlp.fc1.weight"),
             key + ".mlp.fc1.weight"),
            (block.mlp.fc1.bias, state[key + ".mlp.fc1.bias"],
             key + ".mlp.fc1.bias"),
            (block.mlp.fc2.kernel, _t(state, key + ".mlp.fc2.weight"),
             key + ".mlp.fc2.weight"),
            (block.mlp.fc2.bias, state[key + ".mlp.fc2.bias"],
             key + ".mlp.fc2.bias"),
        ]
    return pairs


def load_official_state(model, state):
    """Copies an official SLAB-DeiT state dict (NumPy arrays) into `model`."""
    try:
        pairs = official_weight_map(model, state)
    except KeyError as err:
        raise ValueError(
            f"load_official_state: missing official key {err}.") from None
    used = {key for _, _, key in pairs}
    used |= {k.rsplit(".", 1)[0] + ".warm" for k in used if k.endswith(
        ".iter")}
    used |= {k.rsplit(".", 1)[0] + ".total_step" for k in used if k.endswith(
        ".iter")}
    ignored = {k for k in state if k.endswith(".num_batches_tracked")}
    if not model.unused_cls_token:
        ignored.add("cls_token")
    unused = sorted(set(state) - used - ignored)
    if unused:
        raise ValueError(f"load_official_state: unused keys {unused}.")
    for var, value, key in pairs:
        _assign(var, value, key)
    return model
