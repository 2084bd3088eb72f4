"""`SLABDeiT` (registry name `slab`): SLAB-DeiT, a DeiT classifier with
simplified linear attention and progressive re-parameterized BatchNorm.

Official code: xinghaochen/SLAB `classification/models/slab_deit.py`
(`VisionTransformer`, `deit_tiny_patch16_224_linear_repbn`,
`deit_small_patch16_224_linear_repbn`). Differences from a timm DeiT there:
no class token in the forward pass (tokens are average-pooled after the
final norm), positions for the patches only, every norm (norm1, norm2 of each
block and the final norm) is PRepBN, attention is SLA.
"""

import keras
import numpy as np
from keras import ops

from garden.slab.slab_layers import NORM_TYPES
from garden.slab.slab_layers import SLABBlock
from garden.slab.slab_layers import make_norm
from garden.slab.slab_presets import slab_presets
from official.layers.patch_embedding import PatchEmbedding
from official.models import examples
from official.models.garden_model import GardenModel
from official.registry import register_model


@register_model(
    "slab",
    presets=slab_presets,
    example_inputs=examples.image_inputs,
    example_labels=examples.class_labels,
    tags={"domain": "vision", "family": "efficient-attention",
          "modality": "image", "task": "image-classification",
          "paper": "slab"},
    description="SLAB-DeiT: simplified linear attention + progressive "
    "re-parameterized BatchNorm (foldable at inference).",
)
class SLABDeiT(GardenModel):
    """SLAB-DeiT image classifier (Guo et al. 2024, ICML,
    https://arxiv.org/abs/2405.11582).

    patch embedding (Conv p x p, stride p) + learned positions -> blocks
    (`SLABBlock`: PRepBN -> SLA (+ DWC) -> PRepBN -> MLP) -> final PRepBN ->
    mean over tokens -> Linear head. After training, `garden.slab.
    fold_batchnorm(model)` returns an equivalent model (`norm_type=
    "folded"`) with every norm folded into the following linear layer.

    Args:
        image_size, patch_size, num_channels: int.
        num_classes: int.
        hidden_dim, num_layers, num_heads: int.
        mlp_ratio: float.
        qkv_bias: bool.
        drop_path_rate: float. Stochastic depth, linear over depth.
        attention_kernel: str. "linear_relu" (SLA) or e.g. "dense" (DeiT
            softmax attention, for baselines).
        dwc_kernel_size: int.
        norm_type: "prepbn" (paper), "repbn", "layernorm" or "folded".
        total_steps, warm_steps, r0: PRepBN schedule (official: 60000, 0,
            1.0).
        layer_norm_epsilon: float. 1e-6.
        unused_cls_token: bool. The official module owns a `cls_token`
            (1, 1, D) that its forward never reads; True keeps such a weight
            so that the parameter count (and checkpoint layout) match the
            official one. It receives no gradient.
        label_smoothing: float. Used by `task_loss`.

    Inputs:
        `{"images": (B, H, W, C)}` or the bare image tensor.

    Outputs:
        (B, num_classes) logits.

    Example:

    >>> import garden
    >>> model = garden.build("slab", preset="tiny")
    >>> x = garden.example_inputs("slab", preset="tiny")
    >>> tuple(model(x, training=False).shape)
    (2, 10)
    >>> folded = garden.slab.fold_batchnorm(model)
    >>> tuple(folded(x, training=False).shape)
    (2, 10)
    """

    input_names = ("images",)

    def __init__(self, image_size=224, patch_size=16, num_channels=3,
                 num_classes=1000, hidden_dim=192, num_layers=12,
                 num_heads=3, mlp_ratio=4.0, qkv_bias=True,
                 drop_path_rate=0.0, attention_kernel="linear_relu",
                 dwc_kernel_size=5, norm_type="prepbn", total_steps=60000,
                 warm_steps=0, r0=1.0, layer_norm_epsilon=1e-6,
                 unused_cls_token=False, label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(
                f"SLABDeiT: image_size {image_size} is not a multiple of "
                f"patch_size {patch_size}.")
        if norm_type not in NORM_TYPES:
            raise ValueError(
                f"SLABDeiT: unknown norm_type {norm_type!r}; expected one of "
                f"{NORM_TYPES}.")
        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.attention_kernel = attention_kernel
        self.dwc_kernel_size = dwc_kernel_size
        self.norm_type = norm_type
        self.total_steps = total_steps
        self.warm_steps = warm_steps
        self.r0 = r0
        self.layer_norm_epsilon = layer_norm_epsilon
        self.unused_cls_token = unused_cls_token
        self.label_smoothing = label_smoothing

        # === Layers ===
        p = self.dtype_policy
        grid = image_size // patch_size
        fan_in = patch_size * patch_size * num_channels
        bound = 1.0 / np.sqrt(fan_in)  # PyTorch Conv2d default init
        self.patch_embed = PatchEmbedding(
            patch_size, hidden_dim,
            kernel_initializer=keras.initializers.RandomUniform(
                -bound, bound),
            dtype=p, name="patch_embed")
        rates = np.linspace(0.0, drop_path_rate, num_layers)
        self.blocks = [
            SLABBlock(
                num_heads, (grid, grid), mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias, drop_path=float(rates[i]),
                attention_kernel=attention_kernel,
                dwc_kernel_size=dwc_kernel_size, norm_type=norm_type,
                total_steps=total_steps, warm_steps=warm_steps, r0=r0,
                layer_norm_epsilon=layer_norm_epsilon, dtype=p,
                name=f"block_{i}")
            for i in range(num_layers)
        ]
        self.norm = make_norm(norm_type, "norm", p, total_steps=total_steps,
                              warm_steps=warm_steps, r0=r0,
                              layer_norm_epsilon=layer_norm_epsilon)
        self.head = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=0.02),
            dtype=p, name="head")

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.num_channels)

    @property
    def num_patches(self):
        return (self.image_size // self.patch_size) ** 2

    def build(self, input_shape=None):
        n, d = self.num_patches, self.hidden_dim
        self.patch_embed.build((None,) + self.image_shape)
        self.pos_embed = self.add_weight(
            name="pos_embed", shape=(1, n, d),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        if self.unused_cls_token:
            self.cls_token = self.add_weight(
                name="cls_token", shape=(1, 1, d), initializer="zeros")
        for block in self.blocks:
            block.build((None, n, d))
        if self.norm is not None:
            self.norm.build((None, n, d))
        self.head.build((None, d))
        self.built = True

    def features(self, images, training=False):
        """(B, D) pooled features (official `forward_features`)."""
        x = self.patch_embed(images) + ops.cast(self.pos_embed,
                                                self.compute_dtype)
        for block in self.blocks:
            x = block(x, training=training)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return ops.mean(x, axis=1)

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        images = self.check_input(
            "images", inputs["images"], (None,) + self.image_shape, "float")
        return self.head(self.features(images, training=bool(training)))

    def task_loss(self, x, y, y_pred, sample_weight=None):
        """Cross-entropy from logits (with optional label smoothing)."""
        labels = ops.one_hot(ops.reshape(ops.cast(y, "int32"), (-1,)),
                             self.num_classes)
        per_sample = keras.losses.categorical_crossentropy(
            labels, ops.cast(y_pred, "float32"), from_logits=True,
            label_smoothing=self.label_smoothing)
        if sample_weight is None:
            return ops.mean(per_sample)
        w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return ops.sum(per_sample * w) / ops.maximum(ops.sum(w), 1e-12)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "num_classes": self.num_classes,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "drop_path_rate": self.drop_path_rate,
            "attention_kernel": self.attention_kernel,
            "dwc_kernel_size": self.dwc_kernel_size,
            "norm_type": self.norm_type,
            "total_steps": self.total_steps,
            "warm_steps": self.warm_steps,
            "r0": self.r0,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "unused_cls_token": self.unused_cls_token,
            "label_smoothing": self.label_smoothing,
        }
