"""Writes data/official_ecoformer.npz by running the official EcoFormer code.

Usage (needs PyTorch and einops; not run by the test suite):

    git clone https://github.com/ziplab/EcoFormer && git -C EcoFormer \\
        checkout a277f9e
    python tests/garden/ecoformer/make_official_golden.py EcoFormer/pvt

The official files `pvt_v2.py`, `performer.py` and `hashing/` are imported
unmodified. Stand-ins replace what they import but the run does not need:
timm 0.4.9's `DropPath`/`to_2tuple`/`trunc_normal_`/`register_model`/`_cfg`
(eval mode: DropPath is the identity), `params.args` (the values of
`configs/pvt_v2/pvt_v2_b0_ecoformer.py`, with the `tiny` preset's nbits 8,
m 8, topk 3 for the model run) and `logger`. `torch.randperm` (anchor
choice) is replaced by NumPy's `default_rng(seed).permutation`, seed =
0, 1, 2, ... in call order, which is what
`EcoformerPVTClassifier.fit_hash_functions(seed=0)` uses.

Stored: parameter counts of pvt_v2_b0 (+ the tiny config), the KernelSH fit
(`train_hashing_weight_woeig`) of `ecoformer_official.ksh_inputs()` for each
learning rate in KSH_RATES (fitted A, mvec, codes of a second batch), and
the tiny model's logits (a) with the hash buffers set by `official_value`
(`set_retrain_resume`) and (b) after the official first-batch fit
(`set_retrain`), with every fitted buffer.
"""

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecoformer_official as eo  # noqa: E402

STUBS = {
    "timm/__init__.py": "",
    "timm/models/__init__.py": "",
    "timm/models/layers.py": '''
import collections.abc
from torch import nn
def to_2tuple(x):
    return tuple(x) if isinstance(x, collections.abc.Iterable) else (x, x)
def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
    return nn.init.trunc_normal_(t, mean=mean, std=std, a=a, b=b)
class DropPath(nn.Module):
    def __init__(self, drop_prob=None):
        super().__init__()
        self.drop_prob = drop_prob
    def forward(self, x):
        assert not self.training
        return x
''',
    "timm/models/registry.py": "def register_model(fn):\n    return fn\n",
    "timm/models/vision_transformer.py": "def _cfg(**kw):\n    return kw\n",
    "logger.py": "import logging\nlogger = logging.getLogger('eco')\n",
    "params.py": "import types\nargs = types.SimpleNamespace(\n"
                 "    attn_type='ecoformer', nbits=16, m=25, topk=10, k=300)\n",
}


def setup(official_dir):
    stub_dir = tempfile.mkdtemp()
    for path, text in STUBS.items():
        full = os.path.join(stub_dir, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    sys.path[:0] = [stub_dir, official_dir]


def patch_randperm(torch):
    calls = {"n": 0}

    def randperm(n, device=None, **_):
        seed = calls["n"]
        calls["n"] += 1
        return torch.as_tensor(np.random.default_rng(seed).permutation(n))

    torch.randperm = randperm


def ksh_runs(torch, out):
    from hashing.ksh import KernelSH

    s = eo.KSH_SHAPE
    x, a0, x2 = eo.ksh_inputs()
    xt = torch.from_numpy(x)
    # Labels exactly as EcoformerFastAttention.forward builds them.
    attn = xt @ xt.transpose(-2, -1)
    labels = torch.zeros_like(attn)
    _, idx = torch.topk(attn, k=s["topk"], dim=3)
    labels.scatter_(3, idx, 1.0)
    _, idx = torch.topk(attn, k=s["topk"], dim=3, largest=False)
    labels.scatter_(3, idx, -1.0)
    anchor = xt[0:1, :, :s["anchors"], :]  # the first m tokens of example 0
    out["ksh_x"], out["ksh_x2"], out["ksh_a0"] = x, x2, a0
    out["ksh_labels"] = labels.numpy()
    for r, lr in enumerate(eo.KSH_RATES):
        ksh = KernelSH(s["heads"], s["head_dim"], s["bits"], s["anchors"],
                       learning_rate=lr)
        ksh.A.data.copy_(torch.from_numpy(a0))
        ksh.train_hashing_weight_woeig(xt, anchor.clone(), labels.clone())
        with torch.no_grad():
            codes = ksh(torch.from_numpy(x2))
        out[f"ksh{r}_A"] = ksh.A.numpy().copy()
        out[f"ksh{r}_mvec"] = ksh.mvec.numpy().copy()
        out[f"ksh{r}_codes"] = codes.numpy()


def tiny_model(torch, pvt_v2):
    from functools import partial

    from torch import nn

    import garden

    cfg = garden.preset_info("ecoformer", "tiny")["config"]
    model = pvt_v2.PyramidVisionTransformerV2(
        img_size=cfg["image_size"], patch_size=4,
        embed_dims=cfg["embed_dims"], num_heads=cfg["num_heads"],
        mlp_ratios=cfg["mlp_ratios"], qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), depths=cfg["depths"],
        sr_ratios=[8, 4, 2, 1], num_classes=cfg["num_classes"])
    return model.eval(), cfg


def model_runs(torch, out):
    import params
    import pvt_v2

    b0 = pvt_v2.pvt_v2_b0(num_classes=1000)
    out["b0_params"] = sum(p.numel() for p in b0.parameters()
                           if p.requires_grad)
    params.args.nbits, params.args.m, params.args.topk = 8, 8, 3
    model, cfg = tiny_model(torch, pvt_v2)
    out["tiny_params"] = sum(p.numel() for p in model.parameters()
                             if p.requires_grad)
    state = {k: torch.from_numpy(
        eo.official_value(k, tuple(v.shape)).astype("float32"))
        for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    images = torch.from_numpy(eo.model_images()).permute(0, 3, 1, 2)
    model.set_retrain_resume()
    with torch.no_grad():
        out["logits_set"] = model(images).numpy()
    model.set_retrain()
    patch_randperm(torch)
    # Grad mode on, as in training: the fit inside forward backpropagates.
    out["logits_fit"] = model(images).detach().numpy()
    for k, v in model.state_dict().items():
        if ".ksh." in k:
            out["fit:" + k] = v.numpy().copy()


def main(official_dir):
    setup(os.path.abspath(official_dir))
    import torch

    torch.manual_seed(0)
    out = {}
    ksh_runs(torch, out)
    model_runs(torch, out)
    os.makedirs(eo.DATA, exist_ok=True)
    np.savez_compressed(eo.GOLDEN, **out)
    print("wrote", eo.GOLDEN, "b0 params", out["b0_params"], "tiny params",
          out["tiny_params"])


if __name__ == "__main__":
    main(sys.argv[1])
