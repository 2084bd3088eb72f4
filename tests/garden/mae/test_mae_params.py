"""Trainable parameter counts equal the official implementation's.

`official_*_params` count, one by one, the `nn.Parameter`s with
`requires_grad=True` of facebookresearch/mae `models_mae.py`
(`MaskedAutoencoderViT`, timm 0.3.2 `PatchEmbed`/`Block`) and
`models_vit.py` (timm `VisionTransformer` + `global_pool`). The presets store
the resulting numbers; the Keras models must have exactly as many trainable
weights.
"""

import numpy as np
import pytest

import garden
from tests import harness


def _timm_block(d, mlp_ratio):
    h = int(d * mlp_ratio)
    return (2 * d            # norm1
            + 3 * d * d + 3 * d  # attn.qkv (qkv_bias=True)
            + d * d + d      # attn.proj
            + 2 * d          # norm2
            + d * h + h      # mlp.fc1
            + h * d + d)     # mlp.fc2


def official_mae_params(image_size, patch_size, num_channels, hidden_dim,
                        num_layers, decoder_hidden_dim, decoder_num_layers,
                        mlp_ratio=4.0, **_):
    p, c, d, dd = patch_size, num_channels, hidden_dim, decoder_hidden_dim
    encoder = (p * p * c * d + d              # patch_embed.proj (Conv2d)
               + d                            # cls_token
               # pos_embed: requires_grad=False
               + num_layers * _timm_block(d, mlp_ratio)
               + 2 * d)                       # norm
    decoder = (d * dd + dd                    # decoder_embed
               + dd                           # mask_token
               # decoder_pos_embed: requires_grad=False
               + decoder_num_layers * _timm_block(dd, mlp_ratio)
               + 2 * dd                       # decoder_norm
               + dd * p * p * c + p * p * c)  # decoder_pred
    return encoder + decoder


def official_vit_params(image_size, patch_size, num_channels, hidden_dim,
                        num_layers, num_classes, mlp_ratio=4.0, **_):
    p, c, d = patch_size, num_channels, hidden_dim
    num_patches = (image_size // patch_size) ** 2
    return (p * p * c * d + d                 # patch_embed.proj
            + d                               # cls_token
            + (num_patches + 1) * d           # pos_embed (trainable in timm)
            + num_layers * _timm_block(d, mlp_ratio)
            + 2 * d                           # fc_norm (or norm)
            + d * num_classes + num_classes)  # head


@pytest.mark.parametrize("preset", garden.list_presets("mae"))
def test_mae_preset_counts_follow_the_official_formula(preset):
    info = garden.preset_info("mae", preset)
    assert info["params"] == official_mae_params(**info["config"])


@pytest.mark.parametrize("preset", garden.list_presets("mae_classifier"))
def test_classifier_preset_counts_follow_the_official_formula(preset):
    info = garden.preset_info("mae_classifier", preset)
    assert info["params"] == official_vit_params(**info["config"])


def test_known_reference_counts():
    # Independent anchors: timm's published ViT-B/16 (86,567,656), and
    # MAE-B with its frozen tables (111,907,840 state-dict values).
    assert official_vit_params(224, 16, 3, 768, 12, 1000) == 86_567_656
    base = official_mae_params(224, 16, 3, 768, 12, 512, 8)
    assert base + 197 * 768 + 197 * 512 == 111_907_840


@pytest.mark.parametrize("name", ["mae", "mae_classifier"])
@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_keras_trainable_count_equals_official(name, preset):
    info = garden.preset_info(name, preset)
    model = garden.build(name, preset=preset)
    x = garden.example_inputs(name, preset=preset, batch_size=1)
    harness.symbolic_build(model, x)
    assert harness.trainable_count(model) == info["params"]
    if name == "mae":
        # Only the two sin-cos tables are frozen weights.
        cfg = info["config"]
        n = (cfg["image_size"] // cfg["patch_size"]) ** 2 + 1
        frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights
                         if "pos_embed" in w.path))
        assert frozen == n * (cfg["hidden_dim"] + cfg["decoder_hidden_dim"])
