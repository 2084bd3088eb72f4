"""Numerical parity with the official PyTorch Point-MAE.

The golden files in `data/` were written by running the official modules
(Pang-Yatian/Point-MAE@7445a68 `models/Point_MAE.py`, `Point_MAE` and
`PointTransformer`, eval mode, PyTorch 2.13 CPU) with CPU stand-ins for the
CUDA ops (pointnet2_ops FPS following `sampling_gpu.cu`: start at 0,
min-distance 1e10, |p|^2 <= 1e-3 skipped; brute-force kNN; brute-force
Chamfer) and with every state-dict entry set by `official_value(key,
shape)` below (NumPy, seeded by the key), so no weights need to be stored:
the test regenerates the same values and maps them into the Keras models
with `load_official_state`. The random mask of the official run is stored
and fed to our model as `mask_noise`.

Each file holds points (B, N, 3), mask (B, G) bool, loss (official
`ChamferDistanceL2`), rec (B, M, K, 3) the `increase_dim` output reshaped as
`rebuild_points`, centers (B, G, 3) and logits (B, n_cls).
"""

import os
import zlib

import numpy as np
import pytest

import garden

DATA = os.path.join(os.path.dirname(__file__), "data")


def official_value(key, shape):
    """The deterministic value given to official state-dict entry `key`."""
    rng = np.random.RandomState(zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return rng.uniform(0.5, 2.0, shape)
    if leaf == "running_mean":
        return rng.uniform(-0.3, 0.3, shape)
    if len(shape) == 1:
        if leaf == "weight":
            return rng.uniform(0.5, 1.5, shape)
        return rng.uniform(-0.2, 0.2, shape)
    if "token" in key or "cls_pos" in key:
        return rng.normal(0.0, 0.5, shape)
    fan_in = int(np.prod(shape[1:]))
    return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)


def _linear(key, in_dim, out_dim, conv=False):
    """Keras Dense (kernel, bias) from a torch Linear / Conv1d(k=1)."""
    shape = (out_dim, in_dim, 1) if conv else (out_dim, in_dim)
    w = official_value(key + ".weight", shape).reshape(out_dim, in_dim)
    return [w.T, official_value(key + ".bias", (out_dim,))]


def _norm(key, dim, batch_norm=False):
    values = [official_value(key + ".weight", (dim,)),
              official_value(key + ".bias", (dim,))]
    if batch_norm:
        values += [official_value(key + ".running_mean", (dim,)),
                   official_value(key + ".running_var", (dim,))]
    return values


def _dense_layer(layer, values):
    layer.set_weights([np.asarray(v, "float32") for v in values])


def _block(block, key, dim, heads):
    qkv = official_value(key + ".attn.qkv.weight", (3 * dim, dim))
    attn = block.attn
    for i, dense in enumerate((attn.query_dense, attn.key_dense,
                               attn.value_dense)):
        w = qkv[i * dim:(i + 1) * dim]  # rows: (head, head_dim)
        _dense_layer(dense, [w.T])  # (D_in, H*D_head): Linear layout
    proj = official_value(key + ".attn.proj.weight", (dim, dim))
    _dense_layer(attn.output_dense, [
        proj.T,
        official_value(key + ".attn.proj.bias", (dim,))])
    _dense_layer(block.norm1, _norm(key + ".norm1", dim))
    _dense_layer(block.norm2, _norm(key + ".norm2", dim))
    hidden = int(dim * block.mlp_ratio)
    _dense_layer(block.mlp.fc1, _linear(key + ".mlp.fc1", dim, hidden))
    _dense_layer(block.mlp.fc2, _linear(key + ".mlp.fc2", hidden, dim))


def _pos_mlp(mlp, key, hidden, dim):
    _dense_layer(mlp.fc1, _linear(key + ".0", 3, hidden))
    _dense_layer(mlp.fc2, _linear(key + ".2", hidden, dim))


def _backbone(bb, prefix):
    """`MAE_encoder.*` (pre-training) or the root (classifier) entries."""
    h1, h2, h3 = bb.patch_dims
    d = bb.embed_dim
    pn = bb.patch_embed
    enc = prefix + "encoder."
    _dense_layer(pn.conv1, _linear(enc + "first_conv.0", 3, h1, conv=True))
    _dense_layer(pn.bn1, _norm(enc + "first_conv.1", h1, batch_norm=True))
    _dense_layer(pn.conv2, _linear(enc + "first_conv.3", h1, h2, conv=True))
    _dense_layer(pn.conv3,
                 _linear(enc + "second_conv.0", 2 * h2, h3, conv=True))
    _dense_layer(pn.bn2, _norm(enc + "second_conv.1", h3, batch_norm=True))
    _dense_layer(pn.conv4, _linear(enc + "second_conv.3", h3, d, conv=True))
    _pos_mlp(bb.pos_embed, prefix + "pos_embed", bb.pos_hidden_dim, d)
    for i, block in enumerate(bb.blocks.blocks):
        _block(block, f"{prefix}blocks.blocks.{i}", d, bb.num_heads)
    _dense_layer(bb.norm, _norm(prefix + "norm", d))


def load_official_state(model):
    """Fills a built Point-MAE model with the official runs' values."""
    from garden.point_mae import PointMAEPretrainer

    d = model.embed_dim
    if isinstance(model, PointMAEPretrainer):
        _backbone(model.backbone, "MAE_encoder.")
        model.mask_token.assign(
            official_value("mask_token", (1, 1, d)).astype("float32"))
        _pos_mlp(model.decoder_pos_embed, "decoder_pos_embed",
                 model.pos_hidden_dim, d)
        for i, block in enumerate(model.decoder.blocks.blocks):
            _block(block, f"MAE_decoder.blocks.{i}", d,
                   model.decoder_num_heads)
        _dense_layer(model.decoder.norm, _norm("MAE_decoder.norm", d))
        _dense_layer(model.increase_dim, _linear(
            "increase_dim.0", d, 3 * model.group_size, conv=True))
        return model
    _backbone(model.backbone, "")
    model.cls_token.assign(
        official_value("cls_token", (1, 1, d)).astype("float32"))
    model.cls_pos.assign(official_value("cls_pos", (1, 1, d)).astype(
        "float32"))
    # cls_head_finetune: 0 Linear, 1 BN, (2 ReLU, 3 Dropout), 4 Linear, 5 BN,
    # (6, 7), 8 Linear.
    widths = [2 * d] + list(model.head_dims)
    dense = [layer for layer in model.head_layers
             if layer.name.startswith("head_dense")]
    bns = [layer for layer in model.head_layers
           if layer.name.startswith("head_bn")]
    for i, (dl, bn) in enumerate(zip(dense, bns)):
        _dense_layer(dl, _linear(f"cls_head_finetune.{4 * i}", widths[i],
                                 widths[i + 1]))
        _dense_layer(bn, _norm(f"cls_head_finetune.{4 * i + 1}",
                               widths[i + 1], batch_norm=True))
    _dense_layer(model.classifier, _linear(
        f"cls_head_finetune.{4 * len(dense)}", widths[-1],
        model.num_classes))
    return model


def _noise_for(mask, seed=0):
    """mask_noise whose M largest entries are exactly the masked groups."""
    rng = np.random.RandomState(seed)
    return (mask.astype("float32")
            + 0.5 * rng.uniform(size=mask.shape)).astype("float32")


def _check(preset, atol):
    ref = dict(np.load(os.path.join(DATA, f"official_{preset}.npz")))
    x = {"points": ref["points"], "mask_noise": _noise_for(ref["mask"])}
    mae = garden.build("point_mae", preset=preset)
    mae(x, training=False)
    load_official_state(mae)
    out = mae(x, training=False)
    np.testing.assert_array_equal(np.asarray(out["mask"]) > 0.5,
                                  ref["mask"])
    np.testing.assert_allclose(np.asarray(out["centers"]), ref["centers"],
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["reconstruction"]),
                               ref["rec"], atol=atol, rtol=0)
    loss = float(mae.compute_loss(x, None, out))
    np.testing.assert_allclose(loss, float(ref["loss"]), rtol=1e-4)

    cls = garden.build("point_mae_classifier", preset=preset)
    cls({"points": ref["points"]}, training=False)
    load_official_state(cls)
    logits = np.asarray(cls({"points": ref["points"]}, training=False))
    np.testing.assert_allclose(logits, ref["logits"], atol=atol, rtol=0)
    return out, logits


def test_tiny_matches_official_outputs():
    _check("tiny", atol=1e-5)


def test_parity_test_can_fail():
    """A one-value change in the mapping (q/k swapped in one block) must
    break parity, so the test above is discriminative."""
    ref = dict(np.load(os.path.join(DATA, "official_tiny.npz")))
    x = {"points": ref["points"], "mask_noise": _noise_for(ref["mask"])}
    mae = garden.build("point_mae", preset="tiny")
    mae(x, training=False)
    load_official_state(mae)
    attn = mae.backbone.blocks.blocks[0].attn
    q, k = attn.query_dense.get_weights(), attn.key_dense.get_weights()
    attn.query_dense.set_weights(k)
    attn.key_dense.set_weights(q)
    rec = np.asarray(mae(x, training=False)["reconstruction"])
    assert np.max(np.abs(rec - ref["rec"])) > 1e-2


@pytest.mark.large
def test_paper_matches_official_outputs():
    _check("paper", atol=2e-5)
