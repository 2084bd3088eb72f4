"""PointMAEClassifier: head, loss, loading the pretrained encoder."""

import keras
import numpy as np
import pytest

import garden

N = 256


def _np(t):
    return keras.ops.convert_to_numpy(t)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = garden.build("point_mae_classifier", preset="tiny")
    m.build()
    return m


@pytest.fixture(scope="module")
def points():
    return garden.example_inputs("point_mae_classifier", preset="tiny",
                                 batch_size=3)["points"]


def test_logits_from_dict_or_bare_tensor(model, points):
    a = _np(model({"points": points}, training=False))
    b = _np(model(points, training=False))
    assert a.shape == (3, 7)
    np.testing.assert_array_equal(a, b)


def test_feature_is_concat_of_cls_and_max_over_patches(model, points):
    bb = model.backbone
    nb, centers = bb.group(points)
    tokens = bb.embed(nb)
    pos = bb.pos_embed(centers)
    cls = np.broadcast_to(_np(model.cls_token), (3, 1, 64))
    cls_pos = np.broadcast_to(_np(model.cls_pos), (3, 1, 64))
    x = _np(bb.encode(np.concatenate([cls, _np(tokens)], 1),
                      np.concatenate([cls_pos, _np(pos)], 1)))
    want = np.concatenate([x[:, 0], x[:, 1:].max(1)], -1)
    np.testing.assert_allclose(_np(model.features(points)), want, atol=1e-5)
    # cls_pos is used (its own learnable position).
    saved = _np(model.cls_pos)
    # (Not a constant shift: LayerNorm removes the all-ones direction.)
    model.cls_pos.assign(saved + np.random.RandomState(0).standard_normal(
        saved.shape).astype("float32"))
    moved = _np(model.features(points))
    model.cls_pos.assign(saved)
    assert np.abs(moved - want).max() > 1e-3


def test_cls_token_and_cls_pos_are_initialised_separately(model):
    assert not np.allclose(_np(model.cls_token), _np(model.cls_pos))
    assert 0.01 < _np(model.cls_pos).std() < 0.03


def test_head_layers_follow_the_official_head(model):
    names = [type(layer).__name__ for layer in model.head_layers]
    assert names == ["Dense", "BatchNormalization", "ReLU", "Dropout"] * 2
    assert [layer.units for layer in model.head_layers[::4]] == [256, 256]
    assert model.head_layers[3].rate == 0.5
    assert model.head_layers[1].epsilon == 1e-5


def test_dropout_and_batchnorm_modes(model, points):
    a = _np(model(points, training=False))
    np.testing.assert_array_equal(a, _np(model(points, training=False)))
    assert np.abs(_np(model(points, training=True)) - a).max() > 1e-4


def test_task_loss_is_sparse_cross_entropy_from_logits(model, points):
    y = np.array([0, 3, 6])
    logits = _np(model(points, training=False)).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -logp[np.arange(3), y].mean()
    got = float(model.compute_loss(points, y, model(points, training=False)))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_load_encoder_weights_from_the_pretrainer(points):
    keras.utils.set_random_seed(1)
    mae = garden.build("point_mae", preset="tiny")
    mae.build()
    # Make BatchNorm statistics non-default, as after pre-training.
    bn = mae.backbone.patch_embed.bn1
    bn.moving_mean.assign(np.full(bn.moving_mean.shape, 0.3, "float32"))
    keras.utils.set_random_seed(2)
    cls = garden.build("point_mae_classifier", preset="tiny")
    assert np.abs(_np(cls.backbone(points)) - _np(mae.encode(points))
                  ).max() > 1e-3
    head_before = [w.copy() for w in cls.classifier.get_weights()]
    cls.load_encoder_weights(mae)
    np.testing.assert_allclose(_np(cls.backbone(points)),
                               _np(mae.encode(points)), atol=1e-6)
    np.testing.assert_array_equal(
        _np(cls.backbone.patch_embed.bn1.moving_mean), np.float32(0.3))
    for a, b in zip(cls.classifier.get_weights(), head_before):
        np.testing.assert_array_equal(a, b)  # the head is not touched


def test_load_encoder_weights_across_point_counts():
    """As the official ShapeNet-55 checkpoint feeds 1k/2k/8k fine-tuning."""
    mae = garden.build("point_mae", preset="tiny")
    cls = garden.build("point_mae_classifier", preset="tiny",
                       num_points=512, num_groups=32)
    cls.load_encoder_weights(mae)
    np.testing.assert_array_equal(
        _np(cls.backbone.norm.gamma), _np(mae.backbone.norm.gamma))
    assert tuple(cls(np.zeros((1, 512, 3), "float32")).shape) == (1, 7)


def test_load_encoder_weights_rejects_other_configs():
    mae = garden.build("point_mae", preset="tiny", depth=1)
    cls = garden.build("point_mae_classifier", preset="tiny")
    with pytest.raises(ValueError, match="PointMAEClassifier.*depth"):
        cls.load_encoder_weights(mae)


@pytest.mark.parametrize("bad,what", [
    (np.zeros((3, N), "float32"), "rank"),
    (np.zeros((3, N, 2), "float32"), "shape"),
    (np.zeros((3, 2 * N, 3), "float32"), "shape"),
    (np.zeros((3, N, 3), "int64"), "dtype"),
])
def test_invalid_inputs_raise_value_error(model, bad, what):
    with pytest.raises(ValueError) as info:
        model(bad, training=False)
    message = str(info.value)
    assert "PointMAEClassifier" in message and what in message, message
