"""`CombinerClassifier` (registry name `combiner_classifier`): a
bidirectional Combiner encoder with a sequence-classification head (the
Long Range Arena setting of the paper).

Encoder: the official TF `models.transformer(..., causal=False)` stack with
the non-causal Combiner kernels (each a partition of the whole sequence;
the Mixture is the official `axial_mixture_bidir` structure). Head (not in
the official code): final LayerNorm, mean over positions, Dense.
"""

import keras
import numpy as np
from keras import ops

from garden.combiner.combiner_layers import CombinerTransformer
from garden.combiner.combiner_layers import layer_variants
from garden.combiner.combiner_layers import normal_init
from garden.combiner.combiner_presets import combiner_classifier_presets
from official.models.garden_model import GardenModel
from official.registry import register_model


def combiner_classifier_example_inputs(config, batch_size, seed):
    """Seeded `{"token_ids"}` int32 (B, max_seq_len)."""
    rng = np.random.default_rng(seed)
    return {"token_ids": rng.integers(
        0, config.get("vocab_size", 17),
        size=(batch_size, config.get("max_seq_len", 2000))).astype("int32")}


def combiner_classifier_example_labels(config, batch_size, seed):
    rng = np.random.default_rng(seed + 1)
    return rng.integers(0, config.get("num_classes", 10),
                        size=(batch_size,)).astype("int32")


@register_model(
    "combiner_classifier",
    presets=combiner_classifier_presets,
    example_inputs=combiner_classifier_example_inputs,
    example_labels=combiner_classifier_example_labels,
    tags={"domain": "nlp", "family": "efficient-attention", "modality": "text",
          "task": "long-sequence-classification", "paper": "combiner"},
    description="Bidirectional Combiner encoder + classification head "
    "(Ren et al. 2021, LRA setting).",
)
class CombinerClassifier(GardenModel):
    """Bidirectional Combiner encoder with a classification head.

    Paper: https://arxiv.org/abs/2107.05768 (Long Range Arena experiments).
    Every layer's attention covers the whole sequence in one softmax; the
    non-causal Combiner kernels need the sequence length to be a multiple
    of `segment_length` (Fixed, Axial, Mixture): there is no padding mask,
    pad tokens are ordinary tokens.

    Args:
        vocab_size, hidden_dim, num_layers, num_heads, max_seq_len: ints.
        segment_length: int. s of Fixed / Axial / Mixture.
        num_classes: int.
        variant: str or list (one per layer): "fixed", "logsparse",
            "axial", "mixture" or "dense".
        row_summary: str. Combiner-Axial summary key ("proj").
        dropout, layer_norm_epsilon: floats.

    Inputs:
        dict `token_ids` (B, L) int; or a bare tensor.

    Outputs:
        (B, num_classes) logits.

    Example:

    >>> import garden
    >>> model = garden.build("combiner_classifier", preset="tiny")
    >>> x = garden.example_inputs("combiner_classifier", preset="tiny")
    >>> tuple(model(x).shape)
    (2, 10)
    """

    input_names = ("token_ids",)

    def __init__(self, vocab_size=17, hidden_dim=512, num_layers=6,
                 num_heads=8, max_seq_len=2000, segment_length=50,
                 num_classes=10, variant="mixture", row_summary="proj",
                 dropout=0.0, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.max_seq_len = max_seq_len
        self.segment_length = segment_length
        self.num_classes = num_classes
        self.variant = variant if isinstance(variant, str) else list(variant)
        self.row_summary = row_summary
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self._segmented = any(
            v != "logsparse" and v != "dense"
            for v in layer_variants(variant, num_layers))
        # === Layers ===
        p = self.dtype_policy
        self.transformer = CombinerTransformer(
            vocab_size, hidden_dim, num_layers, num_heads, max_seq_len,
            segment_length, variant=variant, row_summary=row_summary,
            causal=False, dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon, dtype=p,
            name="transformer")
        self.head = keras.layers.Dense(
            num_classes, kernel_initializer=normal_init(), dtype=p,
            name="head")

    def build(self, input_shape=None):
        if not self.transformer.built:
            self.transformer.build((None, None))
        self.head.build((None, self.hidden_dim))
        self.built = True

    @property
    def input_dtype(self):
        return "int32"

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        ids = self.check_input("token_ids", inputs["token_ids"],
                               (None, None), "int")
        length = ids.shape[1]
        if length is not None and (length > self.max_seq_len or (
                self._segmented and length % self.segment_length)):
            raise ValueError(
                f"{self.model_label}: input 'token_ids' must have shape "
                f"(?, L) with L <= {self.max_seq_len}"
                + (f" and a multiple of segment_length "
                   f"{self.segment_length}" if self._segmented else "")
                + f"; received shape {tuple(ids.shape)}.")
        h = self.transformer(ids, training=training)
        return self.head(ops.mean(h, axis=1))

    def task_loss(self, x, y, y_pred, sample_weight=None):
        per_example = keras.losses.sparse_categorical_crossentropy(
            y, ops.cast(y_pred, "float32"), from_logits=True)
        if sample_weight is None:
            return ops.mean(per_example)
        w = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        return ops.sum(per_example * w) / ops.maximum(ops.sum(w), 1e-12)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "max_seq_len": self.max_seq_len,
            "segment_length": self.segment_length,
            "num_classes": self.num_classes,
            "variant": self.variant,
            "row_summary": self.row_summary,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
