"""Official EcoFormer PVTv2 state dict -> `EcoformerPVTClassifier` weights.

`load_official_state(model, state)` takes the `state_dict()` of the official
`pvt_v2.PyramidVisionTransformerV2` built with `attn_type="ecoformer"`
(ziplab/EcoFormer@a277f9e; e.g. the released `pvtv2_b0_ecoformer.pth`,
`torch.load(...)["model"]`) as a dict of NumPy arrays and copies every
parameter and hash buffer into the Keras model:

* Conv2d (C_out, C_in, k, k) -> Keras (k, k, C_in, C_out); the depthwise
  `dwconv` (h, 1, 3, 3) -> (3, 3, h, 1); Linear (out, in) -> (in, out).
* Stage-4 softmax `attn.qkv` (3D, D) is split into the query/key/value
  projections of `MultiHeadAttention` (rows s*D + h*d + e, the official
  `reshape(B, N, 3, H, d)` order).
* `attn.fast_attention.ksh.A` (H, b, m) -> `hash_weights`, `.anchor`
  (1, H, m, d) -> `hash_anchors`, `.mvec` (1, H, 1, m) ->
  `hash_feature_mean`. The unused Performer `projection_matrix` is skipped.

Raises ValueError listing missing or unused keys, or on a shape mismatch.
"""

import numpy as np


def _linear(state, key):
    return [state[key + ".weight"].T, state[key + ".bias"]]


def _norm(state, key):
    return [state[key + ".weight"], state[key + ".bias"]]


def _set(layer, values, name):
    current = layer.get_weights()
    if len(current) != len(values) or any(
            tuple(a.shape) != tuple(np.shape(b))
            for a, b in zip(current, values)):
        raise ValueError(
            f"load_official_state: shape mismatch for '{name}': Keras "
            f"{[tuple(a.shape) for a in current]}, official "
            f"{[tuple(np.shape(b)) for b in values]}.")
    layer.set_weights([np.asarray(v, "float32") for v in values])


def official_weight_map(model, state):
    """(keras_layer, values, official_prefix) triples for `state`."""
    pairs = []
    for i, embed in enumerate(model.patch_embeds):
        key = f"patch_embed{i + 1}"
        w = state[key + ".proj.weight"].transpose(2, 3, 1, 0)
        pairs.append((embed.proj, [w, state[key + ".proj.bias"]],
                      key + ".proj"))
        pairs.append((embed.norm, _norm(state, key + ".norm"), key + ".norm"))
        for j, block in enumerate(model.stages[i]):
            key = f"block{i + 1}.{j}"
            pairs.append((block.norm1, _norm(state, key + ".norm1"),
                          key + ".norm1"))
            pairs.append((block.norm2, _norm(state, key + ".norm2"),
                          key + ".norm2"))
            mlp = block.mlp
            pairs.append((mlp.fc1, _linear(state, key + ".mlp.fc1"),
                          key + ".mlp.fc1"))
            pairs.append((mlp.fc2, _linear(state, key + ".mlp.fc2"),
                          key + ".mlp.fc2"))
            dw = state[key + ".mlp.dwconv.dwconv.weight"].transpose(2, 3, 0, 1)
            pairs.append((mlp.dwconv,
                          [dw, state[key + ".mlp.dwconv.dwconv.bias"]],
                          key + ".mlp.dwconv.dwconv"))
            attn = block.attn
            if block.attention_type == "ecoformer":
                for name in ("to_qk", "to_v", "proj"):
                    pairs.append((getattr(attn, name),
                                  _linear(state, f"{key}.attn.{name}"),
                                  f"{key}.attn.{name}"))
            else:
                w = state[key + ".attn.qkv.weight"]
                b = state[key + ".attn.qkv.bias"]
                d = w.shape[1]
                for s, dense in enumerate((attn.query_dense, attn.key_dense,
                                           attn.value_dense)):
                    pairs.append((dense, [w[s * d:(s + 1) * d].T,
                                          b[s * d:(s + 1) * d]],
                                  key + ".attn.qkv"))
                pairs.append((attn.output_dense,
                              _linear(state, key + ".attn.proj"),
                              key + ".attn.proj"))
        pairs.append((model.norms[i], _norm(state, f"norm{i + 1}"),
                      f"norm{i + 1}"))
    pairs.append((model.head, _linear(state, "head"), "head"))
    return pairs


def load_official_state(model, state):
    """Copies an official state dict (NumPy arrays) into `model`."""
    state = {k: np.asarray(v) for k, v in state.items()}
    if not model.built:
        model.build()
    used = set()
    try:
        pairs = official_weight_map(model, state)
        hashes = []
        for i, stage in enumerate(model.stages):
            for j, block in enumerate(stage):
                if block.attention_type != "ecoformer":
                    continue
                key = f"block{i + 1}.{j}.attn.fast_attention.ksh"
                hashes.append((block.attn.hash_params, key, [
                    ("hash_weights", state[key + ".A"]),
                    ("anchors", state[key + ".anchor"][0]),
                    ("feature_mean", state[key + ".mvec"][0, :, 0, :]),
                ]))
                used.update({key + ".A", key + ".anchor", key + ".mvec",
                             f"block{i + 1}.{j}.attn.fast_attention."
                             "projection_matrix"})
    except KeyError as err:
        raise ValueError(
            f"load_official_state: the state dict has no {err}; is it an "
            "EcoFormer PVTv2 (attn_type='ecoformer') of the same depth?"
        ) from None
    for layer, values, prefix in pairs:
        _set(layer, values, prefix)
        used.update({prefix + ".weight", prefix + ".bias"})
    for params, key, items in hashes:
        for name, value in items:
            var = params[name]
            if tuple(var.shape) != value.shape:
                raise ValueError(
                    f"load_official_state: '{key}' {name} has shape "
                    f"{value.shape}; the model expects {tuple(var.shape)}.")
            var.assign(value.astype("float32"))
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"load_official_state: unused official keys "
                         f"{unused[:8]}{' ...' if len(unused) > 8 else ''}.")


def transfer_from_msa(source, target):
    """Initialises an EcoFormer model from a trained softmax (MSA) one.

    The paper fine-tunes EcoFormer from a pretrained PVTv2 with softmax
    attention; official `main.py` (`--finetune`, `attn_type == "ecoformer"`)
    loads every parameter with the same name and, for the EcoFormer blocks,
    `to_qk` <- the query rows of `qkv`, `to_v` <- its value rows (the key
    rows are dropped) and `proj` <- `proj`. Here `source` and `target` are
    `EcoformerPVTClassifier`s of the same shape, `source` with "msa" where
    `target` has "ecoformer". The hash functions keep their values: fit
    them afterwards (`target.fit_hash_functions`).
    """
    for m in (source, target):
        if not m.built:
            m.build()
    for i, (src_stage, dst_stage) in enumerate(zip(source.stages,
                                                   target.stages)):
        if len(src_stage) != len(dst_stage):
            raise ValueError(f"transfer_from_msa: stage {i + 1} depths "
                             f"differ ({len(src_stage)}, {len(dst_stage)}).")
        for src, dst in zip(src_stage, dst_stage):
            for name in ("norm1", "norm2", "mlp"):
                getattr(dst, name).set_weights(getattr(src, name).get_weights())
            if dst.attention_type == src.attention_type:
                dst.attn.set_weights(src.attn.get_weights())
            elif (src.attention_type, dst.attention_type) == ("msa",
                                                              "ecoformer"):
                dst.attn.to_qk.set_weights(src.attn.query_dense.get_weights())
                dst.attn.to_v.set_weights(src.attn.value_dense.get_weights())
                dst.attn.proj.set_weights(src.attn.output_dense.get_weights())
            else:
                raise ValueError("transfer_from_msa: cannot map "
                                 f"{src.attention_type} -> "
                                 f"{dst.attention_type}.")
    for a, b in zip(source.patch_embeds + source.norms + [source.head],
                    target.patch_embeds + target.norms + [target.head]):
        b.set_weights(a.get_weights())
