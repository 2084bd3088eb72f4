"""Layers only MAE uses: PyTorch-faithful initializers, the ViT block with
the official attention initialisation, and the MAE decoder.

Official code: facebookresearch/mae `models_mae.py` (blocks are timm 0.3.2
`Block`: fused qkv `nn.Linear(D, 3D, bias=True)`, `proj` `nn.Linear(D, D)`,
`Mlp` with exact GELU, `LayerNorm(eps=1e-6)`).
"""

import math
import random

import keras
import numpy as np
from keras import ops

from official.attention import MultiHeadAttention
from official.layers.drop_path import DropPath
from official.layers.mlp import MLP
from official.layers.position_embedding import sincos_2d
from official.layers.transformer_block import TransformerBlock
from official.ops.masking import gather_tokens
from official.registry import register_layer


@register_layer()
class TorchXavierUniform(keras.initializers.Initializer):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): PyTorch `xavier_uniform_`.

    Fans are explicit where the Keras kernel is not the 2-D weight of the
    official `nn.Linear`: an `EinsumDense` q/k/v kernel (D, H, K) gets Keras
    fans (H·D, K·D), not the (D, 3D) of the official fused qkv Linear (MAE
    `_init_weights`, "xavier_uniform following official JAX ViT"). With
    fans None, a 2-D kernel's own (fan_in, fan_out) are used.

    Unlike a Keras initializer with `seed=None` (one fixed seed per
    instance, so an instance shared by several kernels gives them identical
    values), every call without `seed` draws a fresh seed from Python's
    `random` (reproducible under `keras.utils.set_random_seed`).
    """

    def __init__(self, fan_in=None, fan_out=None, seed=None):
        self.fan_in = None if fan_in is None else int(fan_in)
        self.fan_out = None if fan_out is None else int(fan_out)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = self.fan_in, self.fan_out
        if fan_in is None or fan_out is None:
            if len(shape) != 2:
                raise ValueError(
                    "TorchXavierUniform: explicit fans are required for a "
                    f"kernel of rank {len(shape)} (shape {tuple(shape)})."
                )
            fan_in, fan_out = shape
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        seed = self.seed
        if seed is None:
            seed = random.randint(1, 2**31 - 1)
        return keras.random.uniform(
            shape, minval=-limit, maxval=limit, dtype=dtype, seed=seed
        )

    def get_config(self):
        return {"fan_in": self.fan_in, "fan_out": self.fan_out,
                "seed": self.seed}


@register_layer()
class SinCos2DInitializer(keras.initializers.Initializer):
    """The fixed table of MAE `util/pos_embed.get_2d_sincos_pos_embed`.

    Returns shape (1, [1 +] grid_size**2, dim); with `cls_token` the first
    row is zeros (the official layout). An initializer rather than an
    `assign` in `build()`, so the values are right even when Keras builds
    the layer inside a traced function (symbolic build in `fit`).
    """

    def __init__(self, grid_size, cls_token=True):
        self.grid_size = int(grid_size)
        self.cls_token = bool(cls_token)

    def __call__(self, shape, dtype=None):
        table = sincos_2d(shape[-1], self.grid_size, cls_token=self.cls_token)
        if tuple(shape) != (1,) + table.shape:
            raise ValueError(
                f"SinCos2DInitializer: requested shape {tuple(shape)} does "
                f"not match the table shape {(1,) + table.shape}."
            )
        return ops.cast(ops.convert_to_tensor(table[None]), dtype or "float32")

    def get_config(self):
        return {"grid_size": self.grid_size, "cls_token": self.cls_token}


@register_layer()
class MAEAttention(MultiHeadAttention):
    """`official.attention.MultiHeadAttention` with PyTorch Linear fans.

    q/k/v kernels are initialised as slices of one fused `Linear(D, 3·H·K)`
    (fans D and 3·H·K) and the output kernel as `Linear(H·K, D_out)`, which
    is what `xavier_uniform_` does in the official code; each kernel gets
    its own random draw (the parent shares one seeded initializer between
    q, k and v, which makes them identical at initialisation). Parameter
    layout and maths are the parent's.
    """

    def build(self, query_shape, key_shape=None, value_shape=None):
        inner = self.num_heads * self.key_dim
        out_dim = self.output_dim or query_shape[-1]
        self._qkv_initializer = TorchXavierUniform(query_shape[-1], 3 * inner)
        # The parent builds the output projection with self.kernel_initializer.
        self.kernel_initializer = TorchXavierUniform(inner, out_dim)
        super().build(query_shape, key_shape, value_shape)

    def _proj(self, heads, bias, name):
        layer = super()._proj(heads, bias, name)
        layer.kernel_initializer = self._qkv_initializer
        return layer


@register_layer()
class MAEBlock(TransformerBlock):
    """timm `Block` as used by MAE: `TransformerBlock` maths and weights, with
    the official Xavier initialisation of the attention projections.

    Only the sub-layer factories change; the block's layout and weight names
    are `TransformerBlock`'s.
    """

    def make_attention(self, dim):
        return MAEAttention(
            self.num_heads, dim // self.num_heads, qkv_bias=self.qkv_bias,
            kernel=self.attention_kernel, kernel_options=self.kernel_options,
            dtype=self.dtype_policy, name="attn")

    def make_mlp(self, dim):
        # A fresh-seed initializer: the MLP shares one initializer between
        # fc1 and fc2, and a default Keras one would give both the same
        # random stream.
        return MLP(int(dim * self.mlp_ratio), activation=self.activation,
                   kernel_initializer=TorchXavierUniform(),
                   dtype=self.dtype_policy, name="mlp")


def drop_path_rates(drop_path, num_layers):
    """Stochastic-depth rate per block, linear from 0 (timm `dpr`)."""
    return [float(r) for r in np.linspace(0.0, drop_path, num_layers)]


def make_blocks(num_layers, num_heads, mlp_ratio, layer_norm_epsilon,
                activation, drop_path, dtype, prefix):
    return [
        MAEBlock(
            num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
            drop_path=rate, layer_norm_epsilon=layer_norm_epsilon,
            activation=activation, dtype=dtype, name=f"{prefix}_{i}",
        )
        for i, rate in enumerate(drop_path_rates(drop_path, num_layers))
    ]


@register_layer()
class MAEDecoder(keras.layers.Layer):
    """The lightweight MAE decoder (paper §3 "MAE decoder";
    `forward_decoder` in `models_mae.py`).

    Embeds the encoder's visible tokens to the decoder width, appends one
    shared learned mask token per masked patch, unshuffles with
    `ids_restore`, adds the fixed (frozen) 2-D sin-cos table, runs the
    decoder blocks, normalises and predicts p·p·C pixel values per patch.

    Args:
        grid_size: int. Patches per side (image_size // patch_size).
        patch_size: int.
        num_channels: int.
        hidden_dim: int. Decoder width (`decoder_embed_dim`).
        num_layers: int. Decoder depth.
        num_heads: int.
        mlp_ratio: float.
        layer_norm_epsilon: float.
        activation: str.

    Call args:
        latent: (B, 1 + K, D_enc) encoder output (cls token first).
        ids_restore: (B, L) int indices undoing the masking shuffle.

    Returns:
        (B, L, p·p·C) predicted patches in the original raster order.
    """

    def __init__(self, grid_size, patch_size, num_channels, hidden_dim=512,
                 num_layers=8, num_heads=16, mlp_ratio=4.0,
                 layer_norm_epsilon=1e-6, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.grid_size = grid_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.num_patches = grid_size * grid_size
        p = self.dtype_policy
        self.decoder_embed = keras.layers.Dense(
            hidden_dim, dtype=p, name="decoder_embed")
        self.decoder_blocks = make_blocks(
            num_layers, num_heads, mlp_ratio, layer_norm_epsilon, activation,
            0.0, p, "decoder_blocks")
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="decoder_norm")
        self.decoder_pred = keras.layers.Dense(
            patch_size * patch_size * num_channels, dtype=p,
            name="decoder_pred")

    def build(self, latent_shape, ids_restore_shape=None):
        self.decoder_embed.build((None, None, latent_shape[-1]))
        self.mask_token = self.add_weight(
            shape=(1, 1, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="mask_token",
        )
        # Fixed sin-cos table, frozen (`requires_grad=False` upstream).
        self.decoder_pos_embed = self.add_weight(
            shape=(1, self.num_patches + 1, self.hidden_dim),
            initializer=SinCos2DInitializer(self.grid_size, cls_token=True),
            trainable=False,
            name="decoder_pos_embed",
        )
        token_shape = (None, None, self.hidden_dim)
        for block in self.decoder_blocks:
            block.build(token_shape)
        self.decoder_norm.build(token_shape)
        self.decoder_pred.build(token_shape)

    def add_position(self, x):
        """Adds the decoder position table to (B, 1 + L, D_dec) tokens."""
        return x + ops.cast(self.decoder_pos_embed, x.dtype)

    def call(self, latent, ids_restore, training=False):
        x = self.decoder_embed(latent)
        batch = ops.shape(x)[0]
        num_masked = self.num_patches - (x.shape[1] - 1)
        mask_tokens = ops.tile(
            ops.cast(self.mask_token, x.dtype), [batch, num_masked, 1])
        x_ = ops.concatenate([x[:, 1:, :], mask_tokens], axis=1)
        x_ = gather_tokens(x_, ids_restore)  # unshuffle
        x = ops.concatenate([x[:, :1, :], x_], axis=1)
        x = self.add_position(x)
        for block in self.decoder_blocks:
            x = block(x, training=training)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]  # drop the cls token

    def compute_output_shape(self, latent_shape, ids_restore_shape=None):
        return (latent_shape[0], self.num_patches,
                self.patch_size**2 * self.num_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "grid_size": self.grid_size,
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation": self.activation,
        }
