"""Pre-LN transformer block: x + DropPath(MHSA(LN(x))); x + DropPath(MLP(LN(x)))."""

import keras

from official.attention import MultiHeadAttention
from official.layers.drop_path import DropPath
from official.layers.mlp import MLP
from official.registry import register_layer


@register_layer()
class TransformerBlock(keras.layers.Layer):
    """The ViT block (timm `Block`) on (B, N, D) tokens.

    Args:
        num_heads: int.
        mlp_ratio: float. MLP hidden width = int(D * mlp_ratio).
        qkv_bias: bool. Bias on the Q/K/V projections.
        drop_path: float. Stochastic-depth rate of both branches.
        layer_norm_epsilon: float. 1e-6 in MAE, 1e-5 (PyTorch default) in
            Point-MAE.
        activation: str. MLP activation.
        attention_kernel: str. `official.attention` kernel name.
        kernel_options: dict. Options for the attention kernel.
    """

    def __init__(self, num_heads, mlp_ratio=4.0, qkv_bias=True,
                 drop_path=0.0, layer_norm_epsilon=1e-6, activation="gelu",
                 attention_kernel="dense", kernel_options=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.drop_path = drop_path
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.attention_kernel = attention_kernel
        self.kernel_options = dict(kernel_options or {})

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(
                f"TransformerBlock: width {dim} is not divisible by "
                f"num_heads {self.num_heads}."
            )
        p = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=p, name="norm1")
        self.attn = self.make_attention(dim)
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=p, name="norm2")
        self.mlp = self.make_mlp(dim)
        self.drop = DropPath(self.drop_path, dtype=p)
        for layer in (self.norm1, self.norm2, self.mlp):
            layer.build(input_shape)
        self.attn.build(input_shape)

    def make_attention(self, dim):
        """The attention sub-layer (named "attn"). Subclasses override this
        to change its class or initialisation, not the block's layout."""
        return MultiHeadAttention(
            self.num_heads, dim // self.num_heads, qkv_bias=self.qkv_bias,
            kernel=self.attention_kernel, kernel_options=self.kernel_options,
            dtype=self.dtype_policy, name="attn")

    def make_mlp(self, dim):
        """The MLP sub-layer (named "mlp"); overridable like make_attention."""
        return MLP(int(dim * self.mlp_ratio), activation=self.activation,
                   dtype=self.dtype_policy, name="mlp")

    def call(self, x, attention_mask=None, training=False):
        x = x + self.drop(self.attn(self.norm1(x), attention_mask=attention_mask),
                          training=training)
        return x + self.drop(self.mlp(self.norm2(x), training=training),
                             training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "drop_path": self.drop_path,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation": self.activation,
            "attention_kernel": self.attention_kernel,
            "kernel_options": self.kernel_options,
        }
