"""Trainable parameter counts equal the official TF implementation's.

`official_params` counts, one by one, the `tf.get_variable`s (all
trainable) of google-research `combiner/combiner/tf/models.py`
`transformer` + `lm_head` (`ops.trail_dense`, `ops.layer_norm`) for the
attention of `approx_attention.py`; the presets store the resulting numbers
and the Keras models must have exactly as many trainable weights.
"""

import pytest

import garden
from garden.combiner.combiner_layers import layer_variants
from tests import harness


def _layer(d, variant, row_summary):
    count = (2 * d                    # attn/pre_norm gamma, beta
             + 3 * (d * d + d)        # q, k, v trail_dense + bias [H, D/H]
             + d * d + d              # output trail_dense (bias=True)
             + 2 * d                  # ffn/pre_norm
             + d * 4 * d + 4 * d      # ffn dense D -> 4D
             + 4 * d * d + d)         # ffn dense 4D -> D
    if variant == "axial" and "proj" in row_summary:
        # axial_rowmajor, rowmajor_param_post: trail_dense [H, D/H] -> D,
        # postprocess (residual, no variable), pre_norm, trail_dense -> heads
        count += (d * d + d) + 2 * d + (d * d + d)
    return count


def official_params(vocab_size, hidden_dim, num_layers, max_seq_len,
                    variant, row_summary="proj", num_classes=None, **_):
    d = hidden_dim
    count = vocab_size * d + max_seq_len * d  # word + learned pos embeddings
    for v in layer_variants(variant, num_layers):
        count += _layer(d, v, row_summary)
    count += 2 * d                            # final_norm
    if num_classes is None:
        count += vocab_size                   # softmax_bias (tied weight)
    else:
        count += d * num_classes + num_classes  # garden head
    return count


@pytest.mark.parametrize("name", ["combiner_lm", "combiner_classifier"])
def test_preset_counts_follow_the_official_formula(name):
    for preset in garden.list_presets(name):
        info = garden.preset_info(name, preset)
        assert info["params"] == official_params(**info["config"]), preset


def test_reference_counts():
    # One TF LM layer is 12 D^2 + 13 D (as a timm ViT block); the Axial
    # "proj" summary adds 2 D^2 + 4 D. Wiki-40B config: D 768, V 1024.
    assert _layer(768, "fixed", "proj") == 12 * 768**2 + 13 * 768
    assert _layer(768, "axial", "proj") - _layer(768, "axial", "wsum") \
        == 2 * 768**2 + 4 * 768
    assert official_params(1024, 768, 12, 2048, "mixture") == 87_416_320
    assert official_params(1024, 768, 12, 2048, "axial") == 101_608_960


@pytest.mark.parametrize("name,preset", [
    ("combiner_lm", "tiny"), ("combiner_lm", "axial_rowmajor_lm"),
    ("combiner_classifier", "tiny"),
])
def test_keras_trainable_count_equals_official(name, preset):
    # The `paper` presets are built by tests/test_all_models.py; the other
    # LM presets have the paper preset's count except Axial ("proj").
    info = garden.preset_info(name, preset)
    model = garden.build(name, preset=preset)
    x = garden.example_inputs(name, preset=preset, batch_size=1)
    harness.symbolic_build(model, x)
    assert harness.trainable_count(model) == info["params"]
    assert not model.non_trainable_weights
