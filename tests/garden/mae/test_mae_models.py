"""MAEPretrainer / MAEClassifier contracts: shapes, noise handling,
targets, input validation, encoder weight transfer."""

import keras
import numpy as np
import pytest
from keras import ops

import garden
from garden.mae import MAEClassifier
from garden.mae import MAEPretrainer
from garden.mae import patch_targets


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    model = garden.build("mae", preset="tiny")
    x = garden.example_inputs("mae", preset="tiny", batch_size=2, seed=0)
    model(x)
    return model, x


def _np(tree):
    return {k: ops.convert_to_numpy(v) for k, v in tree.items()}


def test_output_shapes(tiny):
    model, x = tiny
    out = _np(model(x, training=False))
    assert out["reconstruction"].shape == (2, 16, 48)
    assert out["target"].shape == (2, 16, 48)
    assert out["mask"].shape == (2, 16)
    assert set(np.unique(out["mask"])) == {0.0, 1.0}
    bare = _np(model(x["images"], training=False))  # a bare tensor works
    assert bare["reconstruction"].shape == (2, 16, 48)


def test_inference_is_deterministic_and_training_is_random(tiny):
    model, x = tiny
    images = x["images"]
    a = _np(model(images, training=False))
    b = _np(model(images, training=False))
    np.testing.assert_array_equal(a["mask"], b["mask"])
    np.testing.assert_array_equal(a["reconstruction"], b["reconstruction"])
    masks = [_np(model(images, training=True))["mask"] for _ in range(3)]
    assert any(not np.array_equal(masks[0], m) for m in masks[1:])


def test_mask_noise_decides_the_mask(tiny):
    model, x = tiny
    noise = x["mask_noise"]
    out = _np(model(x, training=True))  # given noise wins even in training
    expected = np.zeros_like(noise)
    order = np.argsort(noise, axis=1)
    np.put_along_axis(expected, order[:, 4:], 1.0, axis=1)
    np.testing.assert_array_equal(out["mask"], expected)
    flipped = _np(model(dict(x, mask_noise=1.0 - noise), training=False))
    assert not np.array_equal(flipped["mask"], out["mask"])


def test_target_is_patchified_image_and_unpatchify_inverts(tiny):
    model, x = tiny
    out = _np(model(x, training=False))
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.unpatchify(out["target"])), x["images"],
        atol=0)
    assert ops.convert_to_numpy(model.unpatchify(
        out["reconstruction"])).shape == (2, 16, 16, 3)


def test_norm_pix_target_matches_official_formula():
    images = np.random.default_rng(0).uniform(
        size=(2, 8, 8, 3)).astype("float32")
    target = ops.convert_to_numpy(patch_targets(images, 4, True))
    raw = ops.convert_to_numpy(patch_targets(images, 4, False))
    mean = raw.mean(-1, keepdims=True)
    var = raw.var(-1, ddof=1, keepdims=True)  # torch .var(): unbiased
    expected = (raw - mean) / (var + 1e-6) ** 0.5
    np.testing.assert_allclose(target, expected, atol=1e-5)
    biased = (raw - mean) / (raw.var(-1, keepdims=True) + 1e-6) ** 0.5
    assert np.abs(target - biased).max() > 1e-3  # the check can fail


def test_get_config_round_trip(tiny):
    model, x = tiny
    config = model.get_config()
    for key, value in garden.preset_info("mae", "tiny")["config"].items():
        assert config[key] == value
    clone = MAEPretrainer.from_config(config)
    clone(x)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(
        _np(clone(x, training=False))["reconstruction"],
        _np(model(x, training=False))["reconstruction"], atol=1e-6)


@pytest.mark.parametrize("bad,fragment", [
    (np.zeros((2, 16, 16), "float32"), "rank"),
    (np.zeros((2, 16, 16, 1), "float32"), "shape"),
    (np.zeros((2, 32, 32, 3), "float32"), "shape"),
    (np.zeros((2, 16, 16, 3), "int32"), "dtype"),
])
def test_pretrainer_input_validation(tiny, bad, fragment):
    model, _ = tiny
    with pytest.raises(ValueError) as info:
        model(bad)
    message = str(info.value)
    assert "MAEPretrainer" in message and fragment in message, message
    if fragment != "dtype":
        assert "(?, 16, 16, 3)" in message, message  # expected shape shown


def test_mask_noise_validation(tiny):
    model, x = tiny
    with pytest.raises(ValueError, match="MAEPretrainer.*mask_noise"):
        model(dict(x, mask_noise=np.zeros((2, 15), "float32")))
    with pytest.raises(ValueError, match="MAEPretrainer.*unknown inputs"):
        model(dict(x, labels=np.zeros((2,), "int32")))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEPretrainer(image_size=16, patch_size=4, hidden_dim=16,
                      mask_ratio=1.0)
    with pytest.raises(ValueError, match="divisible"):
        MAEPretrainer(image_size=18, patch_size=4, hidden_dim=16)


# ---------------------------------------------------------- classifier
def test_classifier_shapes_validation_and_loss():
    keras.utils.set_random_seed(0)
    clf = garden.build("mae_classifier", preset="tiny", label_smoothing=0.1)
    x = garden.example_inputs("mae_classifier", preset="tiny")
    y = garden.example_labels("mae_classifier", preset="tiny")
    logits = ops.convert_to_numpy(clf(x, training=False))
    assert logits.shape == (2, 10)
    assert ops.convert_to_numpy(clf(x["images"])).shape == (2, 10)
    loss = float(clf.task_loss(x, y, logits))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    soft = np.full((2, 10), 0.1 / 10)
    soft[np.arange(2), y] += 0.9
    assert loss == pytest.approx(float(-(soft * logp).sum(-1).mean()),
                                 rel=1e-5)
    with pytest.raises(ValueError, match="MAEClassifier.*int"):
        clf(np.zeros((2, 16, 16, 3), "int32"))
    with pytest.raises(ValueError, match="MAEClassifier.*rank"):
        clf(np.zeros((16, 16, 3), "float32"))


@pytest.mark.parametrize("global_pool", [True, False])
def test_classifier_loads_pretrained_encoder(tiny, global_pool):
    pre, x = tiny
    images = x["images"]
    clf = MAEClassifier.from_pretrainer(
        pre, num_classes=5, global_pool=global_pool, drop_path=0.0)
    tokens = ops.convert_to_numpy(pre.encoder(images))
    assert tokens.shape == (2, 17, 64)
    ours = ops.convert_to_numpy(clf.encoder(images))
    if global_pool:
        # No final norm in global-pool mode (upstream deletes `norm`).
        assert clf.encoder.norm is None
        ours = ops.convert_to_numpy(pre.encoder.norm(ours))
    np.testing.assert_allclose(ours, tokens, atol=1e-5)
    # Positions are trainable in the fine-tuning model, frozen in MAE.
    assert clf.encoder.pos_embed.trainable
    assert not pre.encoder.pos_embed.trainable
    # A fresh classifier differs (the transfer did something).
    fresh = MAEClassifier(**{**clf.get_config(), "name": "fresh"})
    fresh(images)
    assert np.abs(ops.convert_to_numpy(fresh.encoder(images)) - ops.
                  convert_to_numpy(clf.encoder(images))).max() > 1e-3
    fresh.load_encoder_weights(pre)
    np.testing.assert_allclose(
        ops.convert_to_numpy(fresh.encoder(images)),
        ops.convert_to_numpy(clf.encoder(images)), atol=1e-6)


def test_classifier_refuses_mismatched_encoder(tiny):
    pre, _ = tiny
    clf = garden.build("mae_classifier", preset="tiny", hidden_dim=32)
    with pytest.raises(ValueError, match="MAEClassifier.*hidden_dim"):
        clf.load_encoder_weights(pre)
    with pytest.raises(ValueError, match="expects an MAEPretrainer"):
        clf.load_encoder_weights(object())
