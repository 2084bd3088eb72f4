"""EcoFormer presets: PVTv2 + EcoFormer attention, as plain dicts.

`params` is the exact trainable parameter count of the official model,
ziplab/EcoFormer@a277f9e `pvt/pvt_v2.py` with `attn_type="ecoformer"`
(`pvt/configs/pvt_v2/pvt_v2_*_ecoformer.py`), i.e.
`sum(p.numel() for p in model.parameters() if p.requires_grad)` as logged by
`pvt/main.py`. It was counted twice: by the formula below and by running the
official `pvt_v2.py` itself (PyTorch 2.14 CPU, with small stand-ins for
timm's `DropPath`/`to_2tuple`/`trunc_normal_`, `params.args` and `logger`;
tests/garden/ecoformer/make_official_golden.py); both give 3,136,328 for
PVTv2-B0 + EcoFormer (3,198,280 with MSA in every stage).

Per stage i (width D, MLP hidden h = r*D, kernel k = 7 in stage 1 else 3,
C_in = image channels or the previous width):

    patch_embed{i}.proj (Conv2d C_in -> D, k x k)   k*k*C_in*D + D
    patch_embed{i}.norm (LayerNorm)                 2D
    block (each of depth_i):
        norm1, norm2                                4D
        attn, stages 1-3 (EcoformerSelfAttention):  to_qk D^2+D, to_v D^2+D,
                                                    proj D^2+D   = 3D^2 + 3D
        attn, stage 4 (softmax `Attention`):        qkv 3D^2+3D, proj D^2+D
                                                                 = 4D^2 + 4D
        mlp: fc1 D*h+h, dwconv (3x3 depthwise) 9h+h, fc2 h*D+D
    norm{i} (LayerNorm)                             2D
    head (Linear D_4 -> classes)                    D_4*K + K

The hash functions are **not** in `params`: the official `KernelSH` keeps
A (H, b, m), `mvec` (1, H, 1, m) and `anchor` (1, H, m, d) as
`register_buffer`s, updated by the KSH optimisation (`optimizer` over a
detached copy, result copied in) and never by the task gradient; here they
are non-trainable weights (saved with the model): per EcoFormer layer
H*b*m + H*m*d + H*m, i.e. 19,600 values in PVTv2-B0 (b = 16, m = 25,
d = 32). The official buffers also hold an unused Performer
`projection_matrix` (int(d ln d) x d = 110 x 32 per layer, 21,120 values in
B0), not reproduced.
"""

PAPER = "https://arxiv.org/abs/2209.09004"
SOURCE = "ziplab/EcoFormer@a277f9e pvt/pvt_v2.py (attn_type=ecoformer)"
LICENSE = "Apache-2.0"  # official code and released checkpoints

_B0 = dict(embed_dims=[32, 64, 160, 256], num_heads=[1, 2, 5, 8],
           mlp_ratios=[8, 8, 4, 4], depths=[2, 2, 2, 2])
_B1 = dict(embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8],
           mlp_ratios=[8, 8, 4, 4], depths=[2, 2, 2, 2])
_IMAGENET = dict(image_size=224, num_channels=3, num_classes=1000,
                 num_bits=16, num_anchors=25, topk=10, drop_path=0.1,
                 label_smoothing=0.1)


def official_params(image_size, num_channels, embed_dims, mlp_ratios,
                    depths, num_classes, attention_types=None, **_):
    """The formula of the module docstring."""
    types = attention_types or ["ecoformer"] * (len(embed_dims) - 1) + [
        "msa"]
    total = 0
    for i, d in enumerate(embed_dims):
        k = 7 if i == 0 else 3
        c_in = num_channels if i == 0 else embed_dims[i - 1]
        h = int(d * mlp_ratios[i])
        attn = 3 * d * d + 3 * d if types[i] == "ecoformer" else (
            4 * d * d + 4 * d)
        block = 4 * d + attn + (d * h + h) + (9 * h + h) + (h * d + d)
        total += k * k * c_in * d + d + 2 * d + depths[i] * block + 2 * d
    return total + embed_dims[-1] * num_classes + num_classes


ecoformer_presets = {
    "tiny": {
        "description": "Tiny PVTv2 + EcoFormer for tests: 64x64x3 images "
        "(token grids 16x16, 8x8, 4x4, 2x2), widths 16/32/48/64, one block "
        "per stage, b = 8 bits, m = 8 anchors, 10 classes, no stochastic "
        "depth (its random ops are most of the XLA program).",
        "config": dict(
            image_size=64, num_channels=3, embed_dims=[16, 32, 48, 64],
            num_heads=[1, 2, 2, 4], mlp_ratios=[4, 4, 2, 2],
            depths=[1, 1, 1, 1], num_classes=10, num_bits=8, num_anchors=8,
            topk=3, drop_path=0.0),
        "params": 118_778,
        "source": "official_params() formula in ecoformer_presets.py "
        "(= official pvt_v2.PyramidVisionTransformerV2 with this config, "
        "checked by running it)",
    },
    "paper": {
        "description": "pvt_v2_b0 + EcoFormer (the paper's headline model, "
        "README model zoo: 70.44% ImageNet-1K top-1, 0.54 B mul, 2.5 B pJ): "
        "hashed attention in stages 1-3, softmax MSA in stage 4, b = 16, "
        "m = 25, topk = 10, fine-tuned 30 epochs from PVTv2-B0 MSA.",
        "config": dict(**_IMAGENET, **_B0),
        "params": 3_136_328,
        "source": SOURCE + " pvt_v2_b0, trainable nn.Parameters (run and "
        "formula; hash buffers excluded, see module docstring)",
    },
    "pvt_v2_b1": {
        "description": "pvt_v2_b1 + EcoFormer (78.38% top-1 in the official "
        "README).",
        "config": dict(**_IMAGENET, **_B1),
        "params": 11_891_368,
        "source": SOURCE + " pvt_v2_b1 (run and formula)",
    },
    "pvt_v2_b2": {
        "description": "pvt_v2_b2 + EcoFormer (81.28% top-1).",
        "config": dict(**_IMAGENET, **{**_B1, "depths": [3, 4, 6, 3]}),
        "params": 20_367_528,
        "source": SOURCE + " pvt_v2_b2 (run and formula)",
    },
    "pvt_v2_b3": {
        "description": "pvt_v2_b3 + EcoFormer (81.96% top-1).",
        "config": dict(**_IMAGENET, **{**_B1, "depths": [3, 4, 18, 3]}),
        "params": 34_084_008,
        "source": SOURCE + " pvt_v2_b3 (run and formula)",
    },
    "pvt_v2_b4": {
        "description": "pvt_v2_b4 + EcoFormer (81.90% top-1).",
        "config": dict(**_IMAGENET, **{**_B1, "depths": [3, 8, 27, 3]}),
        "params": 45_665_704,
        "source": SOURCE + " pvt_v2_b4 (run and formula)",
    },
}
ecoformer_presets["pvt_v2_b0"] = {
    **ecoformer_presets["paper"],
    "description": "Alias of 'paper' (upstream name pvt_v2_b0 + "
    "configs/pvt_v2/pvt_v2_b0_ecoformer.py).",
}
