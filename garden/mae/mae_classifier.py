"""`MAEClassifier` (registry name `mae_classifier`): MAE fine-tuning ViT.

Official code: facebookresearch/mae `models_vit.py` (timm VisionTransformer
with `global_pool`) and `main_finetune.py` (head init, label smoothing,
loading the pre-trained encoder with `strict=False`).
"""

import keras
from keras import ops

from garden.mae.mae_backbone import MAEViTEncoder
from garden.mae.mae_presets import mae_classifier_presets
from official.models import examples
from official.models.garden_model import GardenModel
from official.registry import register_model

# Encoder constructor arguments shared with `MAEPretrainer`.
ENCODER_KEYS = ("image_size", "patch_size", "num_channels", "hidden_dim",
                "num_layers", "num_heads", "mlp_ratio", "layer_norm_epsilon",
                "activation")


@register_model(
    "mae_classifier",
    presets=mae_classifier_presets,
    example_inputs=examples.image_inputs,
    example_labels=examples.class_labels,
    tags={"domain": "vision", "task": "image-classification",
          "modality": "image", "family": "vision-ssl", "paper": "mae"},
    description="ViT classifier fine-tuned from an MAE encoder.",
)
class MAEClassifier(GardenModel):
    """ViT image classifier for MAE fine-tuning (He et al. 2021, §4 and
    appendix A.2; `models_vit.py`).

    The encoder is the `MAEViTEncoder` of `MAEPretrainer` (positions
    trainable here, as in timm's VisionTransformer, initialised with the
    sin-cos table). With `global_pool` (the official fine-tuning default)
    the patch tokens, without the cls token, are averaged and normalised by
    `fc_norm`; otherwise the final `norm` is applied and the cls token is
    used. The head is a Linear initialised with std 2e-5
    (`trunc_normal_(model.head.weight, std=2e-5)` in main_finetune.py).

    Args:
        image_size, patch_size, num_channels, hidden_dim, num_layers,
        num_heads, mlp_ratio, layer_norm_epsilon, activation: the encoder.
        num_classes: int.
        global_pool: bool.
        drop_path: float. Maximum stochastic-depth rate (0.1 for ViT-B).
        label_smoothing: float. Used by `task_loss`.
        head_init_std: float.

    Inputs:
        `{"images": (B, H, W, C)}` or the bare image tensor.

    Outputs:
        (B, num_classes) logits.

    Example:

    >>> import garden
    >>> pre = garden.build("mae", preset="tiny")
    >>> _ = pre(garden.example_inputs("mae", preset="tiny"))
    >>> clf = garden.mae.MAEClassifier.from_pretrainer(pre, num_classes=5)
    >>> tuple(clf(garden.example_inputs("mae_classifier")).shape)
    (2, 5)
    """

    input_names = ("images",)

    def __init__(self, image_size=224, patch_size=16, num_channels=3,
                 hidden_dim=768, num_layers=12, num_heads=12, mlp_ratio=4.0,
                 layer_norm_epsilon=1e-6, num_classes=1000, global_pool=True,
                 drop_path=0.1, label_smoothing=0.0, head_init_std=2e-5,
                 activation="gelu", **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_epsilon = layer_norm_epsilon
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.drop_path = drop_path
        self.label_smoothing = label_smoothing
        self.head_init_std = head_init_std
        self.activation = activation

        # === Layers ===
        p = self.dtype_policy
        self.encoder = MAEViTEncoder(
            image_size=image_size, patch_size=patch_size,
            num_channels=num_channels, hidden_dim=hidden_dim,
            num_layers=num_layers, num_heads=num_heads, mlp_ratio=mlp_ratio,
            layer_norm_epsilon=layer_norm_epsilon, drop_path=drop_path,
            final_norm=not global_pool, trainable_pos_embed=True,
            activation=activation, dtype=p, name="encoder",
        )
        self.fc_norm = None
        if global_pool:
            self.fc_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=p, name="fc_norm")
        self.head = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=head_init_std),
            dtype=p, name="head",
        )

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.num_channels)

    def build(self, input_shape=None):
        self.encoder.build((None,) + self.image_shape)
        if self.fc_norm is not None:
            self.fc_norm.build((None, self.hidden_dim))
        self.head.build((None, self.hidden_dim))

    def features(self, images, training=False):
        """(B, D) pooled features (`forward_features` upstream)."""
        x = self.encoder(images, training=training)
        if self.global_pool:
            return self.fc_norm(ops.mean(x[:, 1:, :], axis=1))
        return x[:, 0, :]

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        images = self.check_input(
            "images", inputs["images"], (None,) + self.image_shape, "float")
        return self.head(self.features(images, training=training))

    def task_loss(self, x, y, y_pred, sample_weight=None):
        """Cross-entropy from logits; label smoothing as timm's
        `LabelSmoothingCrossEntropy` ((1 - s) · one-hot + s / K)."""
        labels = ops.one_hot(ops.reshape(ops.cast(y, "int32"), (-1,)),
                             self.num_classes)
        per_sample = keras.losses.categorical_crossentropy(
            labels, ops.cast(y_pred, "float32"), from_logits=True,
            label_smoothing=self.label_smoothing)
        if sample_weight is None:
            return ops.mean(per_sample)
        w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return ops.sum(per_sample * w) / ops.maximum(ops.sum(w), 1e-12)

    # ------------------------------------------------------ weight transfer
    @classmethod
    def from_pretrainer(cls, pretrainer, num_classes, **kwargs):
        """A classifier with `pretrainer`'s encoder config and weights."""
        config = {k: getattr(pretrainer, k) for k in ENCODER_KEYS}
        config.update(num_classes=num_classes, **kwargs)
        model = cls(**config)
        model.load_encoder_weights(pretrainer)
        return model

    def load_encoder_weights(self, source):
        """Copies encoder weights from an `MAEPretrainer` or `MAEViTEncoder`.

        As upstream (`load_state_dict(strict=False)`): patch embedding, cls
        token, positions and blocks are copied; the final `norm` only when
        both sides have it (cls-token mode); `fc_norm` and `head` keep their
        initialisation. Raises ValueError on an architecture mismatch.
        """
        src = getattr(source, "encoder", source)
        if not isinstance(src, MAEViTEncoder):
            raise ValueError(
                f"{self.model_label}: load_encoder_weights expects an "
                "MAEPretrainer or MAEViTEncoder; received "
                f"{type(source).__name__}."
            )
        keys = ("image_size", "patch_size", "num_channels", "hidden_dim",
                "num_layers", "num_heads", "mlp_ratio")
        dst = self.encoder
        mismatch = {k: (getattr(src, k), getattr(dst, k))
                    for k in keys if getattr(src, k) != getattr(dst, k)}
        if mismatch:
            raise ValueError(
                f"{self.model_label}: encoder mismatch (source, this model): "
                f"{mismatch}."
            )
        if not src.built:
            raise ValueError(
                f"{self.model_label}: the source encoder has no weights yet; "
                "call or build the pre-trainer first."
            )
        if not self.built:
            self.build((None,) + self.image_shape)
        pairs = [(dst.patch_embed, src.patch_embed)]
        pairs += list(zip(dst.blocks, src.blocks))
        if dst.norm is not None and src.norm is not None:
            pairs.append((dst.norm, src.norm))
        for target, origin in pairs:
            target.set_weights(origin.get_weights())
        dst.cls_token.assign(src.cls_token)
        dst.pos_embed.assign(src.pos_embed)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "num_classes": self.num_classes,
            "global_pool": self.global_pool,
            "drop_path": self.drop_path,
            "label_smoothing": self.label_smoothing,
            "head_init_std": self.head_init_std,
            "activation": self.activation,
        }
