"""Behavioural checks on procedural shapes (spec "Offline proxy").

Fast (default): memorisation of one fixed batch with fixed masks: the
reconstruction must beat the best constant patch and must collapse when
the decoder position embedding is zeroed. The same thresholds reject a
deliberately broken model whose decoder gets no positions
(`NoDecoderPositions`; large test).
Large: 1000 steps of pre-training of the tiny model on shapes3d clouds
(SO(3) rotation, scale 0.7-1.3), then (1) masked-patch Chamfer vs trivial
baselines on held-out clouds, (2) zeroing the decoder position embedding,
(3) a linear probe vs a random-init encoder. Thresholds were calibrated by
running the correct model and broken variants; measured numbers are next
to each threshold and in garden/point_mae/README.md ("Offline proxy").
"""

import keras
import numpy as np
import pytest
from keras import ops

import garden
from data_pipelines import shapes3d
from garden.point_mae import PointMAEPretrainer
from garden.point_mae import point_mae_train
from official.ops import masking


class NoDecoderPositions(PointMAEPretrainer):
    """Broken on purpose: the decoder never learns where masked patches are
    (all mask tokens are then identical, so all predictions are too)."""

    def forward_decoder(self, x_visible, centers, ids_visible, ids_masked,
                        training=False):
        batch = ops.shape(x_visible)[0]
        tokens = ops.broadcast_to(
            self.mask_token, (batch, self.num_masked, self.embed_dim))
        x = ops.concatenate([x_visible, tokens], axis=1)
        # Keep decoder_pos_embed in the graph (zero gradient) for fit().
        unused = ops.sum(self.decoder_pos_embed(centers)) * 0.0
        x = self.decoder(x, ops.zeros_like(x) + unused, training=training)
        x = self.increase_dim(x)
        return ops.reshape(x, (-1, self.num_masked, self.group_size, 3))


class AbsoluteTargets(PointMAEPretrainer):
    """Broken on purpose: targets in absolute coordinates (not centre-
    normalised), so the decoder can score by copying the centre it is
    given and the encoder learns little (spec "Pitfalls")."""

    def call(self, inputs, training=False):
        out = super().call(inputs, training=training)
        g = self.num_groups
        key = out["mask"] * g + ops.cast(ops.arange(g), "float32")[None]
        ids_masked = ops.argsort(key, axis=1)[:, self.num_visible:]
        centers = masking.gather_tokens(out["centers"], ids_masked)
        out["target"] = out["target"] + centers[:, :, None, :]
        return out


def _tiny(cls, seed):
    keras.utils.set_random_seed(seed)
    model = cls(**garden.preset_info("point_mae", "tiny")["config"])
    model.build()
    return model


def _memorise(cls, steps=250, seed=0):
    """Fits 8 fixed clouds with fixed masks (Adam 3e-3, `steps` full-batch
    steps). Returns (loss / best-constant-patch loss, loss with the decoder
    positions zeroed / loss)."""
    model = _tiny(cls, seed)
    points, _ = shapes3d.generate(8, 256, seed, rotation="so3")
    noise = np.random.RandomState(seed).uniform(size=(8, 16)).astype(
        "float32")
    x = {"points": points, "mask_noise": noise}
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, batch_size=8, epochs=steps, verbose=0)
    out = model(x, training=False)
    loss = float(model.compute_loss(x, None, out))
    target = keras.ops.convert_to_numpy(out["target"]).reshape(-1, 16, 3)
    mean_patch = point_mae_train.best_constant_patch(target)
    const = point_mae_train._chamfer(mean_patch[None], target)
    with point_mae_train.zero_decoder_positions(model):
        no_pos = float(model.compute_loss(x, None, model(x, training=False)))
    return loss / const, no_pos / loss


# Memorisation thresholds. Measured (seed 0, 250 steps): correct ratio 0.50
# and x3.3 when the decoder positions are zeroed after training;
# NoDecoderPositions 0.91 (it can only output one patch per cloud) and x1.00.
MEMORISE_RATIO = 0.7
MEMORISE_RISE = 1.5


def test_memorisation_uses_decoder_positions():
    ratio, rise = _memorise(PointMAEPretrainer)
    assert ratio < MEMORISE_RATIO, ratio
    assert rise > MEMORISE_RISE, rise


@pytest.mark.large
def test_memorisation_thresholds_reject_a_decoder_without_positions():
    ratio, rise = _memorise(NoDecoderPositions)
    assert ratio > MEMORISE_RATIO, ratio
    assert rise < MEMORISE_RISE, rise


# Proxy thresholds, tiny preset, `pretrain(1000, seed)` (32 clouds/step,
# AdamW 3e-3), shapes3d SO(3) (README "Offline proxy"). Measured, seeds
# 0/1/2: ratio 0.78/0.81/0.77, x1.44/1.31/1.48 when the decoder positions
# are zeroed, probe 57.6/59.0/59.6% vs 36.0-39.2% for random-init encoders
# (seeds 7-10). NoDecoderPositions (seed 0): ratio 0.98, x1.00 (it never
# uses positions), probe 55.8%: the probe does not catch this bug (nor
# AbsoluteTargets, 59.6% in an earlier calibration: their encoders still
# learn shape); the reconstruction checks do. The spec's proposed "< 50% of
# the baseline" is below the sampling floor of this configuration (an
# oracle predicting a fresh sample of the true surface scores 0.70 of the
# baseline), so the calibrated threshold is used.
PROXY_RATIO = 0.9
# The "masked-patch Chamfer below half of the trivial baseline",
# with the trivial baseline as the spec defines it: min(K copies of the
# origin, the index-wise mean of sorted training patches). Measured (seed 0):
# correct 0.464, NoDecoderPositions 0.579.
SPEC_RATIO = 0.5
PROXY_RISE = 1.1
PROBE_MARGIN = 0.05


@pytest.fixture(scope="module")
def pretrained():
    train, _ = shapes3d.generate(2000, 256, 0, rotation="so3")
    model, history = point_mae_train.pretrain(
        1000, seed=0, points=train, log_every=100)
    return model, history, train


@pytest.mark.large
def test_pretraining_beats_trivial_baselines(pretrained):
    model, history, train = pretrained
    assert history["loss"][-1] < 0.5 * history["loss"][0], history
    test, _ = shapes3d.generate(500, 256, 1000, rotation="so3")
    res = point_mae_train.reconstruction_eval(model, test, train_points=train)
    assert res["ratio"] < PROXY_RATIO, res
    assert res["ratio_spec"] < SPEC_RATIO, res
    assert res["chamfer_no_decoder_pos"] > PROXY_RISE * res["chamfer"], res


@pytest.mark.large
def test_linear_probe_beats_random_init_encoder(pretrained):
    model = pretrained[0]
    xtr, ytr = shapes3d.generate(1000, 256, 50, rotation="so3")
    xte, yte = shapes3d.generate(500, 256, 60, rotation="so3")
    acc = point_mae_train.linear_probe(model, xtr, ytr, xte, yte)
    random_init = _tiny(PointMAEPretrainer, seed=7)
    acc_random = point_mae_train.linear_probe(random_init, xtr, ytr, xte,
                                              yte)
    assert acc >= acc_random + PROBE_MARGIN, (acc, acc_random)
