"""`AxialTransformer` (registry name `axial_transformer`): the autoregressive
image model of Ho et al. 2019 (arXiv 1912.12180), §3.2 and §4.

Official code: google-research/google-research `axial/transformers.py`
(`Transformer2d` for one channel, `Transformer3d` = the configs'
`SlicedChannelModel` for several).
"""

import math

import keras
import numpy as np
from keras import ops

from garden.axial_transformer import axial_transformer_layers as layers
from garden.axial_transformer import axial_transformer_sampling as sampling
from garden.axial_transformer.axial_transformer_presets import PRESETS
from official.models.garden_model import GardenModel
from official.registry import register_model

COLUMN, ROW = 0, 1  # spatial axis attended by column / row attention


def bits_per_dim(logits, images, sample_weight=None):
    """Mean negative log2-likelihood per subpixel (the paper's metric).

    logits (B, H, W, C, K); images int (B, H, W, C). With `sample_weight`
    (B,), the per-image bits/dim are averaged with those weights.
    """
    nll = ops.sparse_categorical_crossentropy(
        ops.cast(images, "int32"), ops.cast(logits, "float32"),
        from_logits=True)
    per_image = ops.mean(ops.reshape(nll, (ops.shape(nll)[0], -1)), axis=1)
    per_image = per_image / math.log(2.0)
    if sample_weight is None:
        return ops.mean(per_image)
    w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.sum(per_image * w) / ops.maximum(ops.sum(w), 1e-12)


def axial_example_inputs(config, batch_size, seed):
    """Seeded `{"images": int32 (B, H, W, C) in [0, K)}`."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, config["image_height"], config["image_width"],
             config.get("num_channels", 1))
    return {"images": rng.integers(0, config["num_values"], shape)
            .astype("int32")}


@register_model(
    "axial_transformer",
    presets=PRESETS,
    example_inputs=axial_example_inputs,
    tags={"domain": "vision", "family": "efficient-attention",
          "modality": "image", "task": "density-estimation",
          "paper": "axial_transformer"},
    description="Axial Transformer: autoregressive image model with "
    "row/column attention and semi-parallel sampling (Ho et al. 2019).",
)
class AxialTransformer(GardenModel):
    """Axial Transformer autoregressive image model (Ho et al. 2019).

    Paper: "Axial Attention in Multidimensional Transformers",
    https://arxiv.org/abs/1912.12180. Pixels (values 0..K-1) are modelled in
    raster order, one channel slice after another, with the full context
    and no independence assumption (§3.2, Fig. 2):

    1. h = Emb(x) for the current slice; u = h + P (+ cond) with the axial
       positional embedding P = P_row[r] + P_col[c].
    2. Outer decoder: `num_outer_layers` blocks alternating unmasked row
       attention and column attention masked along the rows; then
       u = shift_down(u): u[r] depends on all pixels of rows < r only.
    3. Inner decoder: z = shift_right(h) + u + P (+ cond), then
       `num_inner_layers` row-attention blocks masked along the columns:
       z[r, c] depends on rows < r and on (r, c' < c).
    4. logits = Dense_K(LayerNorm(z)).

    With C > 1 channels (the paper's `SlicedChannelModel`), slice c is
    conditioned on `cond` = an encoder of the channels < c (values / (K-1),
    later channels zeroed, plus a one-hot "current channel" plane):
    3x3 convolution + its own axial positional embedding +
    `num_exterior_layers` unmasked row/column blocks (§4.2 "channel
    slicing"). `call` returns the logits of every slice (the official
    `compute_all_slice_logits`, what evaluation uses); the official training
    samples one random slice per image instead (same expected loss).

    Args:
        image_height, image_width: int.
        num_channels: int. C; 1 = the single-channel `Transformer2d`.
        num_values: int. K, values per subpixel (256 for 8-bit images).
        hidden_dim: int. D (`emb_dim`).
        num_heads: int.
        mlp_ratio: int. MLP hidden width / D (`hdim_factor`).
        num_exterior_layers: int (even). Channel-context layers (C > 1).
        num_outer_layers: int (even). Row/column pairs of the outer decoder.
        num_inner_layers: int. Masked row layers of the inner decoder.
        dropout: float. On every residual branch.
        emb_init_scale: float. Embeddings ~ N(0, (scale / sqrt(D))^2).
        res_init_scale: float. Variance scale of the residual output
            projections (1e-10 upstream: blocks start as the identity).
        logits_init_scale: float. Variance scale of the logits layer.
        layer_norm_epsilon: float.

    Inputs:
        dict `images` int (B, H, W, C) with values in [0, K), or a bare
        tensor.

    Outputs:
        dict `logits` (B, H, W, C, K): logits of pixel (r, c, ch) given the
        pixels before it.

    Example:

    >>> import garden
    >>> model = garden.build("axial_transformer", preset="tiny")
    >>> x = garden.example_inputs("axial_transformer", preset="tiny")
    >>> tuple(model(x)["logits"].shape)
    (2, 8, 8, 1, 17)

    Sampling (eager loops; wrap in `tf.function(jit_compile=True)` for
    speed): `model.generate(4, seed=0)` -> int32 (4, 8, 8, 1).
    """

    input_names = ("images",)

    def __init__(self, image_height=32, image_width=32, num_channels=3,
                 num_values=256, hidden_dim=1536, num_heads=16, mlp_ratio=1,
                 num_exterior_layers=8, num_outer_layers=8,
                 num_inner_layers=8, dropout=0.0, emb_init_scale=5.0,
                 res_init_scale=1e-10, logits_init_scale=1e-10,
                 layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self._validate(num_channels, num_exterior_layers, num_outer_layers,
                       hidden_dim, num_heads, num_values)
        # === Config ===
        self.image_height = image_height
        self.image_width = image_width
        self.num_channels = num_channels
        self.num_values = num_values
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.num_exterior_layers = num_exterior_layers
        self.num_outer_layers = num_outer_layers
        self.num_inner_layers = num_inner_layers
        self.dropout = dropout
        self.emb_init_scale = emb_init_scale
        self.res_init_scale = res_init_scale
        self.logits_init_scale = logits_init_scale
        self.layer_norm_epsilon = layer_norm_epsilon

        # === Layers ===
        p = self.dtype_policy
        spatial = (image_height, image_width)
        self.token_embedding = keras.layers.Embedding(
            num_values, hidden_dim,
            embeddings_initializer=layers.embedding_init(emb_init_scale,
                                                         hidden_dim),
            dtype=p, name="embs")
        self.pos_embedding = layers.AxialPositionalEmbedding(
            spatial, hidden_dim, emb_init_scale, dtype=p, name="pos_embs")
        self.outer_blocks = []
        for i in range(num_outer_layers // 2):
            self.outer_blocks.append(self._block(ROW, False, f"outer_row_{i}"))
            self.outer_blocks.append(
                self._block(COLUMN, True, f"outer_col_{i}"))
        self.inner_blocks = [self._block(ROW, True, f"inner_row_{i}")
                             for i in range(num_inner_layers)]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="final_ln")
        self.logits_dense = keras.layers.Dense(
            num_values,
            kernel_initializer=layers.variance_scaling(logits_init_scale),
            dtype=p, name="final_dense")
        self.exterior_blocks = []
        if num_channels > 1:
            self.exterior_conv = keras.layers.Conv2D(
                hidden_dim, 3, padding="same",
                kernel_initializer=layers.variance_scaling(1.0), dtype=p,
                name="exterior_input_conv")
            self.exterior_pos_embedding = layers.AxialPositionalEmbedding(
                spatial, hidden_dim, emb_init_scale, dtype=p,
                name="exterior_pos_embs")
            for i in range(num_exterior_layers // 2):
                self.exterior_blocks.append(
                    self._block(ROW, False, f"exterior_row_{i}"))
                self.exterior_blocks.append(
                    self._block(COLUMN, False, f"exterior_col_{i}"))

    def _validate(self, num_channels, num_exterior_layers, num_outer_layers,
                  hidden_dim, num_heads, num_values):
        if num_outer_layers % 2 or num_exterior_layers % 2:
            raise ValueError(
                f"{self.model_label}: num_outer_layers ({num_outer_layers}) "
                f"and num_exterior_layers ({num_exterior_layers}) must be "
                "even (row/column pairs).")
        if num_channels < 1 or (num_channels == 1 and num_exterior_layers):
            raise ValueError(
                f"{self.model_label}: num_exterior_layers "
                f"({num_exterior_layers}) needs num_channels > 1 (got "
                f"{num_channels}); exterior layers encode previous channels.")
        if hidden_dim % num_heads:
            raise ValueError(
                f"{self.model_label}: hidden_dim ({hidden_dim}) must be a "
                f"multiple of num_heads ({num_heads}).")
        if num_values < 2:
            raise ValueError(
                f"{self.model_label}: num_values must be >= 2; got "
                f"{num_values}.")

    def _block(self, axis, masked, name):
        return layers.AxialTransformerBlock(
            self.hidden_dim, self.num_heads, axis, masked=masked,
            mlp_ratio=self.mlp_ratio, dropout=self.dropout,
            res_init_scale=self.res_init_scale,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy, name=name)

    @property
    def input_dtype(self):
        # Integer pixels: Keras' default SavedModel signature (built from
        # shapes) would otherwise declare float32 inputs.
        return "int32"

    @property
    def image_shape(self):
        return (self.image_height, self.image_width, self.num_channels)

    def build(self, input_shape=None):
        grid = (None, self.image_height, self.image_width, self.hidden_dim)
        self.token_embedding.build((None, self.image_height,
                                    self.image_width))
        self.pos_embedding.build(grid)
        for block in self.outer_blocks + self.inner_blocks:
            block.build(grid)
        self.final_norm.build(grid)
        self.logits_dense.build(grid)
        if self.num_channels > 1:
            self.exterior_conv.build(grid[:3] + (2 * self.num_channels,))
            self.exterior_pos_embedding.build(grid)
            for block in self.exterior_blocks:
                block.build(grid)

    # ----------------------------------------------------------- the model
    def embed(self, values):
        """int (B, H', W) -> (B, H', W, D) (the official `embs` gather)."""
        return self.token_embedding(values)

    def upper_context(self, h, cond=None, training=None):
        """Outer decoder (official `_upper_context`): u[r] summarises all
        pixels of rows < r (unmasked rows, masked columns, shift down)."""
        u = self.pos_embedding(h)
        if cond is not None:
            u = u + cond
        for block in self.outer_blocks:
            u = block(u, training=training)
        return layers.shift_down(u)

    def row_decoder(self, h, u, pos, cond=None, training=None):
        """Inner decoder (official `_row_autoregressive`): masked row
        attention over shift_right(h) + u + pos (+ cond). Works on the whole
        image or on one row (B, 1, W, D) with the matching u, pos, cond."""
        z = layers.shift_right(h) + u + pos
        if cond is not None:
            z = z + cond
        for block in self.inner_blocks:
            z = block(z, training=training)
        return z

    def final_logits(self, z):
        return self.logits_dense(self.final_norm(z))

    def decode_slice(self, h, cond=None, training=None):
        """Logits (B, H, W, K) of one channel slice from its embeddings."""
        u = self.upper_context(h, cond, training)
        z = self.row_decoder(h, u, self.pos_embedding.table()[None], cond,
                             training)
        return self.final_logits(z)

    def channel_context(self, values, channel, training=None):
        """Exterior encoder of the channels before `channel` (official
        `Transformer3d._compute_conditioning`).

        values: float (B, H, W, C), pixel / (K - 1); channels >= `channel`
        are multiplied by 0 here, so they cannot leak.
        """
        c = self.num_channels
        previous = np.arange(c) < channel
        values = values * ops.convert_to_tensor(
            previous.astype("float32"), values.dtype)
        current = ops.convert_to_tensor(
            (np.arange(c) == channel).astype("float32"), values.dtype)
        h = ops.concatenate([values, ops.zeros_like(values) + current], -1)
        h = self.exterior_pos_embedding(self.exterior_conv(h))
        for block in self.exterior_blocks:
            h = block(h, training=training)
        return h

    def slice_context(self, images, channel, training=None):
        """`cond` of slice `channel` from int images, or None if C == 1."""
        if self.num_channels == 1:
            return None
        values = ops.cast(images, self.compute_dtype) / (self.num_values - 1)
        return self.channel_context(values, channel, training)

    def compute_logits(self, images, training=None):
        """(B, H, W, C, K) logits of every slice (teacher forcing)."""
        logits = []
        for c in range(self.num_channels):
            cond = self.slice_context(images, c, training)
            logits.append(self.decode_slice(self.embed(images[..., c]), cond,
                                            training))
        return ops.stack(logits, axis=3)

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        images = self.check_input(
            "images", inputs["images"], (None,) + self.image_shape, "int")
        return {"logits": self.compute_logits(images, training)}

    def task_loss(self, x, y, y_pred, sample_weight=None):
        images = self.unpack_inputs(x)["images"]
        return bits_per_dim(y_pred["logits"], images, sample_weight)

    # ------------------------------------------------------------ sampling
    def sample(self, noise, fast=True, return_logits=False):
        """Images (B, H, W, C) int32 drawn with Gumbel `noise`
        (B, H, W, C, K); `fast` = semi-parallel (see
        `axial_transformer_sampling`). Same noise, same images."""
        return sampling.sample(self, noise, fast=fast,
                               return_logits=return_logits)

    def generate(self, batch_size, seed=None, temperature=1.0, fast=True):
        """Samples `batch_size` images with fresh Gumbel noise."""
        shape = (batch_size,) + self.image_shape + (self.num_values,)
        return self.sample(sampling.gumbel_noise(shape, seed, temperature),
                           fast=fast)

    def get_config(self):
        return {
            **super().get_config(),
            "image_height": self.image_height,
            "image_width": self.image_width,
            "num_channels": self.num_channels,
            "num_values": self.num_values,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "num_exterior_layers": self.num_exterior_layers,
            "num_outer_layers": self.num_outer_layers,
            "num_inner_layers": self.num_inner_layers,
            "dropout": self.dropout,
            "emb_init_scale": self.emb_init_scale,
            "res_init_scale": self.res_init_scale,
            "logits_init_scale": self.logits_init_scale,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
