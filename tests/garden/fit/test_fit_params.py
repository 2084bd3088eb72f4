"""Parameter counts: the formula of fit_presets.py equals the Keras models
and the counts obtained by running the official pix2seq `FIT` class."""

import keras
import numpy as np
import pytest

import garden
from garden.fit import FITEncoder
from garden.fit import fit_encoder_params
from garden.fit.fit_presets import fit_classifier_params

# (layers, t, n, m, c, x_dim, latent_dim, x_heads, latent_heads) -> count of
# the official `architectures/transformers.FIT` (pix2seq @ 8563fdf, run with
# tf_keras 2.21, trainable variables after one call; README "Parity").
OFFICIAL = [
    (("(1)1(1)", 4, 16, 2, 1, 32, 32, 2, 2), 47_840),
    (("(1)2(1)1(1)", 4, 16, 2, 3, 32, 48, 2, 4), 145_840),
    (("(2)3", 6, 16, 3, 5, 48, 32, 4, 2), 101_952),
    (("(2)4(2)4(2)4(2)", 16, 1024, 32, 48, 512, 768, 8, 12), 119_112_448),
]


def _count(layer):
    return int(sum(np.prod(v.shape) for v in layer.trainable_weights))


@pytest.mark.parametrize("cfg,official", OFFICIAL)
def test_encoder_matches_official_count(cfg, official):
    layers, t, n, m, c, xd, ld, xh, lh = cfg
    assert fit_encoder_params(layers, t, n, m, c, xd, ld) == official
    if n > 64:
        return  # the paper-size encoder is counted by the sweep
    enc = FITEncoder(layers, t, n, m, xd, ld, xh, lh)
    enc.build((None, t, n, c))
    assert _count(enc) == official


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_preset_counts_follow_the_formula(preset):
    info = garden.preset_info("fit", preset)
    assert fit_classifier_params(**info["config"]) == info["params"]


def test_tiny_classifier_count():
    model = garden.build("fit", preset="tiny")
    model.build()
    assert _count(model) == garden.preset_info("fit", "tiny")["params"]
    keras.backend.clear_session()
