"""FIT presets: constructor kwargs plus exact trainable parameter counts.

Official code: google-research/pix2seq `architectures/transformers.py`
`class FIT` (commit 8563fdf; tf.keras). The repository ships no FIT config,
so the paper's model sizes are unverified (spec `fit.md` Sec. 6.1); the
`paper` preset is the spec's documented full-size choice (x_dim 512,
latent_dim 768, 8 / 12 heads, "(2)4(2)4(2)4(2)", 16 groups x 32 latents,
512x512 images at patch 4: L = 16384 tokens, n = 1024 per group).

Trainable parameters of the official `FIT` encoder (c = p*p*C token width,
X = x_dim, D = latent_dim, A = min(X, D) cross-attention width, r =
mlp_ratio; `stem_y` is only built when a second input `y` is passed, which
image encoding without glimpse shuffling never does):

    stem Dense c->X + stem_ln         cX + X + 2X
    x_pos_emb (learned)               n X
    latent_pos_emb (learned)          t m D
    local layer (TransformerEncoderLayer, width W = X):
        mha/ln 2W | q,k,v,o (tf.keras MHA, biases) 4W^2 + 4W |
        ffn/ln 2W | dense1 W->rW, dense2 rW->W  2rW^2 + rW + W
        = 12W^2 + 13W for r = 4
    global layer: the same with W = D
    read  (l2x_cross_attn): cross_mha/ln 2D | enc_ln 2X |
          q D->A, k X->A, v X->A, o A->D (+ biases)
    write (x2l_cross_attn, every block but the last): cross_mha/ln 2X |
          enc_ln 2D | q X->A, k D->A, v D->A, o A->X (+ biases)
    x_output_ln 2X, l_output_ln 2D

Ours (`FITEncoder`): `stem`, `stem_norm`, `x_pos_embed`, `latent_pos_embed`,
`official.layers.TransformerBlock`s (norm1, q/k/v/o `EinsumDense` with
biases, norm2, MLP), `FITCrossAttention` (query_norm, context_norm,
`MultiHeadAttention`), `x_norm`, `latent_norm`: the same tensors. The
classifier adds the garden's head Dense(X + D -> K) = (X + D) K + K on the
concatenated means of both outputs.
`tests/garden/fit/test_fit_params.py` checks this formula against the
models; the encoder counts were also obtained by running the official class
itself (tf_keras 2.21, `TF_USE_LEGACY_KERAS=1`; see README).
"""

from garden.fit.fit_layers import parse_layers

PAPER = "https://arxiv.org/abs/2305.12689"
LICENSE = "Apache-2.0"  # official code


def transformer_layer_params(width, mlp_ratio=4):
    hidden = int(width * mlp_ratio)
    return 4 * width * width + 4 * width + 2 * width * hidden + hidden \
        + width + 4 * width


def cross_attention_params(query_dim, context_dim, attn_dim):
    return (2 * query_dim + 2 * context_dim
            + query_dim * attn_dim + attn_dim
            + 2 * (context_dim * attn_dim + attn_dim)
            + attn_dim * query_dim + query_dim)


def fit_encoder_params(layers, num_groups, tokens_per_group,
                       latents_per_group, token_dim, x_dim, latent_dim,
                       mlp_ratio=4):
    """Trainable parameters of the official `FIT` (module docstring)."""
    blocks = parse_layers(layers)
    a = min(x_dim, latent_dim)
    total = token_dim * x_dim + 3 * x_dim
    total += tokens_per_group * x_dim
    total += num_groups * latents_per_group * latent_dim
    for i, (num_local, num_global) in enumerate(blocks):
        total += num_local * transformer_layer_params(x_dim, mlp_ratio)
        if num_global:
            total += cross_attention_params(latent_dim, x_dim, a)
            total += num_global * transformer_layer_params(latent_dim,
                                                           mlp_ratio)
            if i < len(blocks) - 1:
                total += cross_attention_params(x_dim, latent_dim, a)
    return total + 2 * x_dim + 2 * latent_dim


def fit_classifier_params(image_size, num_channels, patch_size, group_size,
                          layers, latents_per_group, x_dim, latent_dim,
                          num_classes, mlp_ratio=4, **_):
    t = (image_size // group_size) ** 2
    n = (group_size // patch_size) ** 2
    encoder = fit_encoder_params(
        layers, t, n, latents_per_group, patch_size ** 2 * num_channels,
        x_dim, latent_dim, mlp_ratio)
    return encoder + (x_dim + latent_dim) * num_classes + num_classes


fit_presets = {
    "tiny": {
        "description": "Tiny FIT for tests (spec Sec. 6.1 tiny config): 8x8x1 "
        "images, patch 1, 4 groups of 4x4 pixels (n = 16), 2 latents per "
        "group, widths 32, 2 heads, layers '(1)1(1)', 10 classes.",
        "config": dict(
            image_size=8, num_channels=1, patch_size=1, group_size=4,
            layers="(1)1(1)", latents_per_group=2, x_dim=32, latent_dim=32,
            x_num_heads=2, latent_num_heads=2, num_classes=10,
        ),
        # encoder 47,840 (official FIT run) + head (32 + 32)*10 + 10
        "params": 48_490,
        "source": "official FIT encoder count 47,840 (pix2seq "
        "architectures/transformers.FIT run with tf_keras; equals the "
        "formula in fit_presets.py) + garden head 650",
    },
    "paper": {
        "description": "Spec full-size FIT (garden choice; the paper's sizes "
        "are unverified, no official config): 512x512x3 images, patch 4, "
        "16 groups of 128x128 pixels (n = 1024), 32 latents per group, "
        "x_dim 512 / 8 heads, latent_dim 768 / 12 heads, "
        "'(2)4(2)4(2)4(2)', 1000-class head.",
        "config": dict(
            image_size=512, num_channels=3, patch_size=4, group_size=128,
            layers="(2)4(2)4(2)4(2)", latents_per_group=32, x_dim=512,
            latent_dim=768, x_num_heads=8, latent_num_heads=12,
            num_classes=1000,
        ),
        # encoder 119,112,448 (official FIT run) + head (512 + 768)*1000
        # + 1000
        "params": 120_393_448,
        "source": "official FIT encoder count 119,112,448 (pix2seq "
        "architectures/transformers.FIT at this config, run with tf_keras; "
        "equals the formula in fit_presets.py) + garden head 1,281,000. "
        "Config: spec fit.md Sec. 6.1 full-size choice, not a paper table.",
    },
}
