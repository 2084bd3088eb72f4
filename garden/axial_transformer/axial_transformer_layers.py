"""Layers of the Axial Transformer (Ho et al. 2019, arXiv 1912.12180).

Official code: google-research/google-research `axial/transformers.py`
(`AttnBlock`, `MlpBlock`, `TransformerBlock`) and `axial/nn.py` (`shift`,
`nonlinearity`, `Dense`, `LayerNorm`). Axial *attention* (attend along one
axis, the `axial` kernel of `official.attention`) and axial *positional
embeddings* (a sum of one learned table per axis) are separate things; both
live here.
"""

import math

import keras
from keras import ops

from official.attention import attention
from official.registry import register_layer


def shift(x, axis, num=1):
    """Shifts `x` by `num` along `axis`: pads `num` zeros at the start and
    drops the last `num` entries (official `nn.shift`, num > 0)."""
    length = x.shape[axis]
    pad = [[0, 0] for _ in x.shape]
    pad[axis] = [num, 0]
    kept = [slice(None)] * len(x.shape)
    kept[axis] = slice(0, length - num)
    return ops.pad(x[tuple(kept)], pad)


def shift_down(x):
    """(B, H, W, D): row r receives row r - 1; row 0 is zeros (§3.2)."""
    return shift(x, 1)


def shift_right(x):
    """(B, H, W, D): column c receives column c - 1; column 0 is zeros."""
    return shift(x, 2)


def sigmoid_gelu(x):
    """x * sigmoid(1.702 x): the official `nn.nonlinearity` (the sigmoid
    approximation of GELU, Hendrycks & Gimpel 2016)."""
    return x * ops.sigmoid(1.702 * x)


def variance_scaling(scale):
    """TF1 `variance_scaling_initializer(scale)`: truncated normal, fan-in
    (official `nn.Dense` / `nn.Conv2d`)."""
    return keras.initializers.VarianceScaling(
        scale=scale, mode="fan_in", distribution="truncated_normal")


def embedding_init(scale, dim):
    """N(0, (scale / sqrt(dim))^2): the official `emb_init(std)`."""
    return keras.initializers.RandomNormal(stddev=scale / math.sqrt(dim))


@register_layer()
class AxialPositionalEmbedding(keras.layers.Layer):
    """Sum of one learned (N_i, D) table per spatial axis (§3, official
    `pos_embs_h` + `pos_embs_w`): an (N_1, ..., N_k, D) embedding with
    D·sum(N_i) parameters. Not axial attention.

    Args:
        spatial_shape: list of ints (N_1, ..., N_k).
        hidden_dim: int. D.
        init_scale: float. Tables ~ N(0, (init_scale / sqrt(D))^2).

    Call: x (B, N_1, ..., N_k, D) -> x + embedding.
    """

    def __init__(self, spatial_shape, hidden_dim, init_scale=5.0, **kwargs):
        super().__init__(**kwargs)
        self.spatial_shape = [int(n) for n in spatial_shape]
        self.hidden_dim = hidden_dim
        self.init_scale = init_scale

    def build(self, input_shape=None):
        self.tables = [
            self.add_weight(
                shape=(n, self.hidden_dim), name=f"axis_{i}",
                initializer=embedding_init(self.init_scale, self.hidden_dim))
            for i, n in enumerate(self.spatial_shape)
        ]

    def table(self):
        """The (N_1, ..., N_k, D) embedding."""
        k = len(self.spatial_shape)
        total = 0.0
        for i, t in enumerate(self.tables):
            shape = [1] * k + [self.hidden_dim]
            shape[i] = self.spatial_shape[i]
            total = total + ops.reshape(ops.cast(t, self.compute_dtype), shape)
        return total

    def call(self, x):
        return x + self.table()[None]

    def get_config(self):
        return {**super().get_config(), "spatial_shape": self.spatial_shape,
                "hidden_dim": self.hidden_dim, "init_scale": self.init_scale}


@register_layer()
class AxialAttention(keras.layers.Layer):
    """Multi-head attention along one spatial axis (official `AttnBlock`).

    q, k, v: Dense(D -> D) with bias (heads of D / num_heads), the `axial`
    kernel of `official.attention` along `axis` (causal along it when
    `masked`), output projection Dense(D -> D) initialised with variance
    scale `out_init_scale` (1e-10 in the paper configs: blocks start as the
    identity).

    Args:
        hidden_dim: int. D.
        num_heads: int.
        axis: int. Spatial axis attended: 0 = along the height (column
            attention), 1 = along the width (row attention).
        masked: bool. Causal along `axis`.
        out_init_scale: float.

    Call: x (B, N_1, ..., N_k, D) -> (B, N_1, ..., N_k, D); works for any
    static spatial shape (the sampler feeds single rows (B, 1, W, D)).
    """

    def __init__(self, hidden_dim, num_heads, axis, masked=False,
                 out_init_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"AxialAttention: hidden_dim ({hidden_dim}) must be a "
                f"multiple of num_heads ({num_heads}).")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.axis = axis
        self.masked = masked
        self.out_init_scale = out_init_scale
        p = self.dtype_policy
        self.query = keras.layers.Dense(
            hidden_dim, kernel_initializer=variance_scaling(1.0), dtype=p,
            name="q")
        self.key = keras.layers.Dense(
            hidden_dim, kernel_initializer=variance_scaling(1.0), dtype=p,
            name="k")
        self.value = keras.layers.Dense(
            hidden_dim, kernel_initializer=variance_scaling(1.0), dtype=p,
            name="v")
        self.proj_out = keras.layers.Dense(
            hidden_dim, kernel_initializer=variance_scaling(out_init_scale),
            dtype=p, name="proj_out")

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value, self.proj_out):
            layer.build(input_shape)

    def call(self, x):
        spatial = tuple(x.shape[1:-1])
        head_dim = self.hidden_dim // self.num_heads
        flat = (-1, math.prod(spatial), self.num_heads, head_dim)
        q = ops.reshape(self.query(x), flat)
        k = ops.reshape(self.key(x), flat)
        v = ops.reshape(self.value(x), flat)
        out = attention(q, k, v, kernel="axial", causal=self.masked,
                        spatial_shape=spatial, axis=self.axis)
        out = ops.reshape(out, (-1, *spatial, self.hidden_dim))
        return self.proj_out(out)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads, "axis": self.axis,
                "masked": self.masked, "out_init_scale": self.out_init_scale}


@register_layer()
class AxialTransformerBlock(keras.layers.Layer):
    """Pre-LN block (official `TransformerBlock`):
    x += Dropout(AxialAttention(LN(x))); x += Dropout(MLP(LN(x))), with
    MLP = Dense(D -> D·mlp_ratio), x·sigmoid(1.702x), Dense(-> D) (the last
    initialised with `res_init_scale`). LayerNorm epsilon 1e-5 (official
    `nn.LayerNorm`).

    Args:
        hidden_dim, num_heads, axis, masked: see `AxialAttention`.
        mlp_ratio: int. The official `hdim_factor`.
        dropout: float. On both residual branches.
        res_init_scale: float. Variance scale of both output projections.
        layer_norm_epsilon: float.
    """

    def __init__(self, hidden_dim, num_heads, axis, masked=False, mlp_ratio=1,
                 dropout=0.0, res_init_scale=1.0, layer_norm_epsilon=1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.axis = axis
        self.masked = masked
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.res_init_scale = res_init_scale
        self.layer_norm_epsilon = layer_norm_epsilon
        p = self.dtype_policy
        self.layernorm_attn = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="layernorm_attn")
        self.attn = AxialAttention(
            hidden_dim, num_heads, axis, masked=masked,
            out_init_scale=res_init_scale, dtype=p, name="attn")
        self.layernorm_mlp = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="layernorm_mlp")
        self.mlp_in = keras.layers.Dense(
            hidden_dim * mlp_ratio, kernel_initializer=variance_scaling(1.0),
            dtype=p, name="mlp_proj_in")
        self.mlp_out = keras.layers.Dense(
            hidden_dim, kernel_initializer=variance_scaling(res_init_scale),
            dtype=p, name="mlp_proj_out")
        self.drop = keras.layers.Dropout(dropout, dtype=p)

    def build(self, input_shape):
        self.layernorm_attn.build(input_shape)
        self.attn.build(input_shape)
        self.layernorm_mlp.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build(tuple(input_shape[:-1])
                           + (self.hidden_dim * self.mlp_ratio,))

    def call(self, x, training=None):
        a = self.attn(self.layernorm_attn(x))
        x = x + self.drop(a, training=training)
        m = self.mlp_out(sigmoid_gelu(self.mlp_in(self.layernorm_mlp(x))))
        return x + self.drop(m, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads, "axis": self.axis,
                "masked": self.masked, "mlp_ratio": self.mlp_ratio,
                "dropout": self.dropout,
                "res_init_scale": self.res_init_scale,
                "layer_norm_epsilon": self.layer_norm_epsilon}
