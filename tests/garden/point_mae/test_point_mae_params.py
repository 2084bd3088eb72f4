"""Preset parameter counts: formula of the official modules vs our models.

`params` in the presets were counted by instantiating the official
PyTorch modules (point_mae_presets docstring). Here the same numbers are
recomputed from the module-by-module formula, and the Keras models are built
(`model.build()` creates every weight without tracing the graph) and their
trainable weights counted: BatchNorm contributes gamma/beta only.
"""

import numpy as np
import pytest

import garden


def _linear(i, o):
    return i * o + o


def encoder_params(cfg):
    d = cfg["embed_dim"]
    h1, h2, h3 = cfg["patch_dims"]
    p = cfg["pos_hidden_dim"]
    pointnet = (_linear(3, h1) + 2 * h1 + _linear(h1, h2)
                + _linear(2 * h2, h3) + 2 * h3 + _linear(h3, d))
    pos = _linear(3, p) + _linear(p, d)
    hidden = int(cfg["mlp_ratio"] * d)
    block = (2 * d + 3 * d * d + _linear(d, d) + 2 * d + _linear(d, hidden)
             + _linear(hidden, d))
    return pointnet + pos + cfg["depth"] * block + 2 * d, pos, block


def official_params(name, cfg):
    enc, pos, _ = encoder_params(cfg)
    d = cfg["embed_dim"]
    if name == "point_mae":
        dec_cfg = dict(cfg, depth=cfg["decoder_depth"])
        _, _, block = encoder_params(dec_cfg)
        return (enc + d + pos + cfg["decoder_depth"] * block + 2 * d
                + _linear(d, 3 * cfg["group_size"]))
    widths = [2 * d] + list(cfg["head_dims"])
    head = sum(_linear(a, b) + 2 * b for a, b in zip(widths, widths[1:]))
    return enc + 2 * d + head + _linear(widths[-1], cfg["num_classes"])


NAMES = ("point_mae", "point_mae_classifier")


def _all_presets():
    return [(n, p) for n in NAMES for p in garden.list_presets(n)]


@pytest.mark.parametrize("name,preset", _all_presets())
def test_recorded_counts_equal_the_formula(name, preset):
    info = garden.preset_info(name, preset)
    assert info["params"] == official_params(name, info["config"])


def test_known_paper_numbers():
    # Point-MAE paper / README: 22.1M parameters for the classifier.
    assert garden.preset_info("point_mae", "paper")["params"] == 29_006_432
    assert garden.preset_info("point_mae_classifier", "paper")[
        "params"] == 22_099_752


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_keras_trainable_count_equals_official(name, preset):
    model = garden.build(name, preset=preset)
    model.build()
    assert _trainable(model) == garden.preset_info(name, preset)["params"]
    # BatchNorm moving statistics exist but are not trainable.
    stats = [w for w in model.non_trainable_weights
             if "moving_" in w.path]
    assert len(stats) == len(model.non_trainable_weights) > 0


@pytest.mark.large
@pytest.mark.parametrize("name,preset", [
    (n, p) for n, p in _all_presets() if p not in ("tiny", "paper")])
def test_other_presets_trainable_count(name, preset):
    model = garden.build(name, preset=preset)
    model.build()
    assert _trainable(model) == garden.preset_info(name, preset)["params"]
