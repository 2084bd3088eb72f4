"""Behavioural proxy: MAE pre-training on scikit-learn digits (CPU).

Data: `data_pipelines.digits.load` (8x8 digits, bilinear to 16x16, 1
channel), standardised with the training split's mean and std (the official
pipeline normalises ImageNet the same way). Model: the `tiny` preset with one
channel (16 patches of 4x4, 4 visible at mask ratio 0.75), pixel targets
(`norm_pix_loss=False`, so losses are in input units).

Measured quantities (paper §3): the masked-patch MSE on held-out images with
a fixed mask, against the mean-patch baseline (each masked patch predicted
by the per-pixel training mean), and a linear probe (logistic regression on
the encoder's mean token, no masking) against the same encoder before
training. Broken variants used to calibrate the thresholds: a decoder
without positional embeddings, and a loss on visible patches only.

Thresholds and the numbers they were calibrated on are in
garden/mae/README.md ("Results").
"""

import json
import sys
import time

import keras
import numpy as np
import pytest
from keras import ops

from garden.mae import MAEDecoder
from garden.mae import MAEPretrainer
from garden.mae import masked_patch_loss
from official.layers.patch_embedding import patchify
from official.registry import preset_config

IMAGE_SIZE = 16
PATCH = 4


def load_data(image_size=IMAGE_SIZE):
    from data_pipelines import digits

    xtr, ytr = digits.load("train", seed=0, image_size=image_size,
                           channels=1)
    xte, yte = digits.load("test", seed=0, image_size=image_size, channels=1)
    mean, std = xtr.mean(), xtr.std()
    return (xtr - mean) / std, ytr, (xte - mean) / std, yte


class _NoPositionDecoder(MAEDecoder):
    """Broken: the decoder gets no positional embeddings."""

    def add_position(self, x):
        return x


class NoDecoderPositionMAE(MAEPretrainer):
    decoder_class = _NoPositionDecoder


class VisibleLossMAE(MAEPretrainer):
    """Broken: the loss is computed on the visible patches only."""

    def task_loss(self, x, y, y_pred, sample_weight=None):
        return masked_patch_loss(y_pred["reconstruction"], y_pred["target"],
                                 1.0 - y_pred["mask"])


VARIANTS = {"correct": MAEPretrainer, "no_decoder_pos": NoDecoderPositionMAE,
            "visible_loss": VisibleLossMAE}


def build(variant="correct", seed=0):
    keras.utils.set_random_seed(seed)
    config = preset_config("mae", "tiny", image_size=IMAGE_SIZE,
                           patch_size=PATCH, num_channels=1, seed=seed)
    model = VARIANTS[variant](**config)
    model(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), "float32"))
    return model


def pretrain(model, images, epochs, batch_size=64, learning_rate=2e-3):
    model.compile(optimizer=keras.optimizers.AdamW(
        learning_rate=learning_rate, weight_decay=0.05))
    model.fit({"images": images}, batch_size=batch_size, epochs=epochs,
              verbose=0, shuffle=True)
    return model


def eval_noise(n, num_patches=(IMAGE_SIZE // PATCH) ** 2, seed=123):
    return np.random.default_rng(seed).uniform(
        size=(n, num_patches)).astype("float32")


def masked_loss(model, images, noise):
    out = model.predict({"images": images, "mask_noise": noise},
                        batch_size=512, verbose=0)
    return float(masked_patch_loss(out["reconstruction"], out["target"],
                                   out["mask"])), out["mask"]


def mean_patch_baseline(train_images, images, mask):
    """Masked-patch MSE of predicting the per-pixel training mean."""
    mean_patch = ops.convert_to_numpy(patchify(train_images, PATCH)).mean(0)
    patches = ops.convert_to_numpy(patchify(images, PATCH))
    per_patch = ((patches - mean_patch[None]) ** 2).mean(-1)
    return float((per_patch * mask).sum() / mask.sum())


def linear_probe(model, xtr, ytr, xte, yte):
    from sklearn.linear_model import LogisticRegression

    def features(images):
        tokens = model.encoder(images, training=False)
        return ops.convert_to_numpy(ops.mean(tokens, axis=1))

    ftr, fte = features(xtr), features(xte)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000)
    clf.fit((ftr - mu) / sd, ytr)
    return float(clf.score((fte - mu) / sd, yte))


def memorisation_run(variant, steps_epochs=150, n_images=128, seed=0):
    """Fast mechanism check: pre-train on 128 images (2 steps per epoch),
    evaluate the masked-patch loss on the same images under fixed masks
    that differ from the training draws."""
    xtr = load_data()[0][:n_images]
    model = build(variant, seed)
    pretrain(model, xtr, epochs=steps_epochs)
    noise = eval_noise(len(xtr))
    loss, mask = masked_loss(model, xtr, noise)
    base = mean_patch_baseline(xtr, xtr, mask)
    return {"variant": variant, "loss": loss, "baseline": base,
            "ratio": loss / base}


def heldout_run(variant, epochs=100, seed=0, probe=True):
    """Pre-train on the training split, evaluate on the test split."""
    xtr, ytr, xte, yte = load_data()
    model = build(variant, seed)
    result = {"variant": variant, "epochs": epochs}
    if probe:
        result["probe_init"] = linear_probe(model, xtr, ytr, xte, yte)
    start = time.time()
    pretrain(model, xtr, epochs=epochs)
    result["train_s"] = time.time() - start
    noise = eval_noise(len(xte))
    loss, mask = masked_loss(model, xte, noise)
    result["baseline"] = mean_patch_baseline(xtr, xte, mask)
    result["loss"] = loss
    result["ratio"] = loss / result["baseline"]
    if probe:
        result["probe"] = linear_probe(model, xtr, ytr, xte, yte)
    return result


# Calibrated thresholds; measurements (seed 0, this file's settings):
#   memorisation ratio  correct 0.875 | no decoder positions 2.35 |
#                       loss on visible patches 3.39
#   held-out ratio      correct 0.306 | no decoder positions 2.27 |
#                       loss on visible patches 3.43
#   probe accuracy      correct 0.911 -> 0.969 (+0.058) |
#                       no decoder positions 0.911 -> 0.897 (-0.014) |
#                       loss on visible patches 0.911 -> 0.894 (-0.017)
# The fast check asks for the mean-patch baseline itself (ratio < 1).
MEMORISE_RATIO_MAX = 1.0
HELDOUT_RATIO_MAX = 0.6
PROBE_GAIN_MIN = 0.02


def test_fast_masked_reconstruction_beats_mean_patch():
    """~300 steps: masked patches of seen images are predicted better than
    by the per-pixel mean (fails for both broken variants)."""
    result = memorisation_run("correct")
    assert result["ratio"] < MEMORISE_RATIO_MAX, result


@pytest.mark.large
def test_fast_check_fails_without_decoder_positions():
    result = memorisation_run("no_decoder_pos")
    assert result["ratio"] >= MEMORISE_RATIO_MAX, result


@pytest.mark.large
def test_pretraining_beats_mean_patch_and_random_probe():
    """100 epochs on the training split: held-out masked-patch MSE well below
    the mean-patch baseline; the linear probe beats the random-init
    encoder's."""
    result = heldout_run("correct")
    assert result["ratio"] < HELDOUT_RATIO_MAX, result
    assert result["probe"] - result["probe_init"] >= PROBE_GAIN_MIN, result


# Calibration evidence for the held-out thresholds: ~5 min each on two
# shared cores, so kept out of CI (run with -m extra_large).
@pytest.mark.extra_large
@pytest.mark.parametrize("variant", ["no_decoder_pos", "visible_loss"])
def test_heldout_check_fails_for_broken_variants(variant):
    result = heldout_run(variant)
    assert result["ratio"] >= HELDOUT_RATIO_MAX, result
    assert result["probe"] - result["probe_init"] < PROBE_GAIN_MIN, result


if __name__ == "__main__":
    # Calibration: python tests/garden/mae/test_mae_digits.py KIND VARIANT
    kind, variant = sys.argv[1], sys.argv[2]
    extra = dict(a.split("=") for a in sys.argv[3:])
    extra = {k: int(v) for k, v in extra.items()}
    run = memorisation_run if kind == "memorise" else heldout_run
    print("RESULT", json.dumps(run(variant, **extra)))
