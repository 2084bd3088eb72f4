"""PointMAEPretrainer: masking, targets, what the encoder sees, loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import garden
from garden.point_mae import point_mae_train
from official.ops import point_cloud

M, G, K, N = 9, 16, 16, 256  # tiny preset: int(0.6 * 16) = 9 masked


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = garden.build("point_mae", preset="tiny")
    m.build()
    return m


@pytest.fixture(scope="module")
def x():
    return garden.example_inputs("point_mae", preset="tiny", batch_size=3)


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _patches_np(points):
    """Independent NumPy grouping (FPS from 0 + kNN), centre-normalised."""
    out_nb, out_c = [], []
    for cloud in points.astype(np.float64):
        temp = np.full(len(cloud), 1e10)
        eligible = (cloud ** 2).sum(-1) > 1e-3
        idx = [0]
        for _ in range(G - 1):
            temp = np.minimum(temp, ((cloud - cloud[idx[-1]]) ** 2).sum(-1))
            idx.append(int(np.argmax(np.where(eligible, temp, -1))))
        c = cloud[idx]
        d = ((c[:, None] - cloud[None]) ** 2).sum(-1)
        nn = np.argsort(d, axis=1, kind="stable")[:, :K]
        out_nb.append(cloud[nn] - c[:, None])
        out_c.append(c)
    return np.array(out_nb), np.array(out_c)


def test_outputs_mask_and_targets(model, x):
    out = {k: _np(v) for k, v in model(x, training=False).items()}
    assert out["reconstruction"].shape == (3, M, K, 3)
    assert out["target"].shape == (3, M, K, 3)
    assert out["centers"].shape == (3, G, 3)
    assert out["mask"].shape == (3, G)
    # Exactly M masked per cloud: the M largest noise values.
    np.testing.assert_array_equal(out["mask"].sum(1), [M] * 3)
    top = np.argsort(-x["mask_noise"], axis=1)[:, :M]
    for b in range(3):
        assert set(np.flatnonzero(out["mask"][b])) == set(top[b])
    # Targets are the masked patches, centre-normalised, in group order.
    nb, centers = _patches_np(x["points"])
    np.testing.assert_allclose(out["centers"], centers, atol=1e-6)
    for b in range(3):
        masked = np.flatnonzero(out["mask"][b])
        np.testing.assert_allclose(out["target"][b], nb[b, masked],
                                   atol=1e-6)
        # Centre-normalised: adding the centre gives input points back, and
        # the centre itself sits at the patch origin.
        absolute = out["target"][b] + centers[b, masked][:, None]
        dist = ((absolute.reshape(-1, 1, 3) - x["points"][b][None]) ** 2
                ).sum(-1).min(1)
        assert dist.max() < 1e-10
        np.testing.assert_allclose(out["target"][b][:, 0], 0.0, atol=1e-7)


def test_loss_is_chamfer_l2_on_masked_patches_only(model, x):
    out = {k: _np(v) for k, v in model(x, training=False).items()}
    nb, _ = _patches_np(x["points"])
    rec = out["reconstruction"].reshape(-1, K, 3).astype(np.float64)
    masked = nb[out["mask"] > 0.5].reshape(-1, K, 3)
    d = ((rec[:, :, None] - masked[:, None]) ** 2).sum(-1)
    want = d.min(2).mean() + d.min(1).mean()  # ChamferDistanceL2
    got = float(model.compute_loss(x, None, model(x, training=False)))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Including the visible patches would give another number.
    every = nb.reshape(-1, K, 3)
    rec_all = np.concatenate([rec, every[:len(every) - len(rec)]])
    d_all = ((rec_all[:, :, None] - every[:, None]) ** 2).sum(-1)
    assert abs(d_all.min(2).mean() + d_all.min(1).mean() - want) > 1e-3
    # sample_weight weights clouds.
    weighted = float(model.task_loss(x, None, model(x, training=False),
                                     sample_weight=np.array([1., 0., 0.])))
    per_cloud = _np(model.patch_loss(out["reconstruction"], out["target"]))
    np.testing.assert_allclose(weighted, per_cloud[0] / 3, rtol=1e-5)


def _pieces(model, x):
    nb, centers = model.backbone.group(x["points"])
    mask, ids_vis, ids_mask = model.random_mask(x["mask_noise"])
    return _np(nb), _np(centers), _np(mask), ids_vis, ids_mask


def test_encoder_never_sees_masked_patches_or_centres(model, x):
    nb, centers, mask, ids_vis, _ = _pieces(model, x)
    base = _np(model.forward_encoder(nb, centers, ids_vis))
    assert base.shape == (3, G - M, 64)
    rng = np.random.RandomState(0)
    nb2, c2 = nb.copy(), centers.copy()
    nb2[mask > 0.5] = rng.standard_normal(nb2[mask > 0.5].shape)
    c2[mask > 0.5] = rng.standard_normal(c2[mask > 0.5].shape)
    np.testing.assert_array_equal(
        _np(model.forward_encoder(nb2, c2, ids_vis)), base)
    # The check can fail: changing a visible patch or centre does change it.
    vis = np.flatnonzero(mask[0] < 0.5)[0]
    nb3 = nb.copy()
    nb3[0, vis] += 0.1
    assert np.abs(_np(model.forward_encoder(nb3, centers, ids_vis))
                  - base).max() > 1e-4
    c3 = centers.copy()
    c3[0, vis] += 0.1
    assert np.abs(_np(model.forward_encoder(nb, c3, ids_vis))
                  - base).max() > 1e-4


def test_masked_patch_points_reach_only_the_target(model, x, monkeypatch):
    """Through `call`: replacing the points of the masked patches changes the
    target but not the reconstruction; moving a masked centre changes the
    reconstruction (the decoder gets masked centres, Sec. 3.3)."""
    nb, centers, mask, _, _ = _pieces(model, x)

    def run(nb_in, c_in):
        monkeypatch.setattr(model.backbone, "group", lambda points: (
            tf.constant(nb_in, tf.float32), tf.constant(c_in, tf.float32)))
        return {k: _np(v) for k, v in model(x, training=False).items()}

    base = run(nb, centers)
    nb2 = nb.copy()
    nb2[mask > 0.5] *= 1.7
    changed = run(nb2, centers)
    np.testing.assert_array_equal(changed["reconstruction"],
                                  base["reconstruction"])
    assert np.abs(changed["target"] - base["target"]).max() > 1e-3
    c2 = centers.copy()
    c2[mask > 0.5] += 0.2
    moved = run(nb, c2)
    assert np.abs(moved["reconstruction"] - base["reconstruction"]).max() \
        > 1e-4


def test_encoder_gets_only_visible_tokens(model, x, monkeypatch):
    seen = []
    original = model.backbone.encode

    def spy(tokens, pos, training=False):
        seen.append((tuple(tokens.shape), tuple(pos.shape)))
        return original(tokens, pos, training=training)

    monkeypatch.setattr(model.backbone, "encode", spy)
    model(x, training=False)
    assert seen == [((3, G - M, 64), (3, G - M, 64))]


def test_decoder_uses_the_position_embedding(model, x):
    base = _np(model(x, training=False)["reconstruction"])
    with point_mae_train.zero_decoder_positions(model):
        zeroed = _np(model(x, training=False)["reconstruction"])
    assert np.abs(zeroed - base).max() > 1e-4
    np.testing.assert_array_equal(
        _np(model(x, training=False)["reconstruction"]), base)  # restored


def test_inference_is_deterministic_and_training_masks_vary(model, x):
    points = x["points"]
    a = _np(model(points, training=False)["mask"])
    b = _np(model(points, training=False)["mask"])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a.sum(1), [M] * 3)
    # A cloud's inference output does not depend on the rest of its batch.
    alone = model(points[1:2], training=False)
    np.testing.assert_array_equal(_np(alone["mask"])[0], a[1])
    np.testing.assert_allclose(
        _np(alone["reconstruction"])[0],
        _np(model(points, training=False)["reconstruction"])[1], atol=1e-5)
    # Explicit noise decides the mask.
    flipped = {"points": points, "mask_noise": -x["mask_noise"]}
    m1 = _np(model(x, training=False)["mask"])
    m2 = _np(model(flipped, training=False)["mask"])
    assert not np.array_equal(m1, m2)
    # Training draws fresh masks from the SeedGenerator.
    masks = [_np(model(points, training=True)["mask"]) for _ in range(3)]
    assert not all(np.array_equal(masks[0], m) for m in masks[1:])
    for m in masks:
        np.testing.assert_array_equal(m.sum(1), [M] * 3)


def test_encode_gives_unmasked_features(model, x):
    feats = _np(model.encode(x["points"]))
    assert feats.shape == (3, G, 64)
    np.testing.assert_allclose(feats, _np(model.backbone(x["points"])),
                               atol=1e-6)


@pytest.mark.parametrize("bad,what", [
    (np.zeros((3, N), "float32"), "rank"),
    (np.zeros((3, N, 4), "float32"), "shape"),
    (np.zeros((3, N - 1, 3), "float32"), "shape"),
    (np.zeros((3, N, 3), "int32"), "dtype"),
])
def test_invalid_points_raise_value_error(model, bad, what):
    with pytest.raises(ValueError) as info:
        model({"points": bad}, training=False)
    message = str(info.value)
    assert "PointMAEPretrainer" in message and what in message, message
    with pytest.raises(ValueError, match="PointMAEPretrainer"):
        model.encode(bad)


def test_invalid_mask_noise_and_keys_raise_value_error(model, x):
    with pytest.raises(ValueError, match="PointMAEPretrainer.*mask_noise"):
        model({"points": x["points"], "mask_noise": np.zeros(
            (3, G + 1), "float32")})
    with pytest.raises(ValueError, match="PointMAEPretrainer"):
        model({"points": x["points"], "labels": np.zeros(3)})


def test_constructor_validation():
    with pytest.raises(ValueError, match="mask_ratio"):
        garden.build("point_mae", preset="tiny", mask_ratio=0.01)
    with pytest.raises(ValueError, match="loss"):
        garden.build("point_mae", preset="tiny", loss="emd")


def test_chamfer_l1_variant():
    keras.utils.set_random_seed(0)
    m = garden.build("point_mae", preset="tiny", loss="cdl1")
    x = garden.example_inputs("point_mae", preset="tiny")
    out = m(x, training=False)
    want = point_cloud.chamfer_l1(
        out["reconstruction"], out["target"]).numpy()
    np.testing.assert_allclose(float(m.compute_loss(x, None, out)), want,
                               rtol=1e-5)
