"""Axial Transformer presets: constructor kwargs + the official parameter
count.

How `params` was derived: the official code (google-research/google-research
`axial/`, `models.py` `SlicedChannelModel` -> `transformers.Transformer3d`,
`config_imagenet32.py` / `config_imagenet64.py`) logs
`sum(prod(v.shape) for v in trainable_variables)`; we count the same
variables from the module definitions (D = emb_dim, f = hdim_factor,
K = num_embs = 256, H x W image, C channels):

    TransformerBlock (each)              (4 + 2f)·D^2 + (9 + f)·D
        AttnBlock q, k, v, proj_out: 4·(D^2 + D) | MlpBlock proj_in
        D·fD + fD, proj_out fD·D + D | layernorm_attn, layernorm_mlp 4D
    Transformer2d
        embs K·D | pos_embs_h H·D | pos_embs_w W·D
        num_outer_layers + num_inner_layers blocks
        final_ln 2D | final_dense D·K + K
    Transformer3d (C > 1) adds
        pos_embs_h H·D | pos_embs_w W·D
        exterior_input_conv (3x3, 2C -> D) 9·2C·D + D
        num_exterior_layers blocks

ImageNet 32x32 (D=1536, f=1, 8/8/8 layers): block 14,171,136; 24 blocks
340,107,264; Transformer2d rest 393,216 + 98,304 + 3,072 + 393,472 =
888,064; Transformer3d rest 98,304 + 84,480 = 182,784 -> 341,178,112.
ImageNet 64x64 (D=2048): block 25,186,304; 24 blocks 604,471,296;
Transformer2d rest 524,288 + 262,144 + 4,096 + 524,544 = 1,315,072;
Transformer3d rest 262,144 + 112,640 = 374,784 -> 606,161,152.
`tests/garden/axial_transformer/test_axial_transformer_params.py` recomputes
these from the formula and checks the Keras models (formula == model on
several small configs; the sweep checks the `paper` preset itself).
"""

PAPER = "https://arxiv.org/abs/1912.12180"
LICENSE = "Apache-2.0"  # official code
SOURCE = ("google-research/google-research axial/ (models.SlicedChannelModel"
          " -> transformers.Transformer3d), trainable variables counted from "
          "the module definitions (formula in this module's docstring)")

axial_transformer_presets = {
    "tiny": {
        "description": "Tiny single-channel Axial Transformer for tests and "
        "the digits proxy: 8x8 images, 17 grey levels (sklearn digits), "
        "D=32, 2 heads, MLP x2, one outer row/column pair, 2 inner rows; "
        "init scales 1 (the paper's 1e-10 makes every block start as the "
        "identity, which hides wiring errors in receptive-field tests).",
        "config": dict(
            image_height=8, image_width=8, num_channels=1, num_values=17,
            hidden_dim=32, num_heads=2, mlp_ratio=2, num_exterior_layers=0,
            num_outer_layers=2, num_inner_layers=2, dropout=0.0,
            emb_init_scale=1.0, res_init_scale=1.0, logits_init_scale=1.0,
        ),
        # K·D 544 + (H+W)·D 512 + 4 blocks · 8,544 + 2D 64 + D·K+K 561.
        "params": 35_857,
        "source": "formula in this module's docstring (Transformer2d)",
    },
    "paper": {
        "description": "ImageNet 32x32 (config_imagenet32.py): "
        "SlicedChannelModel, RGB channels generated one at a time, D=1536, "
        "16 heads, hdim_factor 1, 8 exterior / 8 outer / 8 inner layers, "
        "dropout 0.04, init scales emb 5, residual and logits 1e-10.",
        "config": dict(
            image_height=32, image_width=32, num_channels=3, num_values=256,
            hidden_dim=1536, num_heads=16, mlp_ratio=1,
            num_exterior_layers=8, num_outer_layers=8, num_inner_layers=8,
            dropout=0.04, emb_init_scale=5.0, res_init_scale=1e-10,
            logits_init_scale=1e-10,
        ),
        "params": 341_178_112,
        "source": SOURCE,
        "license": LICENSE,
        "paper": PAPER,
        "training": "Adam(0.9, 0.999), max_lr 1e-4, linear warm-up 5000 "
        "steps, clip-norm 1.0, EMA 0.99995, batch 64 (config_imagenet32.py)",
    },
    "imagenet64": {
        "description": "ImageNet 64x64 (config_imagenet64.py): as 'paper' "
        "with D=2048 and dropout 0.",
        "config": dict(
            image_height=64, image_width=64, num_channels=3, num_values=256,
            hidden_dim=2048, num_heads=16, mlp_ratio=1,
            num_exterior_layers=8, num_outer_layers=8, num_inner_layers=8,
            dropout=0.0, emb_init_scale=5.0, res_init_scale=1e-10,
            logits_init_scale=1e-10,
        ),
        "params": 606_161_152,
        "source": SOURCE,
        "license": LICENSE,
        "paper": PAPER,
        "training": "as 'paper' with max_lr 2e-4 (config_imagenet64.py)",
    },
}
axial_transformer_presets["imagenet32"] = {
    **axial_transformer_presets["paper"],
    "description": "Alias of 'paper' (upstream config name).",
}
PRESETS = axial_transformer_presets  # the registered presets
