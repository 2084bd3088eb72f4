"""SLAB presets as plain dicts: constructor kwargs plus the exact trainable
parameter count of the official implementation.

How `params` was derived: xinghaochen/SLAB @ f58db00,
`classification/models/slab_deit.py` + `prepbn.py`; every `nn.Parameter`
with `requires_grad=True` (what `main.py` logs as "number of params"). With
p = patch, C = channels, D = width, N = (image / p)^2 tokens, h = D / heads,
k = DWC kernel, F = mlp_ratio * D, K = classes, n = depth:

    patch_embed.proj (Conv2d C->D, k=s=p)   p*p*C*D + D
    cls_token (created, never used)         D
    pos_embed (1, N, D)                     N*D
    block (each)
        norm1 = LinearNorm                  LN 2D + RepBN (alpha 1, bn 2D)
        attn.qkv Linear(D, 3D)              3D^2 + 3D
        attn.proj Linear(D, D)              D^2 + D
        attn.dwc Conv2d(h, h, k, groups=h)  k*k*h + h   (shared by heads)
        attn.positional_encoding (1, N, D)  N*D
        norm2 = LinearNorm                  4D + 1
        mlp fc1, fc2                        2*D*F + F + D
    norm (LinearNorm)                       4D + 1
    head Linear(D, K)                       D*K + K

SLAB-DeiT-T (D=192, heads 3, n=12, N=196, k=5, F=768, K=1000):
147,648 + 192 + 37,632 + 12 * 484,930 + 769 + 193,000 = 6,198,401.
SLAB-DeiT-S (D=384, heads 6): 22,992,641. Both numbers were also obtained by
instantiating the official factories (`deit_tiny_patch16_224_linear_repbn`,
`deit_small_patch16_224_linear_repbn`, timm helpers stubbed) and summing
their trainable parameters. The Keras model has the same weights one for
one: q/k/v/o EinsumDense = qkv + proj, `dwc_kernel` (k, k, h, 1) +
`dwc_bias`, `key_position` (N, heads, h) = positional_encoding, PRepBN =
LayerNormalization (2D) + RepBatchNorm (gamma, beta, alpha); running
statistics and the schedule counter are non-trainable, as the official
buffers. `tests/garden/slab/test_slab_params.py` recomputes the counts from
this formula.
"""

PAPER = "https://arxiv.org/abs/2405.11582"
SOURCE = ("xinghaochen/SLAB classification/models/slab_deit.py, trainable "
          "nn.Parameters (formula in slab_presets.py)")


def official_slab_deit_params(image_size=224, patch_size=16, num_channels=3,
                              num_classes=1000, hidden_dim=192,
                              num_layers=12, num_heads=3, mlp_ratio=4.0,
                              dwc_kernel_size=5, unused_cls_token=True,
                              **_):
    """The formula above (official `slab_deit.VisionTransformer`)."""
    p, c, d, k = patch_size, num_channels, hidden_dim, dwc_kernel_size
    n_tok = (image_size // patch_size) ** 2
    head_dim = d // num_heads
    f = int(d * mlp_ratio)
    norm = 2 * d + 2 * d + 1
    block = (2 * norm + 3 * d * d + 3 * d + d * d + d
             + k * k * head_dim + head_dim + n_tok * d
             + d * f + f + f * d + d)
    return (p * p * c * d + d + (d if unused_cls_token else 0)
            + n_tok * d + num_layers * block + norm
            + d * num_classes + num_classes)


_DEIT_T = dict(
    image_size=224, patch_size=16, num_channels=3, num_classes=1000,
    hidden_dim=192, num_layers=12, num_heads=3, mlp_ratio=4.0,
    qkv_bias=True, drop_path_rate=0.0, attention_kernel="linear_relu",
    dwc_kernel_size=5, norm_type="prepbn", total_steps=60000, warm_steps=0,
    r0=1.0, layer_norm_epsilon=1e-6, unused_cls_token=True,
)

slab_presets = {
    "tiny": {
        "description": "Tiny SLAB-DeiT for tests: 8x8x1 images, patch 2 "
        "(4x4 token grid), width 32, 2 blocks, 2 heads, DWC kernel 3, PRepBN "
        "over 200 steps. r0 = 0.5 so that LN and RepBN are both live at step "
        "0 (with r0 = 1 the RepBN weights get exactly zero gradient on the "
        "first step, by design, which the sweep's every-variable gradient "
        "check would flag).",
        "config": dict(
            image_size=8, patch_size=2, num_channels=1, num_classes=10,
            hidden_dim=32, num_layers=2, num_heads=2, mlp_ratio=4.0,
            qkv_bias=True, drop_path_rate=0.0,
            attention_kernel="linear_relu", dwc_kernel_size=3,
            norm_type="prepbn", total_steps=200, warm_steps=0, r0=0.5,
            unused_cls_token=False,
        ),
        # 160 + 512 + 2 * 13,506 + 129 + 330 (formula, no cls token).
        "params": 28_143,
        "source": "formula in slab_presets.py (official slab_deit.py "
        "structure at the tiny sizes)",
    },
    "paper": {
        "description": "SLAB-DeiT-T (deit_tiny_patch16_224_linear_repbn, "
        "cfgs/slab_deit_t.yaml): 74.3% ImageNet-1K top-1 (official README).",
        "config": dict(_DEIT_T),
        "params": 6_198_401,
        "source": SOURCE,
    },
    "slab_deit_small": {
        "description": "SLAB-DeiT-S (deit_small_patch16_224_linear_repbn): "
        "80.0% ImageNet-1K top-1 (official README).",
        "config": dict(_DEIT_T, hidden_dim=384, num_heads=6),
        "params": 22_992_641,
        "source": SOURCE,
    },
}
slab_presets["slab_deit_tiny"] = dict(slab_presets["paper"])
