"""MAE building blocks against NumPy re-implementations of the official code.

References: facebookresearch/mae `util/pos_embed.py` (sin-cos table),
`models_mae.py` (`patchify`, `_init_weights`).
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from garden.mae.mae_layers import MAEAttention
from garden.mae.mae_layers import MAEBlock
from garden.mae.mae_layers import SinCos2DInitializer
from garden.mae.mae_layers import TorchXavierUniform
from official.layers.patch_embedding import PatchEmbedding
from official.layers.patch_embedding import patchify
from official.layers.patch_embedding import unpatchify


# ---------------------------------------------------------- pos_embed.py
def _official_1d(embed_dim, pos):
    # util/pos_embed.get_1d_sincos_pos_embed_from_grid (np.float = float64)
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    pos = pos.reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def _official_2d(embed_dim, grid_size, cls_token=False):
    # util/pos_embed.get_2d_sincos_pos_embed, line by line.
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    emb_h = _official_1d(embed_dim // 2, grid[0])
    emb_w = _official_1d(embed_dim // 2, grid[1])
    pos_embed = np.concatenate([emb_h, emb_w], axis=1)
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], 0)
    return pos_embed


@pytest.mark.parametrize("dim,grid", [(64, 4), (48, 8), (768, 14)])
def test_sincos_table_matches_official_formula(dim, grid):
    table = ops.convert_to_numpy(
        SinCos2DInitializer(grid, cls_token=True)((1, grid * grid + 1, dim)))
    expected = _official_2d(dim, grid, cls_token=True).astype(np.float32)
    np.testing.assert_allclose(table[0], expected, atol=1e-6, rtol=0)
    # The layout is not symmetric in (h, w): a transposed grid must differ,
    # so the comparison above can fail.
    transposed = expected[1:].reshape(grid, grid, dim).transpose(1, 0, 2)
    assert np.abs(table[0, 1:] - transposed.reshape(-1, dim)).max() > 0.5


def test_sincos_initializer_rejects_wrong_shape():
    with pytest.raises(ValueError, match="does not match"):
        SinCos2DInitializer(4)((1, 10, 8))


# ------------------------------------------------------------- patchify
def _official_patchify(imgs_nhwc, p):
    imgs = imgs_nhwc.transpose(0, 3, 1, 2)  # NCHW as in PyTorch
    n, c, h, _ = imgs.shape
    g = h // p
    x = imgs.reshape(n, c, g, p, g, p)
    x = np.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, g * g, p * p * c)


def test_patchify_matches_official_layout_and_inverts():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 12, 12, 3)).astype("float32")
    patches = ops.convert_to_numpy(patchify(images, 4))
    np.testing.assert_array_equal(patches, _official_patchify(images, 4))
    back = ops.convert_to_numpy(unpatchify(patches, 4, 3, 3))
    np.testing.assert_array_equal(back, images)


def test_patch_embedding_is_a_linear_map_of_patches():
    layer = PatchEmbedding(4, 8)
    images = np.random.default_rng(1).normal(size=(1, 8, 8, 3))
    out = ops.convert_to_numpy(layer(images.astype("float32")))
    assert out.shape == (1, 4, 8)
    kernel = ops.convert_to_numpy(layer.proj.kernel)
    assert kernel.shape == (48, 8)  # p*p*C x D: Conv2d(k=p, s=p) params
    expected = _official_patchify(images, 4) @ kernel
    np.testing.assert_allclose(out, expected, atol=1e-5)


# --------------------------------------------------------- initialisation
def test_torch_xavier_uniform_bounds_and_fresh_draws():
    init = TorchXavierUniform(10, 30)
    a = ops.convert_to_numpy(init((10, 30)))
    b = ops.convert_to_numpy(init((10, 30)))
    limit = math.sqrt(6 / 40)
    assert np.abs(a).max() <= limit and np.abs(a).max() > 0.9 * limit
    assert not np.array_equal(a, b)  # shared instance, distinct kernels


def test_attention_uses_fused_qkv_and_proj_fans():
    """q/k/v: Linear(D, 3D) fans; proj: Linear(D, D); all distinct draws."""
    dim, heads = 64, 4
    attn = MAEAttention(heads, dim // heads)
    attn.build((None, 5, dim))
    kernels = [ops.convert_to_numpy(d.kernel) for d in
               (attn.query_dense, attn.key_dense, attn.value_dense)]
    qkv_limit = math.sqrt(6 / (dim + 3 * dim))
    for k in kernels:
        assert 0.9 * qkv_limit < np.abs(k).max() <= qkv_limit
    assert not np.array_equal(kernels[0], kernels[1])
    assert not np.array_equal(kernels[1], kernels[2])
    out = ops.convert_to_numpy(attn.output_dense.kernel)
    proj_limit = math.sqrt(6 / (2 * dim))
    assert 0.9 * proj_limit < np.abs(out).max() <= proj_limit


def test_block_mlp_kernels_are_distinct_xavier():
    block = MAEBlock(num_heads=2)
    block.build((None, 3, 16))
    fc1 = ops.convert_to_numpy(block.mlp.fc1.kernel)
    fc2 = ops.convert_to_numpy(block.mlp.fc2.kernel)
    assert not np.array_equal(fc1.ravel(), fc2.ravel())
    limit = math.sqrt(6 / (16 + 64))
    assert 0.9 * limit < np.abs(fc1).max() <= limit
    # timm Block parameter count: 12 D^2 + 13 D.
    count = sum(int(np.prod(w.shape)) for w in block.trainable_weights)
    assert count == 12 * 16**2 + 13 * 16


def test_block_equals_transformer_block_maths():
    """MAEBlock only changes initialisation: same weights, same outputs as
    the official TransformerBlock."""
    from official.layers.transformer_block import TransformerBlock

    x = np.random.default_rng(2).normal(size=(2, 5, 16)).astype("float32")
    ours = MAEBlock(num_heads=2)
    ref = TransformerBlock(num_heads=2)
    ours.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        ops.convert_to_numpy(ours(x)), ops.convert_to_numpy(ref(x)),
        atol=1e-6)
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [
        w.path.split("/", 1)[1] for w in ref.weights]


def test_initializers_serialize():
    for init in (TorchXavierUniform(3, 4, seed=1), SinCos2DInitializer(2)):
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(init))
        assert revived.get_config() == init.get_config()
