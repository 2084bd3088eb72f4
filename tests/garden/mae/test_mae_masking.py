"""Random masking (paper §3 "Masking"; `random_masking` in models_mae.py)
and what the encoder and the loss may see."""

import numpy as np
import pytest
from keras import ops

import garden
from garden.mae import masked_patch_loss
from garden.mae import random_masking
from garden.mae.mae_pretrainer import num_visible


def _official_masking(noise, len_keep):
    """models_mae.random_masking in NumPy (argsort, ones, unshuffle)."""
    ids_shuffle = np.argsort(noise, axis=1, kind="stable")
    ids_restore = np.argsort(ids_shuffle, axis=1, kind="stable")
    mask = np.ones_like(noise)
    mask[:, :len_keep] = 0
    mask = np.take_along_axis(mask, ids_restore, axis=1)
    return ids_shuffle[:, :len_keep], ids_restore, mask


@pytest.mark.parametrize("num_patches,ratio", [(16, 0.75), (196, 0.75),
                                               (64, 0.5), (10, 0.33)])
def test_masking_matches_official(num_patches, ratio):
    keep = num_visible(num_patches, ratio)
    assert keep == int(num_patches * (1 - ratio))
    noise = np.random.default_rng(0).uniform(size=(4, num_patches))
    ids_keep, ids_restore, mask = (ops.convert_to_numpy(t) for t in
                                   random_masking(noise.astype("float32"),
                                                  keep))
    ref_keep, ref_restore, ref_mask = _official_masking(noise, keep)
    np.testing.assert_array_equal(ids_keep, ref_keep)
    np.testing.assert_array_equal(ids_restore, ref_restore)
    np.testing.assert_array_equal(mask, ref_mask)
    # Exactly `keep` visible patches per sample, the kept ones unmasked.
    np.testing.assert_array_equal((1 - mask).sum(1), keep)
    assert np.all(np.take_along_axis(mask, ids_keep, 1) == 0)
    # ids_restore undoes the shuffle.
    shuffled = np.take_along_axis(np.arange(num_patches)[None].repeat(4, 0),
                                  np.argsort(noise, 1), 1)
    np.testing.assert_array_equal(
        np.take_along_axis(shuffled, ids_restore, 1),
        np.arange(num_patches)[None].repeat(4, 0))


@pytest.fixture(scope="module")
def tiny():
    import keras

    keras.utils.set_random_seed(0)
    model = garden.build("mae", preset="tiny")
    x = garden.example_inputs("mae", preset="tiny", batch_size=3, seed=0)
    model(x)
    return model, x


def test_model_masks_exactly_the_official_count(tiny):
    model, x = tiny
    mask = ops.convert_to_numpy(model(x, training=False)["mask"])
    np.testing.assert_array_equal(mask.sum(1), 16 - 4)
    _, _, ref_mask = _official_masking(x["mask_noise"], 4)
    np.testing.assert_array_equal(mask, ref_mask)


def _perturb_patch(images, sample, patch, patch_size=4, grid=4):
    out = images.copy()
    r, c = divmod(int(patch), grid)
    out[sample, r * patch_size:(r + 1) * patch_size,
        c * patch_size:(c + 1) * patch_size] += 5.0
    return out


def test_encoder_sees_only_visible_patches(tiny):
    model, x = tiny
    images, noise = x["images"], x["mask_noise"]
    mask = ops.convert_to_numpy(model(x, training=False)["mask"])
    ids_keep, _, _ = random_masking(noise, model.num_keep)

    def latent(imgs):
        return ops.convert_to_numpy(
            model.encoder(imgs, ids_keep=ids_keep, training=False))

    base = latent(images)
    assert base.shape == (3, 1 + 4, 64)
    masked_patch = np.flatnonzero(mask[0] == 1)[0]
    visible_patch = np.flatnonzero(mask[0] == 0)[0]
    same = latent(_perturb_patch(images, 0, masked_patch))
    np.testing.assert_array_equal(same, base)
    # Control: changing a visible patch does change the encoding, so the
    # equality above is not vacuous.
    changed = latent(_perturb_patch(images, 0, visible_patch))
    assert np.abs(changed[0] - base[0]).max() > 1e-3
    np.testing.assert_array_equal(changed[1:], base[1:])


def test_loss_ignores_visible_patches(tiny):
    """Changing the reconstruction of visible patches leaves the loss as is;
    changing a masked one does not."""
    model, x = tiny
    out = {k: ops.convert_to_numpy(v) for k, v in
           model(x, training=False).items()}
    mask = out["mask"]
    loss = float(model.task_loss(x, None, out))
    edited = out["reconstruction"].copy()
    edited[mask == 0] += 3.0
    out_visible = dict(out, reconstruction=edited)
    assert float(model.task_loss(x, None, out_visible)) == pytest.approx(
        loss, rel=1e-6)
    edited = out["reconstruction"].copy()
    edited[mask == 1] += 3.0
    assert float(model.task_loss(x, None, dict(
        out, reconstruction=edited))) > loss + 1.0
    # The official formula in NumPy.
    per_patch = ((out["reconstruction"] - out["target"]) ** 2).mean(-1)
    expected = (per_patch * mask).sum() / mask.sum()
    assert loss == pytest.approx(float(expected), rel=1e-5)


def _broken_all_patch_loss(reconstruction, target, mask, sample_weight=None):
    """A deliberately broken loss: mean over all patches."""
    return masked_patch_loss(reconstruction, target, ops.ones_like(mask))


def test_visible_patch_check_fails_for_a_broken_loss(tiny):
    """The check in test_loss_ignores_visible_patches can fail: a loss that
    averages over all patches changes when visible patches change."""
    model, x = tiny
    out = {k: ops.convert_to_numpy(v) for k, v in
           model(x, training=False).items()}
    edited = out["reconstruction"].copy()
    edited[out["mask"] == 0] += 3.0
    a = float(_broken_all_patch_loss(out["reconstruction"], out["target"],
                                     out["mask"]))
    b = float(_broken_all_patch_loss(edited, out["target"], out["mask"]))
    assert abs(a - b) > 1.0


def test_sample_weight_weights_samples():
    rng = np.random.default_rng(0)
    rec = rng.normal(size=(2, 4, 3)).astype("float32")
    tgt = np.zeros_like(rec)
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], "float32")
    only_first = float(masked_patch_loss(rec, tgt, mask, np.array([1., 0.])))
    expected = ((rec[0] ** 2).mean(-1) * mask[0]).sum() / 2
    assert only_first == pytest.approx(float(expected), rel=1e-5)
