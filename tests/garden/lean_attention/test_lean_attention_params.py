"""Parameter counts: the formula of lean_attention_presets.py (GPT-2's
per-parameter count) equals the Keras model for every preset."""

import numpy as np
import pytest

import garden
from garden.lean_attention.lean_attention_presets import decoder_params


@pytest.mark.parametrize("preset", ["tiny", "bench", "paper"])
def test_preset_counts_follow_the_formula(preset):
    info = garden.preset_info("lean_attention", preset)
    cfg = info["config"]
    assert decoder_params(cfg["vocab_size"], cfg["max_length"],
                          cfg["hidden_dim"], cfg["num_layers"]) \
        == info["params"]


def test_gpt2_small_is_124m():
    """The public GPT-2 small figure (HF `gpt2`: 124,439,808)."""
    assert decoder_params(50257, 1024, 768, 12) == 124_439_808


@pytest.mark.parametrize("preset", ["tiny", "bench"])
def test_model_has_the_preset_count(preset):
    model = garden.build("lean_attention", preset=preset)
    model.build()
    count = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    assert count == garden.preset_info("lean_attention", preset)["params"]
