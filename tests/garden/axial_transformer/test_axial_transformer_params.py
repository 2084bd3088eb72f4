"""Trainable parameter counts equal the official implementation's.

`official_params` counts, variable by variable, what google-research
`axial/transformers.py` creates (`Transformer2d`, and for C > 1
`Transformer3d`, the configs' `SlicedChannelModel`; see
`axial_transformer_presets`). The presets store the resulting numbers; the
Keras model must have exactly as many trainable weights. The `paper` preset
itself is built by the sweep (tests/test_all_models.py); here the formula is
checked on small configs of every kind, and the stored counts (including
the 606M-parameter ImageNet 64 preset, too big to build in a test) are
recomputed from it.
"""

import numpy as np
import pytest

import garden
from tests import harness


def _block(d, f):
    return (4 * (d * d + d)          # AttnBlock q, k, v, proj_out
            + d * f * d + f * d      # MlpBlock proj_in
            + f * d * d + d          # MlpBlock proj_out
            + 4 * d)                 # layernorm_attn, layernorm_mlp


def official_params(image_height, image_width, num_channels, num_values,
                    hidden_dim, mlp_ratio, num_exterior_layers,
                    num_outer_layers, num_inner_layers, **_):
    d, f, k = hidden_dim, mlp_ratio, num_values
    hw = image_height + image_width
    count = (k * d                                  # embs
             + hw * d                               # pos_embs_h, pos_embs_w
             + (num_outer_layers + num_inner_layers) * _block(d, f)
             + 2 * d                                # final_ln
             + d * k + k)                           # final_dense
    if num_channels > 1:                            # Transformer3d
        count += (hw * d                            # its pos_embs_h/_w
                  + 9 * 2 * num_channels * d + d    # exterior_input_conv
                  + num_exterior_layers * _block(d, f))
    return count


def test_block_formula_matches_upstream_arithmetic():
    # f = 1: 6 D^2 + 10 D (ImageNet configs), D = 1536 -> 14,171,136.
    assert _block(1536, 1) == 6 * 1536**2 + 10 * 1536 == 14_171_136


@pytest.mark.parametrize("preset", ["tiny", "paper", "imagenet32",
                                    "imagenet64"])
def test_stored_counts_equal_the_formula(preset):
    info = garden.preset_info("axial_transformer", preset)
    assert info["params"] == official_params(**info["config"]), preset
    assert "source" in info


CONFIGS = {
    "one_channel": dict(image_height=4, image_width=5, num_channels=1,
                        num_values=7, hidden_dim=8, num_heads=2, mlp_ratio=3,
                        num_exterior_layers=0, num_outer_layers=2,
                        num_inner_layers=1),
    "sliced_rgb": dict(image_height=3, image_width=4, num_channels=3,
                       num_values=11, hidden_dim=12, num_heads=3,
                       mlp_ratio=1, num_exterior_layers=2,
                       num_outer_layers=2, num_inner_layers=1),
    "two_channels_no_exterior": dict(
        image_height=2, image_width=6, num_channels=2, num_values=5,
        hidden_dim=8, num_heads=1, mlp_ratio=2, num_exterior_layers=0,
        num_outer_layers=0, num_inner_layers=1),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_count_equals_formula(name):
    config = CONFIGS[name]
    model = garden.axial_transformer.AxialTransformer(**config)
    x = garden.example_inputs("axial_transformer", batch_size=1, **config)
    harness.symbolic_build(model, x)
    assert harness.trainable_count(model) == official_params(**config)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_outer_layers=3), "even"),
    (dict(num_channels=3, num_exterior_layers=1), "even"),
    (dict(num_channels=1, num_exterior_layers=2), "num_channels > 1"),
    (dict(hidden_dim=10, num_heads=4), "multiple of num_heads"),
    (dict(num_values=1), "num_values"),
])
def test_invalid_configs_raise(kwargs, match):
    config = dict(CONFIGS["one_channel"])
    config.update(kwargs)
    with pytest.raises(ValueError, match=match):
        garden.axial_transformer.AxialTransformer(**config)


def test_example_inputs_are_valid_pixel_values():
    x = garden.example_inputs("axial_transformer", batch_size=3, seed=4)
    images = x["images"]
    assert images.dtype == np.int32 and images.shape == (3, 8, 8, 1)
    assert images.min() >= 0 and images.max() < 17
