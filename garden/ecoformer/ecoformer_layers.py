"""Layers of the EcoFormer PVTv2 backbone (only this paper uses them).

Official code: ziplab/EcoFormer@a277f9e `pvt/pvt_v2.py` (`OverlapPatchEmbed`,
`Mlp` + `DWConv`, `Block`, `Attention`) and `pvt/performer.py`
(`EcoformerSelfAttention`). Initialisation as `_init_weights` there:
Linear weights truncated normal std 0.02 and zero bias, LayerNorm 1 / 0,
Conv2d normal(0, sqrt(2 / fan_out)) with fan_out = k*k*C_out / groups and
zero bias. Every weight gets its own initializer instance (an unseeded
Keras initializer shared by two weights gives them equal values).
"""

import math

import keras
import numpy as np
from keras import ops

from official.attention import MultiHeadAttention
from official.attention import attention
from official.attention.interface import get_kernel_params
from official.attention.kernels.ecoformer import l2_normalize_heads
from official.layers.drop_path import DropPath
from official.quantization.kernelized_hash import fit_kernelized_hash
from official.registry import register_layer

ATTENTION_TYPES = ("ecoformer", "msa")


def linear_init():
    return keras.initializers.TruncatedNormal(stddev=0.02)


def conv_init(kernel_size, out_channels, groups=1):
    fan_out = kernel_size * kernel_size * out_channels // groups
    return keras.initializers.RandomNormal(stddev=math.sqrt(2.0 / fan_out))


def dense(units, name, policy):
    return keras.layers.Dense(units, kernel_initializer=linear_init(),
                              dtype=policy, name=name)


@register_layer()
class OverlapPatchEmbed(keras.layers.Layer):
    """Conv2d(k, stride, padding k // 2) + LayerNorm (PVTv2 sec. 3.2).

    PyTorch pads k // 2 on every side; Keras "same" padding would pad
    asymmetrically for stride > 1, so the padding is explicit.

    Args:
        patch_size: int. Kernel size k (7 in stage 1, 3 after).
        stride: int. 4 in stage 1, 2 after.
        hidden_dim: int.
        layer_norm_epsilon: float. The official `nn.LayerNorm(embed_dim)`
            default, 1e-5.

    Returns (B, H', W', hidden_dim) normalised feature maps.
    """

    def __init__(self, patch_size, stride, hidden_dim,
                 layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.stride = stride
        self.hidden_dim = hidden_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        p = self.dtype_policy
        self.pad = keras.layers.ZeroPadding2D(patch_size // 2, dtype=p)
        self.proj = keras.layers.Conv2D(
            hidden_dim, patch_size, strides=stride, padding="valid",
            kernel_initializer=conv_init(patch_size, hidden_dim), dtype=p,
            name="proj")
        self.norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="norm")

    def build(self, input_shape):
        padded = self.pad.compute_output_shape(input_shape)
        self.proj.build(padded)
        self.norm.build(self.proj.compute_output_shape(padded))

    def call(self, x):
        return self.norm(self.proj(self.pad(x)))

    def compute_output_shape(self, input_shape):
        return self.proj.compute_output_shape(
            self.pad.compute_output_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size,
                "stride": self.stride, "hidden_dim": self.hidden_dim,
                "layer_norm_epsilon": self.layer_norm_epsilon}


@register_layer()
class DWConvMLP(keras.layers.Layer):
    """PVTv2 MLP: fc1 -> 3x3 depthwise conv on the token grid -> GELU -> fc2.

    Args:
        hidden_dim: int. r * D.
        grid: (rows, cols) of the token grid (raster order).
    """

    def __init__(self, hidden_dim, grid, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.grid = tuple(int(g) for g in grid)
        p = self.dtype_policy
        self.fc1 = dense(hidden_dim, "fc1", p)
        self.dwconv = keras.layers.DepthwiseConv2D(
            3, padding="same",
            depthwise_initializer=conv_init(3, hidden_dim, groups=hidden_dim),
            dtype=p, name="dwconv")
        self.fc2 = None

    def build(self, input_shape):
        dim = input_shape[-1]
        self.fc2 = dense(dim, "fc2", self.dtype_policy)
        self.fc1.build(input_shape)
        self.dwconv.build((None,) + self.grid + (self.hidden_dim,))
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def call(self, x):
        rows, cols = self.grid
        h = self.fc1(x)
        h = ops.reshape(h, (-1, rows, cols, self.hidden_dim))
        h = ops.reshape(self.dwconv(h), (-1, rows * cols, self.hidden_dim))
        return self.fc2(keras.activations.gelu(h, approximate=False))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim,
                "grid": list(self.grid)}


@register_layer()
class EcoformerAttention(keras.layers.Layer):
    """EcoFormer self-attention (official `EcoformerSelfAttention`).

    One shared projection `to_qk` (Q == K), `to_v`, the `ecoformer` kernel
    (official.attention.kernels.ecoformer: l2-normalised qk, kernelized
    b-bit hash codes, linear attention), output `proj`. The hash functions
    (A, anchors, mean) are non-trainable weights made by the kernel's
    `register_kernel(params=...)` hook; `fit_hash` learns them with KSH
    (eager, outside `call`), like the official first-batch fit.

    Args:
        num_heads: int.
        num_bits: int. b (official `--nbits` 16).
        num_anchors: int. m (official `--m` 25).
        normalize: "official" (released `linear_attention_bias`) or
            "kernel_smoother" (see the kernel's docstring).
        qkv_bias: bool.
    """

    def __init__(self, num_heads, num_bits=16, num_anchors=25,
                 normalize="official", qkv_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_bits = num_bits
        self.num_anchors = num_anchors
        self.normalize = normalize
        self.qkv_bias = qkv_bias
        self.hash_params = {}

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(
                f"EcoformerAttention: width {dim} is not divisible by "
                f"num_heads {self.num_heads}.")
        self.head_dim = dim // self.num_heads
        p = self.dtype_policy
        self.to_qk = keras.layers.Dense(
            dim, use_bias=self.qkv_bias, kernel_initializer=linear_init(),
            dtype=p, name="to_qk")
        self.to_v = keras.layers.Dense(
            dim, use_bias=self.qkv_bias, kernel_initializer=linear_init(),
            dtype=p, name="to_v")
        self.proj = dense(dim, "proj", p)
        for layer in (self.to_qk, self.to_v, self.proj):
            layer.build(input_shape)
        shape = (None, None, self.num_heads, self.head_dim)
        self.hash_params = dict(get_kernel_params("ecoformer")(
            self, shape, shape, self.num_heads, self.num_heads,
            self.head_dim, {"num_bits": self.num_bits,
                            "num_anchors": self.num_anchors}))

    def _heads(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.num_heads,
                               self.head_dim))

    def call(self, x):
        qk = self._heads(self.to_qk(x))
        v = self._heads(self.to_v(x))
        out = attention(qk, qk, v, kernel="ecoformer",
                        normalize=self.normalize, **self.hash_params)
        shape = ops.shape(out)
        return self.proj(ops.reshape(out, (shape[0], shape[1], -1)))

    def hash_inputs(self, x):
        """(B, H, N, d) l2-normalised shared queries/keys, NumPy."""
        z = l2_normalize_heads(ops.transpose(self._heads(self.to_qk(x)),
                                             (0, 2, 1, 3)))
        return np.asarray(ops.convert_to_numpy(z))

    def fit_hash(self, x, topk=10, iterations=100, learning_rate=5e-4,
                 momentum=0.9, seed=0):
        """KSH-fits the hash functions on the tokens `x` (B, N, D) of one
        batch and assigns A, anchors and mean. Returns the `KSHFit`."""
        if not self.built:
            self.build(tuple(x.shape))
        fit = fit_kernelized_hash(
            self.hash_inputs(x),
            ops.convert_to_numpy(self.hash_params["hash_weights"]),
            topk=topk, iterations=iterations, learning_rate=learning_rate,
            momentum=momentum, seed=seed)
        self.hash_params["hash_weights"].assign(fit.hash_weights)
        self.hash_params["anchors"].assign(fit.anchors)
        self.hash_params["feature_mean"].assign(fit.feature_mean)
        return fit

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "num_bits": self.num_bits, "num_anchors": self.num_anchors,
                "normalize": self.normalize, "qkv_bias": self.qkv_bias}


@register_layer()
class PVTBlock(keras.layers.Layer):
    """Pre-norm block: x + DropPath(attn(norm1(x))), x + DropPath(mlp(...)).

    `attention_type` "ecoformer" (stages 1-3 of the EcoFormer models) or
    "msa" (full softmax MSA with a fused-qkv parameter count, official
    `Attention`, used in the last stage).
    """

    def __init__(self, num_heads, mlp_ratio, grid, attention_type="ecoformer",
                 num_bits=16, num_anchors=25, normalize="official",
                 drop_path=0.0, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(
                f"PVTBlock: attention_type must be one of {ATTENTION_TYPES}; "
                f"got {attention_type!r}.")
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.grid = tuple(int(g) for g in grid)
        self.attention_type = attention_type
        self.num_bits = num_bits
        self.num_anchors = num_anchors
        self.normalize = normalize
        self.drop_path = drop_path
        self.layer_norm_epsilon = layer_norm_epsilon
        p = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="norm1")
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="norm2")
        self.drop = DropPath(drop_path, dtype=p)
        self.attn = None
        self.mlp = None

    def build(self, input_shape):
        dim = input_shape[-1]
        p = self.dtype_policy
        if self.attention_type == "ecoformer":
            self.attn = EcoformerAttention(
                self.num_heads, self.num_bits, self.num_anchors,
                self.normalize, dtype=p, name="attn")
        else:
            self.attn = MultiHeadAttention(
                self.num_heads, dim // self.num_heads,
                kernel_initializer=linear_init(), dtype=p, name="attn")
        self.mlp = DWConvMLP(int(dim * self.mlp_ratio), self.grid, dtype=p,
                             name="mlp")
        for layer in (self.norm1, self.norm2, self.attn, self.mlp):
            layer.build(input_shape)

    def call(self, x, training=False):
        x = x + self.drop(self.attn(self.norm1(x)), training=training)
        return x + self.drop(self.mlp(self.norm2(x)), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio, "grid": list(self.grid),
                "attention_type": self.attention_type,
                "num_bits": self.num_bits, "num_anchors": self.num_anchors,
                "normalize": self.normalize, "drop_path": self.drop_path,
                "layer_norm_epsilon": self.layer_norm_epsilon}
