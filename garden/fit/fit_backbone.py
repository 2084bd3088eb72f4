"""`FITEncoder`: the FIT encoder on grouped data tokens (B, t, n, c).

Paper: Chen & Li 2023, "FIT: Far-reaching Interleaved Transformers",
https://arxiv.org/abs/2305.12689, Sec. 2 (Fig. 2). Official code:
google-research/pix2seq `architectures/transformers.py` `class FIT` (commit
8563fdf); same sublayers, same order, same parameter count (checked by
running the official class, see README).
"""

import keras
from keras import ops

from garden.fit.fit_layers import FITCrossAttention
from garden.fit.fit_layers import chunk_causal_mask
from garden.fit.fit_layers import parse_layers
from official.layers import TransformerBlock
from official.registry import register_layer


@register_layer()
class FITEncoder(keras.layers.Layer):
    """Interleaved local (per group) and global (latent) transformer layers.

    For data tokens x (B, t, n, c) in t groups of n tokens, with m learned
    latents per group (paper Sec. 2, official `FIT.call`):

    0. stem: x = LN(Dense(x)) + learned position (n, x_dim), shared by
       every group; latents = learned (t*m, latent_dim) table, tiled over B.
    1. local layers: pre-LN `TransformerBlock`s on each group separately,
       ((B t), n, x_dim): attention O(t n^2).
    2. read (if the block has global layers): each group's m latents
       cross-attend to that group's n data tokens.
    3. global layers: `TransformerBlock`s on all (B, t*m, latent_dim)
       latents (optionally causal across groups, `latent_mask="causal"`):
       the only place information crosses groups.
    4. write (all blocks but the last): each group's data tokens
       cross-attend to that group's latents (residual).
    Outputs LN(x) (B, t, n, x_dim) and LN(latents) (B, t, m, latent_dim).

    Args:
        layers: str. Block string, e.g. "(2)4(2)" (see `parse_layers`).
        num_groups: int. t.
        tokens_per_group: int. n.
        latents_per_group: int. m.
        x_dim, latent_dim: int. Widths of data tokens and latents.
        x_num_heads, latent_num_heads: int.
        mlp_ratio: float.
        drop_path: float. Stochastic depth of every local/global layer (the
            official code uses one rate for all).
        layer_norm_epsilon: float (1e-6 as the official code).
        latent_mask: "none" or "causal" (chunk-causal over groups).
        attention_kernel: str. `official.attention` kernel of every layer.

    Call args:
        x: (B, t, n, c) float.
        training: bool.

    Returns:
        (x (B, t, n, x_dim), latents (B, t, m, latent_dim)).

    Example:

    >>> import numpy as np
    >>> from garden.fit import FITEncoder
    >>> enc = FITEncoder("(1)1(1)", num_groups=4, tokens_per_group=16,
    ...                  latents_per_group=2, x_dim=32, latent_dim=32,
    ...                  x_num_heads=2, latent_num_heads=2)
    >>> x, latents = enc(np.zeros((2, 4, 16, 3), "float32"))
    >>> tuple(x.shape), tuple(latents.shape)
    ((2, 4, 16, 32), (2, 4, 2, 32))
    """

    def __init__(self, layers, num_groups, tokens_per_group,
                 latents_per_group, x_dim, latent_dim, x_num_heads,
                 latent_num_heads, mlp_ratio=4.0, drop_path=0.0,
                 layer_norm_epsilon=1e-6, latent_mask="none",
                 attention_kernel="dense", **kwargs):
        super().__init__(**kwargs)
        self.block_config = parse_layers(layers)
        if latent_mask not in ("none", "causal"):
            raise ValueError(
                f"FITEncoder: latent_mask must be 'none' or 'causal'; got "
                f"{latent_mask!r}.")
        # === Config === (`layers` is stored as `layer_spec`: Keras layers
        # reserve the attribute name `layers`.)
        self.layer_spec = layers
        self.num_groups = num_groups
        self.tokens_per_group = tokens_per_group
        self.latents_per_group = latents_per_group
        self.x_dim = x_dim
        self.latent_dim = latent_dim
        self.x_num_heads = x_num_heads
        self.latent_num_heads = latent_num_heads
        self.mlp_ratio = mlp_ratio
        self.drop_path = drop_path
        self.layer_norm_epsilon = layer_norm_epsilon
        self.latent_mask = latent_mask
        self.attention_kernel = attention_kernel

        # === Layers === (flat lists; `self.plan[i]` holds block i's slices)
        p = self.dtype_policy
        eps = layer_norm_epsilon
        self.stem = keras.layers.Dense(x_dim, dtype=p, name="stem")
        self.stem_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype=p, name="stem_norm")
        cross_heads = min(latent_num_heads, x_num_heads)
        cross_key_dim = min(latent_dim, x_dim) // cross_heads
        self.local_blocks, self.global_blocks = [], []
        self.read, self.write = [], []
        self.plan = []
        last = len(self.block_config) - 1
        for i, (num_local, num_global) in enumerate(self.block_config):
            entry = {"local": (len(self.local_blocks),
                               len(self.local_blocks) + num_local),
                     "global": (len(self.global_blocks),
                                len(self.global_blocks) + num_global),
                     "read": None, "write": None}
            self.local_blocks.extend(
                self._blocks(num_local, x_num_heads, f"local_{i}"))
            if num_global > 0:
                entry["read"] = len(self.read)
                self.read.append(FITCrossAttention(
                    cross_heads, cross_key_dim, eps, attention_kernel,
                    dtype=p, name=f"read_{i}"))
                self.global_blocks.extend(
                    self._blocks(num_global, latent_num_heads, f"global_{i}"))
                if i < last:
                    entry["write"] = len(self.write)
                    self.write.append(FITCrossAttention(
                        cross_heads, cross_key_dim, eps, attention_kernel,
                        dtype=p, name=f"write_{i}"))
            self.plan.append(entry)
        self.x_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype=p, name="x_norm")
        self.latent_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype=p, name="latent_norm")

    @property
    def ends_with_global(self):
        """Whether the last block has global layers (then its latents are
        the official encoder's summary; otherwise the data tokens)."""
        return self.block_config[-1][1] > 0

    def _blocks(self, count, heads, name):
        return [TransformerBlock(
            heads, mlp_ratio=self.mlp_ratio, qkv_bias=True,
            drop_path=self.drop_path,
            layer_norm_epsilon=self.layer_norm_epsilon, activation="gelu",
            attention_kernel=self.attention_kernel, dtype=self.dtype_policy,
            name=f"{name}_{j}") for j in range(count)]

    def build(self, input_shape):
        t, n, m = self.num_groups, self.tokens_per_group, self.latents_per_group
        if tuple(input_shape[1:3]) != (t, n):
            raise ValueError(
                f"FITEncoder: expected (B, {t}, {n}, c) grouped tokens; got "
                f"{tuple(input_shape)}.")
        self.stem.build(tuple(input_shape))
        self.stem_norm.build(tuple(input_shape[:-1]) + (self.x_dim,))
        # Learned tables, truncated normal 0.02 (official
        # `add_vis_pos_emb(..., 'learned')`).
        self.x_pos_embed = self.add_weight(
            shape=(n, self.x_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="x_pos_embed")
        self.latent_pos_embed = self.add_weight(
            shape=(t * m, self.latent_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="latent_pos_embed")
        x_shape = (None, n, self.x_dim)
        l_group_shape = (None, m, self.latent_dim)
        for block in self.local_blocks:
            block.build(x_shape)
        for block in self.global_blocks:
            block.build((None, t * m, self.latent_dim))
        for layer in self.read:
            layer.build(l_group_shape, x_shape)
        for layer in self.write:
            layer.build(x_shape, l_group_shape)
        self.x_norm.build(x_shape)
        self.latent_norm.build(l_group_shape)

    def call(self, x, training=False):
        t, n, m = self.num_groups, self.tokens_per_group, self.latents_per_group
        batch = ops.shape(x)[0]
        x = self.stem_norm(self.stem(x)) + self.x_pos_embed[None, None]
        x = ops.reshape(x, (-1, n, self.x_dim))  # (B t) n c
        latents = ops.broadcast_to(
            ops.cast(self.latent_pos_embed, x.dtype)[None],
            (batch, t * m, self.latent_dim))
        latents = ops.reshape(latents, (-1, m, self.latent_dim))  # (B t) m d
        mask = chunk_causal_mask(t, m) if self.latent_mask == "causal" \
            else None
        for entry in self.plan:
            for block in self.local_blocks[slice(*entry["local"])]:
                x = block(x, training=training)
            if entry["read"] is None:
                continue
            latents = self.read[entry["read"]](latents, x)
            latents = ops.reshape(latents, (-1, t * m, self.latent_dim))
            for block in self.global_blocks[slice(*entry["global"])]:
                latents = block(latents, attention_mask=mask,
                                training=training)
            latents = ops.reshape(latents, (-1, m, self.latent_dim))
            if entry["write"] is not None:
                x = self.write[entry["write"]](x, latents)
        x = ops.reshape(self.x_norm(x), (-1, t, n, self.x_dim))
        latents = ops.reshape(self.latent_norm(latents),
                              (-1, t, m, self.latent_dim))
        return x, latents

    def compute_output_shape(self, input_shape):
        b = input_shape[0]
        return ((b, self.num_groups, self.tokens_per_group, self.x_dim),
                (b, self.num_groups, self.latents_per_group, self.latent_dim))

    def get_config(self):
        return {
            **super().get_config(),
            "layers": self.layer_spec,
            "num_groups": self.num_groups,
            "tokens_per_group": self.tokens_per_group,
            "latents_per_group": self.latents_per_group,
            "x_dim": self.x_dim,
            "latent_dim": self.latent_dim,
            "x_num_heads": self.x_num_heads,
            "latent_num_heads": self.latent_num_heads,
            "mlp_ratio": self.mlp_ratio,
            "drop_path": self.drop_path,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "latent_mask": self.latent_mask,
            "attention_kernel": self.attention_kernel,
        }
