"""`CombinerLM` (registry name `combiner_lm`): a causal language model whose
attention is one of the four Combiner kernels.

Official code: google-research `combiner/combiner/tf/models.py`
(`transformer(..., causal=True)` + `lm_head`) with the attention of
`approx_attention.py` (`sqrt_fixed_full`, `axial_rowmajor`,
`axial_mixture_unidir`) or the JAX `_SelfAttLogn`.
"""

import keras
import numpy as np
from keras import ops

from garden.combiner.combiner_layers import CombinerTransformer
from garden.combiner.combiner_presets import combiner_lm_presets
from official.models.garden_model import GardenModel
from official.registry import register_model


def lm_loss(logits, token_ids, targets=None, sample_weight=None):
    """Mean token cross-entropy.

    targets None: next-token prediction, logits[:, t] vs token_ids[:, t+1].
    Otherwise `targets` (B, L) are the labels of every position (the
    official `main.py` feeds inputs and outputs separately), weighted by
    `sample_weight` (B, L) or (B,) if given.
    """
    logits = ops.cast(logits, "float32")
    if targets is None:
        logits, targets = logits[:, :-1], token_ids[:, 1:]
    per_token = keras.losses.sparse_categorical_crossentropy(
        targets, logits, from_logits=True)
    if sample_weight is None:
        return ops.mean(per_token)
    w = ops.cast(sample_weight, "float32")
    if len(w.shape) == 1:
        w = ops.reshape(w, (-1, 1))
    w = ops.broadcast_to(w, ops.shape(per_token))
    return ops.sum(per_token * w) / ops.maximum(ops.sum(w), 1e-12)


def combiner_lm_example_inputs(config, batch_size, seed):
    """Seeded `{"token_ids"}` int32 (B, max_seq_len) (at most 256)."""
    rng = np.random.default_rng(seed)
    length = min(config.get("max_seq_len", 2048), 256)
    return {"token_ids": rng.integers(
        0, config.get("vocab_size", 1024), size=(batch_size, length)
    ).astype("int32")}


@register_model(
    "combiner_lm",
    presets=combiner_lm_presets,
    example_inputs=combiner_lm_example_inputs,
    tags={"domain": "nlp", "family": "efficient-attention", "modality": "text",
          "task": "language-modeling", "paper": "combiner"},
    description="Causal LM with Combiner attention: Fixed, Logsparse, Axial "
    "or Mixture (Ren et al. 2021).",
)
class CombinerLM(GardenModel):
    """Causal Combiner language model (Ren et al. 2021).

    Paper: "Combiner: Full Attention Transformer with Sparse Computation
    Cost", https://arxiv.org/abs/2107.05768. Every layer's attention covers
    all earlier positions (direct logits plus span summaries, one softmax)
    at O(L sqrt L) (Fixed, Axial, Mixture) or O(L log L) (Logsparse) cost.
    Architecture of the official TF LM: learned positions, pre-LN blocks
    with biased projections and a tanh-GELU FFN (4D), final LayerNorm,
    output = tied embedding + bias.

    Args:
        vocab_size: int.
        hidden_dim: int. D.
        num_layers: int.
        num_heads: int.
        max_seq_len: int. Learned positions.
        segment_length: int. Segment / row length s of Fixed, Axial and
            Mixture (official `max_seg_len`). Sequences whose length is not
            a multiple are padded at the end inside the kernels.
        variant: str or list (one per layer) of "fixed", "logsparse",
            "axial", "mixture" ("dense": full attention, a baseline).
        row_summary: str. Combiner-Axial summary key: "proj" (official),
            "wsum", "none", "wsum_proj".
        dropout: float.
        layer_norm_epsilon: float.

    Inputs:
        dict `token_ids` (B, L) int, L <= max_seq_len; or a bare tensor.

    Outputs:
        (B, L, vocab_size) logits; position t predicts token t + 1.

    Example:

    >>> import garden
    >>> model = garden.build("combiner_lm", preset="tiny")
    >>> x = garden.example_inputs("combiner_lm", preset="tiny")
    >>> tuple(model(x).shape)
    (2, 12, 10)
    """

    input_names = ("token_ids",)

    def __init__(self, vocab_size=1024, hidden_dim=768, num_layers=12,
                 num_heads=12, max_seq_len=2048, segment_length=128,
                 variant="mixture", row_summary="proj", dropout=0.0,
                 layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.max_seq_len = max_seq_len
        self.segment_length = segment_length
        self.variant = variant if isinstance(variant, str) else list(variant)
        self.row_summary = row_summary
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        # === Layers ===
        self.transformer = CombinerTransformer(
            vocab_size, hidden_dim, num_layers, num_heads, max_seq_len,
            segment_length, variant=variant, row_summary=row_summary,
            causal=True, dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
            name="transformer")

    def build(self, input_shape=None):
        if not self.transformer.built:
            self.transformer.build((None, None))
        # Official `lm_head` softmax_bias (the output weight is tied).
        self.softmax_bias = self.add_weight(
            name="softmax_bias", shape=(self.vocab_size,),
            initializer="zeros")
        self.built = True

    @property
    def input_dtype(self):
        # Token ids are integers (also the dtype of the traced signature).
        return "int32"

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        ids = self.check_input("token_ids", inputs["token_ids"],
                               (None, None), "int")
        if ids.shape[1] is not None and ids.shape[1] > self.max_seq_len:
            raise ValueError(
                f"{self.model_label}: input 'token_ids' must have shape "
                f"(?, <= {self.max_seq_len}); received shape "
                f"{tuple(ids.shape)}.")
        h = self.transformer(ids, training=training)
        logits = self.transformer.token_embedding(h, reverse=True)
        return logits + ops.cast(self.softmax_bias, logits.dtype)

    def task_loss(self, x, y, y_pred, sample_weight=None):
        ids = self.unpack_inputs(x)["token_ids"]
        return lm_loss(y_pred, ids, y, sample_weight)

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
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
