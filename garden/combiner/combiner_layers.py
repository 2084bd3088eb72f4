"""Layers of the Combiner models: the attention layer that feeds the
Combiner-Axial summary its residual, the pre-LN block and the transformer
stack of the official TF code (`combiner/combiner/tf/models.py`
`transformer` + `transformer_approx_att_layer`; `ops.py` `preprocess`,
`postprocess`, `ffn`).
"""

import keras
from keras import ops

from official.attention import MultiHeadAttention
from official.registry import register_layer

# variant -> (kernel, uses segment_length)
VARIANTS = {
    "fixed": ("combiner_fixed", True),
    "logsparse": ("combiner_logsparse", False),
    "axial": ("combiner_axial", True),
    "mixture": ("combiner_mixture", True),
    "dense": ("dense", False),  # baseline with the same weights
}


def normal_init():
    """The official `WEIGHT_INITIALIZER`, normal(0.02); a fresh instance per
    weight (an unseeded Keras initializer repeats its values)."""
    return keras.initializers.RandomNormal(stddev=0.02)


def kernel_and_options(variant, segment_length, row_summary):
    """The `official.attention` kernel name and options of a variant."""
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown Combiner variant '{variant}'; expected one of "
            f"{sorted(VARIANTS)}.")
    kernel, segmented = VARIANTS[variant]
    options = {"segment_length": segment_length} if segmented else {}
    if variant == "axial":
        options["row_summary"] = row_summary
    return kernel, options


def layer_variants(variant, num_layers):
    """One variant name per layer (`variant` may be a str or a list)."""
    if isinstance(variant, str):
        return [variant] * num_layers
    variants = list(variant)
    if len(variants) != num_layers:
        raise ValueError(
            f"Got {len(variants)} variants for {num_layers} layers: "
            f"{variants}.")
    return variants


@register_layer()
class CombinerAttention(MultiHeadAttention):
    """`MultiHeadAttention` that also passes its input to the kernel as
    `summary_residual` when the kernel is Combiner-Axial with a "proj" row
    summary (official `axial_rowmajor`: the summary key is
    LayerNorm(x + W1 o + b1) W2 + b2, x the attention input). Self-attention
    only; otherwise identical to the parent (same weights, config and call)."""

    def _needs_residual(self):
        return self.kernel == "combiner_axial" and "proj" in \
            self.kernel_options.get("row_summary", "wsum")

    def kernel_call_inputs(self, query):
        return {"summary_residual": query} if self._needs_residual() else {}


@register_layer()
class CombinerBlock(keras.layers.Layer):
    """Official TF layer (`transformer_approx_att_layer`, pre-norm):
    x + Dropout(Attn(LN(x))); x + Dropout(FFN(LN(x))), FFN = Dense(4D) ->
    tanh-GELU -> Dropout -> Dense(D); all dense layers with bias, normal(0.02)
    kernels; LayerNorm epsilon 1e-5.

    Args:
        num_heads: int.
        kernel: str. `official.attention` kernel.
        kernel_options: dict.
        causal: bool.
        dropout: float. Residual-branch and FFN dropout (0 in the paper's
            LM config).
        layer_norm_epsilon: float.
    """

    def __init__(self, num_heads, kernel="dense", kernel_options=None,
                 causal=True, dropout=0.0, layer_norm_epsilon=1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.kernel = kernel
        self.kernel_options = dict(kernel_options or {})
        self.causal = causal
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(
                f"CombinerBlock: width {dim} is not divisible by num_heads "
                f"{self.num_heads}.")
        p = self.dtype_policy
        eps = self.layer_norm_epsilon
        self.attn_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype=p, name="attn_norm")
        self.attn = CombinerAttention(
            self.num_heads, dim // self.num_heads, qkv_bias=True,
            out_bias=True, kernel=self.kernel,
            kernel_options=self.kernel_options,
            kernel_initializer=normal_init(), dtype=p, name="attn")
        self.ffn_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype=p, name="ffn_norm")
        self.ffn_in = keras.layers.Dense(
            4 * dim, kernel_initializer=normal_init(), dtype=p,
            name="ffn_in")
        self.ffn_out = keras.layers.Dense(
            dim, kernel_initializer=normal_init(), dtype=p, name="ffn_out")
        self.drop = keras.layers.Dropout(self.dropout, dtype=p)
        self.attn_norm.build(input_shape)
        self.attn.build(input_shape)
        self.ffn_norm.build(input_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build(tuple(input_shape[:-1]) + (4 * dim,))

    def call(self, x, training=False):
        h = self.attn(self.attn_norm(x), causal=self.causal)
        x = x + self.drop(h, training=training)
        h = keras.activations.gelu(self.ffn_in(self.ffn_norm(x)),
                                   approximate=True)
        h = self.ffn_out(self.drop(h, training=training))
        return x + self.drop(h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "kernel": self.kernel,
            "kernel_options": self.kernel_options,
            "causal": self.causal,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }


@register_layer()
class CombinerTransformer(keras.layers.Layer):
    """Official TF `models.transformer` + the final LayerNorm of `lm_head`:
    token embedding (normal 0.02) + learned absolute positions (normal
    0.02, `pos_sine_init=False`), dropout, `num_layers` `CombinerBlock`s,
    LayerNorm. (B, L) int ids -> (B, L, D).

    Args:
        vocab_size, hidden_dim, num_layers, num_heads, max_seq_len: ints.
        segment_length: int. s of Fixed/Axial/Mixture (`max_seg_len`).
        variant: str or list of str (one per layer): "fixed", "logsparse",
            "axial", "mixture" or "dense".
        row_summary: str. Combiner-Axial summary key ("proj" official).
        causal: bool.
        dropout, layer_norm_epsilon: floats.
    """

    def __init__(self, vocab_size, hidden_dim, num_layers, num_heads,
                 max_seq_len, segment_length, variant="mixture",
                 row_summary="proj", causal=True, dropout=0.0,
                 layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.max_seq_len = max_seq_len
        self.segment_length = segment_length
        self.variant = variant if isinstance(variant, str) else list(variant)
        self.row_summary = row_summary
        self.causal = causal
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        p = self.dtype_policy
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, tie_weights=True,
            embeddings_initializer=normal_init(), dtype=p,
            name="token_embedding")
        self.position_embedding = keras.layers.Embedding(
            max_seq_len, hidden_dim, embeddings_initializer=normal_init(),
            dtype=p, name="position_embedding")
        self.drop = keras.layers.Dropout(dropout, dtype=p)
        self.blocks = []
        for i, name in enumerate(layer_variants(variant, num_layers)):
            kernel, options = kernel_and_options(name, segment_length,
                                                 row_summary)
            self.blocks.append(CombinerBlock(
                num_heads, kernel=kernel, kernel_options=options,
                causal=causal, dropout=dropout,
                layer_norm_epsilon=layer_norm_epsilon, dtype=p,
                name=f"layer_{i:03d}"))
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="final_norm")

    def build(self, input_shape):
        shape = tuple(input_shape) + (self.hidden_dim,)
        self.token_embedding.build(input_shape)
        self.position_embedding.build((None,))
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)

    def call(self, token_ids, training=False):
        length = token_ids.shape[1]
        x = self.token_embedding(token_ids)
        x = x + self.position_embedding(ops.arange(length))[None]
        x = self.drop(x, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.final_norm(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.hidden_dim,)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "max_seq_len": self.max_seq_len,
            "segment_length": self.segment_length,
            "variant": self.variant,
            "row_summary": self.row_summary,
            "causal": self.causal,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
