"""Point-MAE layers: mini-PointNet, positions before every block, decoder."""

import keras
import numpy as np

from garden.point_mae import MiniPointNet
from garden.point_mae import PointMAEBackbone
from garden.point_mae import PointMAEDecoder
from garden.point_mae import PositionalTransformer


def _rand(*shape, seed=0):
    return np.random.RandomState(seed).standard_normal(shape).astype(
        "float32")


def test_mini_pointnet_shapes_and_point_order_invariance():
    net = MiniPointNet((8, 16, 24), 12)
    patches = _rand(2, 5, 7, 3)
    out = net(patches)
    assert tuple(out.shape) == (2, 5, 12)
    # Max pooling over K: the order of the points in a patch is irrelevant.
    perm = np.random.RandomState(1).permutation(7)
    np.testing.assert_allclose(net(patches[:, :, perm]), out, atol=1e-5)
    # 4 Dense + 2 BatchNorm (gamma, beta trainable; statistics are not).
    h1, h2, h3, c = 8, 16, 24, 12
    expected = (4 * h1 + 2 * h1 + h1 * h2 + h2 + 2 * h2 * h3 + h3 + 2 * h3
                + h3 * c + c)
    trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
    assert trainable == expected
    assert len(net.non_trainable_weights) == 4  # BN moving mean/var x 2


def test_mini_pointnet_batchnorm_uses_torch_defaults():
    net = MiniPointNet((8, 16, 24), 12)
    assert net.bn1.epsilon == 1e-5 and net.bn1.momentum == 0.9


def test_position_embedding_is_added_before_every_block():
    """`x = block(x + pos)` for each block; a variant that adds the
    positions only once (the common reproduction bug) must differ."""
    stack = PositionalTransformer(depth=3, num_heads=2)
    x, pos = _rand(2, 6, 16, seed=2), _rand(2, 6, 16, seed=3)
    out = np.asarray(stack(x, pos))
    ref = x
    for block in stack.blocks:
        ref = block(ref + pos)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    once = x + pos
    for block in stack.blocks:
        once = block(once)
    assert np.max(np.abs(out - np.asarray(once))) > 1e-2


def test_transformer_blocks_match_the_official_block_settings():
    stack = PositionalTransformer(depth=4, num_heads=2, drop_path_rate=0.3)
    rates = [b.drop_path for b in stack.blocks]
    np.testing.assert_allclose(rates, [0.0, 0.1, 0.2, 0.3])
    for b in stack.blocks:
        assert b.qkv_bias is False
        assert b.layer_norm_epsilon == 1e-5
        assert b.activation == "gelu"


def test_decoder_returns_normalised_last_tokens_only():
    dec = PointMAEDecoder(num_masked=3, depth=1, num_heads=2)
    x, pos = _rand(2, 8, 16, seed=4), _rand(2, 8, 16, seed=5)
    out = np.asarray(dec(x, pos))
    assert out.shape == (2, 3, 16)
    full = dec.norm(dec.blocks(x, pos))
    np.testing.assert_allclose(out, np.asarray(full)[:, -3:], atol=1e-6)


def test_backbone_features_and_encoder_init():
    net = PointMAEBackbone(num_points=64, num_groups=8, group_size=8,
                           embed_dim=32, depth=2, num_heads=2,
                           patch_dims=(16, 32, 32), pos_hidden_dim=16)
    pts = _rand(2, 64, 3, seed=6)
    assert tuple(net(pts).shape) == (2, 8, 32)
    # MaskTransformer._init_weights: N(0, .02) kernels in the encoder.
    kernel = np.asarray(net.blocks.blocks[0].mlp.fc1.kernel)
    assert 0.015 < kernel.std() < 0.025
    # Every kernel is drawn separately (a shared unseeded Keras initializer
    # would repeat its values: q == k == v).
    attn = net.blocks.blocks[0].attn
    q, k, v = (np.asarray(d.kernel) for d in (
        attn.query_dense, attn.key_dense, attn.value_dense))
    assert not np.allclose(q, k) and not np.allclose(k, v)
    q_next = np.asarray(net.blocks.blocks[1].attn.query_dense.kernel)
    assert not np.allclose(q, q_next)
    conv = np.asarray(net.patch_embed.conv3.kernel)
    assert 0.015 < conv.std() < 0.025
    config = net.get_config()
    clone = PointMAEBackbone.from_config(config)
    assert clone.get_config() == config


def test_layers_serialise():
    for layer in (MiniPointNet((8, 16, 24), 12),
                  PositionalTransformer(depth=2, num_heads=2),
                  PointMAEDecoder(num_masked=3, depth=1, num_heads=2)):
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer))
        assert revived.get_config() == layer.get_config()
