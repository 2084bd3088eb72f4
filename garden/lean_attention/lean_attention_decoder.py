"""`LeanAttentionDecoder` (registry name `lean_attention`): a causal decoder
whose cached `generate` runs every attention through the `split_k` kernel.

Lean Attention (Sanovar et al. 2024, arXiv 2405.10480; garden spec
`lean_attention.md`) is an exact decode-phase attention: the KV cache is cut
into pieces, each piece gives a partial softmax (normalised output, log-sum-
exp), and the partials are merged with the associative softmax re-scaling
(paper Sec. III "associative property of the softmax re-scaling operator";
spec Sec. 4.1). The paper has no model of its own: this is the host model in
which that kernel decodes, a GPT-2-style decoder (learned absolute
positions, pre-LN blocks, tied input/output embedding).
"""

import keras
import numpy as np
from keras import ops

from garden.lean_attention.lean_attention_graph import compiled_forward
from garden.lean_attention.lean_attention_graph import (
    compiled_forward_with_cache,
)
from garden.lean_attention.lean_attention_layers import CachedDecoderBlock
from garden.lean_attention.lean_attention_presets import lean_attention_presets
from official.models.garden_model import GardenModel
from official.registry import register_model


def next_token_loss(logits, token_ids, sample_weight=None):
    """Mean cross-entropy of predicting token t+1 from positions <= t."""
    logits = ops.cast(logits[:, :-1], "float32")
    targets = token_ids[:, 1:]
    per_token = keras.losses.sparse_categorical_crossentropy(
        targets, logits, from_logits=True)
    if sample_weight is None:
        return ops.mean(per_token)
    w = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
    w = ops.broadcast_to(w, ops.shape(per_token))
    return ops.sum(per_token * w) / ops.maximum(ops.sum(w), 1e-12)


def lean_attention_example_inputs(config, batch_size, seed):
    """Seeded `{"token_ids"}` int32 (B, T), T = min(16, max_length)."""
    rng = np.random.default_rng(seed)
    length = min(16, config.get("max_length", 1024))
    return {"token_ids": rng.integers(
        0, config.get("vocab_size", 50257), size=(batch_size, length)
    ).astype("int32")}


@register_model(
    "lean_attention",
    presets=lean_attention_presets,
    example_inputs=lean_attention_example_inputs,
    tags={"domain": "nlp", "family": "efficient-attention", "modality": "text",
          "task": "language-modeling", "paper": "lean_attention"},
    description="Causal decoder with KV cache decoded by the split_k (Lean "
    "Attention / Flash-Decoding) kernel (Sanovar et al. 2024).",
)
class LeanAttentionDecoder(GardenModel):
    """Causal decoder with a KV cache; decoding attention is `split_k`.

    `call` is the full causal forward (B, T) token ids -> (B, T, V) logits
    (what training and export use; no cache in the graph). `generate`
    decodes greedily: a prefill pass fills each block's (k, v) cache, then
    every new token is one query against the cache, computed by the
    `attention_kernel` (default `split_k` with `num_splits` pieces, the Lean
    Attention / Flash-Decoding partition). Positions are learned absolute
    embeddings looked up at `cache length + i`, so the cached and the
    recomputed forward see the same positions.

    Args:
        vocab_size: int.
        max_length: int. Number of learned positions (context limit).
        hidden_dim: int. Width D.
        num_layers: int.
        num_heads: int. Head size D / num_heads.
        mlp_ratio: float.
        num_splits: int. Context pieces of the `split_k` kernel.
        attention_kernel: str. `official.attention` kernel of every block
            ("split_k"; "dense" gives the reference model with the same
            weights).
        layer_norm_epsilon: float (1e-5 as GPT-2).
        activation: str. MLP activation.

    Inputs:
        dict `token_ids` (B, T) int, T <= max_length; or a bare tensor.

    Outputs:
        (B, T, vocab_size) float logits.

    Example:

    >>> import garden
    >>> model = garden.build("lean_attention", preset="tiny")
    >>> prompt = garden.example_inputs("lean_attention")["token_ids"][:, :8]
    >>> out = model.generate(prompt, max_new_tokens=4)
    >>> out["token_ids"].shape, out["logits"].shape
    ((2, 12), (2, 4, 64))
    """

    input_names = ("token_ids",)

    def __init__(self, vocab_size=50257, max_length=1024, hidden_dim=768,
                 num_layers=12, num_heads=12, mlp_ratio=4.0, num_splits=4,
                 attention_kernel="split_k", layer_norm_epsilon=1e-5,
                 activation="gelu", **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"{self.model_label}: hidden_dim {hidden_dim} is not "
                f"divisible by num_heads {num_heads}.")
        # === Config ===
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.num_splits = num_splits
        self.attention_kernel = attention_kernel
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.head_dim = hidden_dim // num_heads
        options = {"num_splits": num_splits} if attention_kernel == "split_k" \
            else {}

        # === Layers ===
        p = self.dtype_policy
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, tie_weights=True,
            embeddings_initializer=keras.initializers.RandomNormal(
                stddev=0.02),
            dtype=p, name="token_embedding")
        self.position_embedding = keras.layers.Embedding(
            max_length, hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(
                stddev=0.01),
            dtype=p, name="position_embedding")
        self.blocks = [
            CachedDecoderBlock(
                num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                layer_norm_epsilon=layer_norm_epsilon, activation=activation,
                attention_kernel=attention_kernel, kernel_options=options,
                dtype=p, name=f"block_{i}")
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="final_norm")

    def build(self, input_shape=None):
        shape = (None, None, self.hidden_dim)
        for layer, layer_shape in (
                [(self.token_embedding, (None, None)),
                 (self.position_embedding, (None,))]
                + [(block, shape) for block in self.blocks]
                + [(self.final_norm, shape)]):
            if not layer.built:
                layer.build(layer_shape)

    @property
    def input_dtype(self):
        # Token ids are integers. Keras' default (the compute dtype) is also
        # the dtype of the SavedModel default signature it traces from the
        # build shapes, which would call the model on float32 ids.
        return "int32"

    # ---------------------------------------------------------------- pieces
    def positions(self, start, length):
        """Position ids of `length` tokens after `start` cached ones."""
        return start + ops.arange(length, dtype="int32")

    def _check_length(self, start, length):
        if isinstance(start, int) and isinstance(length, int) \
                and start + length > self.max_length:
            raise ValueError(
                f"{self.model_label}: {start} cached + {length} new tokens "
                f"exceed max_length {self.max_length}.")

    def embed(self, token_ids, start=0):
        """Token + position embeddings of tokens placed after `start`."""
        length = token_ids.shape[1]
        if length is None:
            length = ops.shape(token_ids)[1]
        self._check_length(start, length)
        pos = self.position_embedding(self.positions(start, length))
        return self.token_embedding(token_ids) + pos[None]

    def logits(self, x):
        """Final LayerNorm and the tied output projection."""
        return self.token_embedding(self.final_norm(x), reverse=True)

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        ids = self.check_input("token_ids", inputs["token_ids"],
                               (None, None), "int")
        x = self.embed(ids, 0)
        for block in self.blocks:
            x = block(x, training=training)
        return self.logits(x)

    def task_loss(self, x, y, y_pred, sample_weight=None):
        ids = self.unpack_inputs(x)["token_ids"]
        return next_token_loss(y_pred, ids, sample_weight)

    # ----------------------------------------------------------------- cache
    def empty_cache(self, batch_size):
        """One empty (k, v) pair per block, each (B, 0, H, D_head)."""
        z = ops.zeros((batch_size, 0, self.num_heads, self.head_dim),
                      self.compute_dtype)
        return [(z, z) for _ in self.blocks]

    @staticmethod
    def cache_length(cache):
        length = cache[0][0].shape[1]
        return length if length is not None else ops.shape(cache[0][0])[1]

    def forward_with_cache(self, token_ids, cache):
        """Logits of `token_ids` (B, T) placed after the cached positions.

        Returns `(logits (B, T, V), new_cache)`; the new cache holds
        S_past + T positions. Every attention is one call of the block's
        kernel on (T queries, S_past + T keys), causal-aligned.
        """
        if not self.built:  # decoding before any `model(...)` call
            self.build()
        ids = ops.convert_to_tensor(token_ids, "int32")
        x = self.embed(ids, self.cache_length(cache))
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache):
            x, layer_cache = block(x, cache=layer_cache)
            new_cache.append(layer_cache)
        return self.logits(x), new_cache

    def _step_fn(self, compiled):
        if not self.built:  # variables must exist before any tracing
            self.build()
        if compiled:
            return compiled_forward_with_cache(self)
        return self.forward_with_cache

    def prefill(self, token_ids, chunk_size=None, compiled=True):
        """Fills the cache with the prompt, in chunks of `chunk_size`
        tokens (None = all at once); returns (logits of the last chunk,
        cache). `compiled`: run each chunk as one graph
        (`lean_attention_graph`), else eagerly."""
        step = self._step_fn(compiled)
        ids = ops.convert_to_tensor(token_ids, "int32")
        cache = self.empty_cache(ops.shape(ids)[0])
        length = ids.shape[1]
        chunk = length if not chunk_size else chunk_size
        logits = None
        for start in range(0, length, chunk):
            logits, cache = step(ids[:, start:start + chunk], cache)
        return logits, cache

    # -------------------------------------------------------------- generate
    def generate(self, token_ids, max_new_tokens, use_cache=True,
                 prefill_chunk=None, compiled=True):
        """Greedy decoding of `max_new_tokens` tokens.

        With `use_cache` (the Lean Attention path) the prompt is prefilled
        once and every step runs one query per block against the cache;
        otherwise every step recomputes the full causal forward over all
        tokens so far (the reference and the speed baseline). `compiled`
        runs each step as a graph (one trace for every length), else
        eagerly; both compute the same ops.

        Returns a dict of NumPy arrays: `token_ids` (B, T + N) int32 and
        `logits` (B, N, V), the logits that chose each new token.
        """
        ids = np.asarray(token_ids).astype("int32")
        if ids.ndim != 2:
            raise ValueError(
                f"{self.model_label}: generate expects token_ids of shape "
                f"(B, T); received shape {ids.shape}.")
        if max_new_tokens < 1:
            raise ValueError(
                f"{self.model_label}: max_new_tokens must be >= 1; got "
                f"{max_new_tokens}.")
        self._check_length(ids.shape[1], max_new_tokens - 1)
        steps = []
        if use_cache:
            step = self._step_fn(compiled)
            logits, cache = self.prefill(ids, prefill_chunk, compiled)
            for i in range(max_new_tokens):
                steps.append(ops.convert_to_numpy(logits[:, -1]))
                nxt = np.argmax(steps[-1], axis=-1).astype("int32")
                ids = np.concatenate([ids, nxt[:, None]], axis=1)
                if i + 1 < max_new_tokens:
                    logits, cache = step(nxt[:, None], cache)
        else:
            if not self.built:
                self.build()
            full = compiled_forward(self) if compiled else self
            for _ in range(max_new_tokens):
                steps.append(ops.convert_to_numpy(full(ids)[:, -1]))
                nxt = np.argmax(steps[-1], axis=-1).astype("int32")
                ids = np.concatenate([ids, nxt[:, None]], axis=1)
        return {"token_ids": ids, "logits": np.stack(steps, axis=1)}

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "max_length": self.max_length,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "num_splits": self.num_splits,
            "attention_kernel": self.attention_kernel,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation": self.activation,
        }
