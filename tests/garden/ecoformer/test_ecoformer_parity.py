"""Numerical parity with the official PyTorch EcoFormer code.

`data/official_ecoformer.npz` was written by `make_official_golden.py`,
which runs ziplab/EcoFormer@a277f9e `pvt/pvt_v2.py`, `pvt/performer.py` and
`pvt/hashing/ksh.py` unmodified (PyTorch 2.14 CPU; stand-ins only for
timm helpers, `params.args` and `logger`; `torch.randperm` replaced by a
seeded NumPy permutation). Weights are regenerated here by
`official_value(key, shape)` and mapped with
`garden.ecoformer.ecoformer_convert.load_official_state`.
"""

import numpy as np
import pytest
from ecoformer_official import GOLDEN
from ecoformer_official import KSH_RATES
from ecoformer_official import KSH_SHAPE
from ecoformer_official import model_images
from ecoformer_official import official_value

import garden
from garden.ecoformer.ecoformer_convert import load_official_state
from official.quantization.kernelized_hash import fit_kernelized_hash
from official.quantization.kernelized_hash import kernelized_hash_codes
from official.quantization.kernelized_hash import similarity_labels


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


def test_parameter_counts_of_the_official_run(golden):
    assert int(golden["b0_params"]) == garden.preset_info(
        "ecoformer", "paper")["params"] == 3_136_328
    assert int(golden["tiny_params"]) == garden.preset_info(
        "ecoformer", "tiny")["params"]


def test_labels_equal_official_topk_labels(golden):
    np.testing.assert_array_equal(
        similarity_labels(golden["ksh_x"], KSH_SHAPE["topk"]),
        golden["ksh_labels"])


@pytest.mark.parametrize("run", range(len(KSH_RATES)))
def test_ksh_fit_equals_official(golden, run):
    """`train_hashing_weight_woeig`: bitwise Nesterov SGD + accept rule."""
    x, a0 = golden["ksh_x"], golden["ksh_a0"]
    m = KSH_SHAPE["anchors"]
    fit = fit_kernelized_hash(
        x, a0, topk=KSH_SHAPE["topk"], learning_rate=KSH_RATES[run],
        anchors=x[0, :, :m], labels=golden["ksh_labels"])
    want_a = golden[f"ksh{run}_A"]
    np.testing.assert_allclose(fit.hash_weights, want_a, atol=2e-5)
    np.testing.assert_allclose(fit.feature_mean,
                               golden[f"ksh{run}_mvec"][0, :, 0], atol=1e-6)
    assert np.abs(want_a - a0).max() > 1e-3  # the fit changed something
    codes = np.asarray(kernelized_hash_codes(
        golden["ksh_x2"], fit.anchors, fit.hash_weights, fit.feature_mean))
    np.testing.assert_array_equal(codes, golden[f"ksh{run}_codes"])


def tiny_with_official_weights():
    model = garden.build("ecoformer", preset="tiny")
    model.build()
    state = {}
    for key, shape in official_state_shapes(model).items():
        state[key] = official_value(key, shape).astype("float32")
    load_official_state(model, state)
    return model


def official_state_shapes(model):
    """Official state-dict keys and shapes of a model with this config."""
    shapes = {}
    h = model.embed_dims
    for i, d in enumerate(h):
        k = 7 if i == 0 else 3
        c_in = model.num_channels if i == 0 else h[i - 1]
        p = f"patch_embed{i + 1}"
        shapes.update({p + ".proj.weight": (d, c_in, k, k),
                       p + ".proj.bias": (d,), p + ".norm.weight": (d,),
                       p + ".norm.bias": (d,)})
        hid = int(d * model.mlp_ratios[i])
        heads = model.num_heads[i]
        for j in range(model.depths[i]):
            b = f"block{i + 1}.{j}"
            for n in ("norm1", "norm2"):
                shapes.update({f"{b}.{n}.weight": (d,), f"{b}.{n}.bias": (d,)})
            shapes.update({
                b + ".mlp.fc1.weight": (hid, d), b + ".mlp.fc1.bias": (hid,),
                b + ".mlp.fc2.weight": (d, hid), b + ".mlp.fc2.bias": (d,),
                b + ".mlp.dwconv.dwconv.weight": (hid, 1, 3, 3),
                b + ".mlp.dwconv.dwconv.bias": (hid,)})
            if model.attention_types[i] == "ecoformer":
                for n in ("to_qk", "to_v", "proj"):
                    shapes.update({f"{b}.attn.{n}.weight": (d, d),
                                   f"{b}.attn.{n}.bias": (d,)})
                ksh = b + ".attn.fast_attention.ksh"
                nb, m, hd = model.num_bits, model.num_anchors, d // heads
                shapes.update({ksh + ".A": (heads, nb, m),
                               ksh + ".mvec": (1, heads, 1, m),
                               ksh + ".anchor": (1, heads, m, hd)})
            else:
                shapes.update({b + ".attn.qkv.weight": (3 * d, d),
                               b + ".attn.qkv.bias": (3 * d,),
                               b + ".attn.proj.weight": (d, d),
                               b + ".attn.proj.bias": (d,)})
        shapes.update({f"norm{i + 1}.weight": (d,), f"norm{i + 1}.bias": (d,)})
    shapes.update({"head.weight": (model.num_classes, h[-1]),
                   "head.bias": (model.num_classes,)})
    return shapes


def test_logits_equal_official_with_given_hash_buffers(golden):
    model = tiny_with_official_weights()
    got = np.asarray(model(model_images(), training=False))
    np.testing.assert_allclose(got, golden["logits_set"], atol=1e-4,
                               rtol=1e-4)


def test_first_batch_fit_then_logits_equal_official(golden):
    """`set_retrain()` + first forward (official) == `fit_hash_functions`
    (layers fitted in forward order, anchors from the same permutations)."""
    model = tiny_with_official_weights()
    model.fit_hash_functions(model_images(), seed=0)
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            if block.attention_type != "ecoformer":
                continue
            key = f"fit:block{i + 1}.{j}.attn.fast_attention.ksh"
            params = {k: np.asarray(v) for k, v in
                      block.attn.hash_params.items()}
            np.testing.assert_allclose(params["anchors"],
                                       golden[key + ".anchor"][0], atol=1e-5)
            np.testing.assert_allclose(params["feature_mean"],
                                       golden[key + ".mvec"][0, :, 0],
                                       atol=1e-5)
            np.testing.assert_allclose(params["hash_weights"],
                                       golden[key + ".A"], atol=1e-4)
    got = np.asarray(model(model_images(), training=False))
    np.testing.assert_allclose(got, golden["logits_fit"], atol=1e-4,
                               rtol=1e-4)
    assert np.abs(golden["logits_fit"] - golden["logits_set"]).max() > 1e-2
