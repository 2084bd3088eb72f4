"""`FITClassifier` (registry name `fit`): a FIT encoder on image patches
grouped by sub-image, with a linear classification head.

Paper: Chen & Li 2023, "FIT: Far-reaching Interleaved Transformers",
https://arxiv.org/abs/2305.12689. The official code uses FIT as an encoder
for Pix2Seq (`models/ar_model.py`, `fit_encoder_ar_decoder`): images are cut
into sub-images ("glimpses"), each a group of patch tokens, and the encoder
output is its latents if the last block has global layers, else its data
tokens. A classification head is the garden's task (no official FIT
classifier exists): mean over those tokens, then a Dense layer.
"""

import keras
from keras import ops

from garden.fit.fit_backbone import FITEncoder
from garden.fit.fit_layers import group_images
from garden.fit.fit_presets import fit_presets
from official.models import examples
from official.models.garden_model import GardenModel
from official.registry import register_model


@register_model(
    "fit",
    presets=fit_presets,
    example_inputs=examples.image_inputs,
    example_labels=examples.class_labels,
    tags={"domain": "vision", "family": "efficient-attention",
          "modality": "image", "task": "image-classification",
          "paper": "fit"},
    description="FIT: Far-reaching Interleaved Transformers (Chen & Li "
    "2023), as an image classifier.",
)
class FITClassifier(GardenModel):
    """FIT image classifier.

    Images (B, H, W, C) -> (B, t, n, p*p*C) patch tokens grouped by square
    sub-images of side `group_size` (t = (H/g)(W/g) groups, n = (g/p)^2
    tokens each; `fit_layers.group_images`) -> `FITEncoder` ->
    [mean of the data tokens, mean of the latents] -> Dense logits.

    Args:
        image_size: int. Square input side.
        num_channels: int.
        patch_size: int.
        group_size: int. Side of the square sub-image forming one group.
        layers: str. FIT block string, e.g. "(2)4(2)" (see
            `fit_layers.parse_layers`).
        latents_per_group: int. m.
        x_dim, latent_dim: int.
        x_num_heads, latent_num_heads: int.
        mlp_ratio: float.
        drop_path: float.
        latent_mask: "none" or "causal".
        num_classes: int.
        label_smoothing: float.
        attention_kernel: str. `official.attention` kernel.

    Inputs:
        dict `images` (B, H, W, C) float, or a bare tensor.

    Outputs:
        (B, num_classes) logits.

    Example:

    >>> import garden
    >>> model = garden.build("fit", preset="tiny")
    >>> x = garden.example_inputs("fit", preset="tiny")
    >>> tuple(model(x).shape)
    (2, 10)
    """

    input_names = ("images",)

    def __init__(self, image_size=512, num_channels=3, patch_size=4,
                 group_size=128, layers="(2)4(2)4(2)4(2)",
                 latents_per_group=32, x_dim=512, latent_dim=768,
                 x_num_heads=8, latent_num_heads=12, mlp_ratio=4.0,
                 drop_path=0.0, latent_mask="none", num_classes=1000,
                 label_smoothing=0.0, attention_kernel="dense", **kwargs):
        super().__init__(**kwargs)
        if image_size % group_size or group_size % patch_size:
            raise ValueError(
                f"{self.model_label}: image_size {image_size} must be a "
                f"multiple of group_size {group_size}, itself a multiple of "
                f"patch_size {patch_size}.")
        # === Config ===
        self.image_size = image_size
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.group_size = group_size
        self.layer_spec = layers
        self.latents_per_group = latents_per_group
        self.x_dim = x_dim
        self.latent_dim = latent_dim
        self.x_num_heads = x_num_heads
        self.latent_num_heads = latent_num_heads
        self.mlp_ratio = mlp_ratio
        self.drop_path = drop_path
        self.latent_mask = latent_mask
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.attention_kernel = attention_kernel
        self.num_groups = (image_size // group_size) ** 2
        self.tokens_per_group = (group_size // patch_size) ** 2

        # === Layers ===
        p = self.dtype_policy
        self.encoder = FITEncoder(
            layers, self.num_groups, self.tokens_per_group,
            latents_per_group, x_dim, latent_dim, x_num_heads,
            latent_num_heads, mlp_ratio=mlp_ratio, drop_path=drop_path,
            latent_mask=latent_mask, attention_kernel=attention_kernel,
            dtype=p, name="encoder")
        self.head = keras.layers.Dense(num_classes, dtype=p, name="head")

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.num_channels)

    @property
    def token_dim(self):
        return self.patch_size * self.patch_size * self.num_channels

    def build(self, input_shape=None):
        self.encoder.build((None, self.num_groups, self.tokens_per_group,
                            self.token_dim))
        self.head.build((None, self.x_dim + self.latent_dim))

    def group(self, images):
        """(B, H, W, C) -> (B, t, n, p*p*C) grouped patch tokens."""
        return group_images(images, self.group_size, self.patch_size)

    def features(self, images, training=False):
        """Pooled encoder outputs (B, x_dim + latent_dim)."""
        x, latents = self.encoder(self.group(images), training=training)
        return ops.concatenate([ops.mean(x, axis=(1, 2)),
                                ops.mean(latents, axis=(1, 2))], axis=-1)

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        images = self.check_input("images", inputs["images"],
                                  (None,) + self.image_shape, "float")
        return self.head(self.features(images, training=training))

    def task_loss(self, x, y, y_pred, sample_weight=None):
        logits = ops.cast(y_pred, "float32")
        labels = ops.one_hot(ops.cast(y, "int32"), self.num_classes)
        per_sample = keras.losses.categorical_crossentropy(
            labels, logits, from_logits=True,
            label_smoothing=self.label_smoothing)
        if sample_weight is None:
            return ops.mean(per_sample)
        w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return ops.sum(per_sample * w) / ops.maximum(ops.sum(w), 1e-12)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "num_channels": self.num_channels,
            "patch_size": self.patch_size,
            "group_size": self.group_size,
            "layers": self.layer_spec,
            "latents_per_group": self.latents_per_group,
            "x_dim": self.x_dim,
            "latent_dim": self.latent_dim,
            "x_num_heads": self.x_num_heads,
            "latent_num_heads": self.latent_num_heads,
            "mlp_ratio": self.mlp_ratio,
            "drop_path": self.drop_path,
            "latent_mask": self.latent_mask,
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
            "attention_kernel": self.attention_kernel,
        }
