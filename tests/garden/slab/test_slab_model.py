"""SLAB-DeiT wiring: PRepBN everywhere, SLA with DWC in every block, the
baselines the proxy compares against, construction errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import garden
from garden.slab import SLABDeiT
from garden.slab.slab_norms import prepbn_layers
from tests import harness

TINY = garden.preset_info("slab", "tiny")["config"]


def test_every_norm_is_prepbn_and_every_block_uses_sla():
    model = garden.build("slab", preset="tiny")
    model.build()
    assert len(prepbn_layers(model)) == 2 * TINY["num_layers"] + 1
    for block in model.blocks:
        attn = block.attn
        assert attn.kernel == "linear_relu"
        assert sorted(attn.kernel_params) == [
            "dwc_bias", "dwc_kernel", "key_position"]
        assert tuple(attn.kernel_params["dwc_kernel"].shape) == (3, 3, 16, 1)
        assert tuple(attn.kernel_params["key_position"].shape) == (16, 2, 16)


def test_training_calls_advance_every_schedule():
    model = garden.build("slab", preset="tiny")
    x = garden.example_inputs("slab", preset="tiny")
    model(x, training=True)
    model(x, training=True)
    model(x, training=False)
    assert [float(n.step.numpy()) for n in prepbn_layers(model)] == [2.0] * 5


def test_unused_cls_token_is_kept_but_never_read():
    model = SLABDeiT(**{**TINY, "unused_cls_token": True})
    x = garden.example_inputs("slab", preset="tiny")
    y = garden.example_labels("slab", preset="tiny")
    with tf.GradientTape() as tape:
        loss = model.compute_loss(y=y, y_pred=model(x, training=True))
    grad = tape.gradient(loss, model.cls_token)
    assert grad is None


@pytest.mark.parametrize("norm_type,kernel", [
    ("layernorm", "dense"), ("repbn", "linear_relu"), ("prepbn", "dense")])
def test_baseline_variants_get_gradients(norm_type, kernel):
    model = SLABDeiT(**{**TINY, "norm_type": norm_type,
                        "attention_kernel": kernel})
    x = garden.example_inputs("slab", preset="tiny")
    y = garden.example_labels("slab", preset="tiny")
    loss, grads = harness.gradients(model, x, y)
    assert np.isfinite(float(loss))
    assert all(g is not None and np.any(g.numpy()) for g in grads)
    if kernel == "dense":
        assert not model.blocks[0].attn.kernel_params


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="norm_type"):
        SLABDeiT(**{**TINY, "norm_type": "groupnorm"})
    with pytest.raises(ValueError, match="multiple"):
        SLABDeiT(**{**TINY, "image_size": 9})
    with pytest.raises(ValueError):
        keras.utils.set_random_seed(0)
        SLABDeiT(**{**TINY, "dwc_kernel_size": 4}).build()
