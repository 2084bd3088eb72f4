"""`SLABBlock`: the SLAB-DeiT transformer block and its norm choices.

Official code: xinghaochen/SLAB `classification/models/slab_deit.py`
(`Block`, `Attention`, `Mlp`):

    x = x + DropPath(SLA(norm1(x)));  x = x + DropPath(MLP(norm2(x)))

SLA is `official.attention` kernel `linear_relu` with its depthwise-conv
term on the token grid (`spatial_shape`, kernel 5, shared by the heads) and
the learnable key position embedding P (`key_position_embedding`), inside a
`MultiHeadAttention` whose q/k/v/o projections equal the official fused
`qkv` Linear(D, 3D) + `proj` Linear(D, D).
"""

import keras

from garden.slab.slab_norms import ProgressiveRepBN
from garden.slab.slab_norms import RepBatchNorm
from official.attention import MultiHeadAttention
from official.layers.drop_path import DropPath
from official.layers.mlp import MLP
from official.registry import register_layer

NORM_TYPES = ("prepbn", "repbn", "layernorm", "folded")


def make_norm(norm_type, name, dtype, total_steps=60000, warm_steps=0,
              r0=1.0, layer_norm_epsilon=1e-6):
    """The norm layer for `norm_type`, or None for "folded" (identity)."""
    if norm_type == "prepbn":
        return ProgressiveRepBN(total_steps=total_steps,
                                warm_steps=warm_steps, r0=r0,
                                layer_norm_epsilon=layer_norm_epsilon,
                                dtype=dtype, name=name)
    if norm_type == "repbn":
        return RepBatchNorm(dtype=dtype, name=name)
    if norm_type == "layernorm":
        return keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name=name)
    if norm_type == "folded":
        return None
    raise ValueError(
        f"SLAB: unknown norm_type {norm_type!r}; expected one of {NORM_TYPES}.")


@register_layer()
class SLABBlock(keras.layers.Layer):
    """Pre-norm block with SLA (or softmax) attention and PRepBN norms.

    Args:
        num_heads: int.
        spatial_shape: (rows, cols) token grid (the DWC term needs it).
        mlp_ratio: float.
        qkv_bias: bool. (With norm_type "folded" the q/k/v projections
            always carry a bias: the folded norm shift lives there.)
        drop_path: float.
        attention_kernel: "linear_relu" (SLA: DWC + key positions) or any
            other `official.attention` kernel (plain, e.g. "dense").
        dwc_kernel_size: int. 5 in SLAB.
        norm_type: "prepbn" (paper), "repbn", "layernorm" or "folded" (no
            norm: weights folded into the following projections).
        total_steps, warm_steps, r0: PRepBN schedule.
        layer_norm_epsilon: float.
    """

    def __init__(self, num_heads, spatial_shape, mlp_ratio=4.0,
                 qkv_bias=True, drop_path=0.0,
                 attention_kernel="linear_relu", dwc_kernel_size=5,
                 norm_type="prepbn", total_steps=60000, warm_steps=0,
                 r0=1.0, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.spatial_shape = tuple(spatial_shape)
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.drop_path = drop_path
        self.attention_kernel = attention_kernel
        self.dwc_kernel_size = dwc_kernel_size
        self.norm_type = norm_type
        self.total_steps = total_steps
        self.warm_steps = warm_steps
        self.r0 = r0
        self.layer_norm_epsilon = layer_norm_epsilon
        if norm_type not in NORM_TYPES:
            raise ValueError(
                f"SLABBlock: unknown norm_type {norm_type!r}; expected one "
                f"of {NORM_TYPES}.")

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(
                f"SLABBlock: width {dim} is not divisible by num_heads "
                f"{self.num_heads}.")
        p = self.dtype_policy
        norm_kw = dict(total_steps=self.total_steps,
                       warm_steps=self.warm_steps, r0=self.r0,
                       layer_norm_epsilon=self.layer_norm_epsilon)
        self.norm1 = make_norm(self.norm_type, "norm1", p, **norm_kw)
        self.norm2 = make_norm(self.norm_type, "norm2", p, **norm_kw)
        options = {}
        if self.attention_kernel == "linear_relu":
            options = {"spatial_shape": list(self.spatial_shape),
                       "dwc_kernel_size": self.dwc_kernel_size,
                       "key_position_embedding": True}
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.attn = MultiHeadAttention(
            self.num_heads, dim // self.num_heads,
            qkv_bias=self.qkv_bias or self.norm_type == "folded",
            kernel=self.attention_kernel, kernel_options=options,
            kernel_initializer=init, dtype=p, name="attn")
        self.mlp = MLP(int(dim * self.mlp_ratio), activation="gelu",
                       kernel_initializer=init, dtype=p, name="mlp")
        self.drop = DropPath(self.drop_path, dtype=p)
        for layer in (self.norm1, self.norm2):
            if layer is not None:
                layer.build(input_shape)
        self.attn.build(input_shape)
        self.mlp.build(input_shape)

    def _norm(self, layer, x, training):
        return x if layer is None else layer(x, training=training)

    def call(self, x, training=False):
        h = self.attn(self._norm(self.norm1, x, training))
        x = x + self.drop(h, training=training)
        h = self.mlp(self._norm(self.norm2, x, training), training=training)
        return x + self.drop(h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "spatial_shape": list(self.spatial_shape),
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "drop_path": self.drop_path,
            "attention_kernel": self.attention_kernel,
            "dwc_kernel_size": self.dwc_kernel_size,
            "norm_type": self.norm_type,
            "total_steps": self.total_steps,
            "warm_steps": self.warm_steps,
            "r0": self.r0,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
