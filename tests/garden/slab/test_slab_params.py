"""Trainable parameter counts equal the official implementation's.

`official_slab_deit_params` (garden/slab/slab_presets.py) counts, one by one,
the trainable `nn.Parameter`s of xinghaochen/SLAB `slab_deit.py`
(`VisionTransformer` with `LinearNorm(LayerNorm, RepBN)` norms and the SLA
`Attention`); instantiating the official factories gave the same numbers
(6,198,401 for SLAB-DeiT-T, 22,992,641 for SLAB-DeiT-S). The Keras models
must have exactly that many trainable weights.
"""

import pytest

import garden
from garden.slab.slab_presets import official_slab_deit_params
from tests import harness


def test_formula_reproduces_the_official_counts():
    assert official_slab_deit_params() == 6_198_401  # DeiT-T defaults
    assert official_slab_deit_params(hidden_dim=384, num_heads=6) == (
        22_992_641)


@pytest.mark.parametrize("preset", garden.list_presets("slab"))
def test_preset_counts_follow_the_formula(preset):
    info = garden.preset_info("slab", preset)
    assert info["params"] == official_slab_deit_params(**info["config"])


@pytest.mark.parametrize("preset", ["tiny", "paper", "slab_deit_small"])
def test_keras_model_has_exactly_the_official_count(preset):
    info = garden.preset_info("slab", preset)
    model = garden.build("slab", preset=preset)
    x = garden.example_inputs("slab", preset=preset, batch_size=1)
    harness.symbolic_build(model, x)
    assert harness.trainable_count(model) == info["params"]


def test_without_the_unused_cls_token_one_width_less():
    config = dict(garden.preset_info("slab", "paper")["config"],
                  unused_cls_token=False)
    model = garden.slab.SLABDeiT(**config)
    model.build()
    assert harness.trainable_count(model) == 6_198_401 - 192
