"""`load_official_state`: official SLAB-DeiT state dict -> SLABDeiT.

`official_state` below writes a Keras model's weights in the official
PyTorch layout (written independently of the converter: Conv2d (D, C, p, p),
Linear (out, in), fused qkv, Conv2d depthwise (h, 1, k, k), count-down
`iter` / `warm` buffers); loading it into a fresh model must reproduce the
outputs exactly. A one-off check against the official PyTorch module
itself (random weights, 3 training calls, then eval; see README) agreed to
1.2e-4 on logits of magnitude 775 (eval) and 3e-5 on logits of 116
(training mode mid-schedule).
"""

import keras
import numpy as np
import pytest

import garden
from garden.slab import SLABDeiT
from garden.slab.slab_convert import load_official_state
from garden.slab.slab_norms import prepbn_layers

CONFIG = dict(garden.preset_info("slab", "tiny")["config"],
              unused_cls_token=True, warm_steps=2)


def _norm_state(layer, key, warm_steps, total):
    step = int(layer.step.numpy())
    warm_left = max(warm_steps - step, 0)
    iters = total - max(step - warm_steps, 0)
    bn = layer.repbn
    return {
        key + ".norm1.weight": layer.layer_norm.gamma.numpy(),
        key + ".norm1.bias": layer.layer_norm.beta.numpy(),
        key + ".norm2.alpha": bn.alpha.numpy(),
        key + ".norm2.bn.weight": bn.gamma.numpy(),
        key + ".norm2.bn.bias": bn.beta.numpy(),
        key + ".norm2.bn.running_mean": bn.moving_mean.numpy(),
        key + ".norm2.bn.running_var": bn.moving_variance.numpy(),
        key + ".norm2.bn.num_batches_tracked": np.array(step),
        key + ".warm": np.array(warm_left),
        key + ".iter": np.array(iters),
        key + ".total_step": np.array(total),
    }


def official_state(model):
    d, p, c = model.hidden_dim, model.patch_size, model.num_channels
    kernel = model.patch_embed.proj.kernel.numpy().reshape(p, p, c, d)
    state = {
        "cls_token": model.cls_token.numpy(),
        "pos_embed": model.pos_embed.numpy(),
        "patch_embed.proj.weight": kernel.transpose(3, 2, 0, 1),
        "patch_embed.proj.bias": model.patch_embed.proj.bias.numpy(),
        "head.weight": model.head.kernel.numpy().T,
        "head.bias": model.head.bias.numpy(),
    }
    args = (model.warm_steps, model.total_steps)
    state.update(_norm_state(model.norm, "norm", *args))
    for i, block in enumerate(model.blocks):
        key = f"blocks.{i}"
        state.update(_norm_state(block.norm1, key + ".norm1", *args))
        state.update(_norm_state(block.norm2, key + ".norm2", *args))
        attn = block.attn
        projs = (attn.query_dense, attn.key_dense, attn.value_dense)
        params = attn.kernel_params
        state.update({
            key + ".attn.qkv.weight": np.concatenate(
                [pr.kernel.numpy().T for pr in projs]),
            key + ".attn.qkv.bias": np.concatenate(
                [pr.bias.numpy() for pr in projs]),
            key + ".attn.proj.weight": attn.output_dense.kernel.numpy().T,
            key + ".attn.proj.bias": attn.output_dense.bias.numpy(),
            key + ".attn.dwc.weight": params["dwc_kernel"].numpy().transpose(
                2, 3, 0, 1),
            key + ".attn.dwc.bias": params["dwc_bias"].numpy(),
            key + ".attn.positional_encoding": params[
                "key_position"].numpy().reshape(1, -1, d),
            key + ".mlp.fc1.weight": block.mlp.fc1.kernel.numpy().T,
            key + ".mlp.fc1.bias": block.mlp.fc1.bias.numpy(),
            key + ".mlp.fc2.weight": block.mlp.fc2.kernel.numpy().T,
            key + ".mlp.fc2.bias": block.mlp.fc2.bias.numpy(),
        })
    return state


@pytest.fixture(scope="module")
def source():
    keras.utils.set_random_seed(1)
    model = SLABDeiT(**CONFIG)
    x = garden.example_inputs("slab", preset="tiny", batch_size=4)
    for _ in range(3):  # past the 2-step warm-up: running stats, steps
        model(x, training=True)
    r = np.random.default_rng(0)
    for layer in prepbn_layers(model):
        layer.repbn.alpha.assign(r.uniform(0.5, 1.5, 1))
    for block in model.blocks:
        pos = block.attn.kernel_params["key_position"]
        pos.assign(r.standard_normal(pos.shape) * 0.5)
    return model, x


def test_round_trip_reproduces_outputs_and_schedule(source):
    model, x = source
    loaded = load_official_state(SLABDeiT(**CONFIG), official_state(model))
    for training in (False, True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(loaded(x, training=training)),
            keras.ops.convert_to_numpy(model(x, training=training)))
    assert [float(n.step.numpy()) for n in prepbn_layers(loaded)] == [
        4.0] * 5


def test_missing_unused_and_mismatched_keys_raise(source):
    model, _ = source
    state = official_state(model)
    for mutate in (
        lambda s: s.pop("blocks.1.attn.dwc.bias"),
        lambda s: s.update({"blocks.9.mlp.fc1.bias": np.zeros(3)}),
        lambda s: s.update({"head.weight": s["head.weight"].T}),
        lambda s: s.update({"norm.total_step": np.array(7)}),
    ):
        bad = dict(state)
        mutate(bad)
        with pytest.raises(ValueError):
            load_official_state(SLABDeiT(**CONFIG), bad)


def test_refuses_non_slab_variants():
    model = SLABDeiT(**dict(CONFIG, attention_kernel="dense"))
    with pytest.raises(ValueError, match="attention_kernel"):
        load_official_state(model, {})
