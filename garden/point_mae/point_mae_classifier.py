"""`PointMAEClassifier`: the fine-tuning model (registry name
`point_mae_classifier`).

Official code: github.com/Pang-Yatian/Point-MAE `models/Point_MAE.py`, class
`PointTransformer`.
"""

import keras
from keras import ops

from garden.point_mae import point_mae_presets
from garden.point_mae.point_mae_backbone import BACKBONE_ARGS
from garden.point_mae.point_mae_backbone import PointMAEBackbone
from garden.point_mae.point_mae_layers import BN_EPSILON
from garden.point_mae.point_mae_layers import BN_MOMENTUM
from official.models.garden_model import GardenModel
from official.registry import register_model


@register_model(
    "point_mae_classifier",
    presets=point_mae_presets.classifier_presets,
    example_inputs=point_mae_presets.classifier_example_inputs,
    example_labels=point_mae_presets.classifier_example_labels,
    tags={"domain": "vision", "task": "point-cloud-classification",
          "modality": "point_cloud", "family": "vision-ssl",
          "paper": "point_mae"},
    description="Point-MAE fine-tuning classifier (PointTransformer).",
)
class PointMAEClassifier(GardenModel):
    """Point-MAE shape classifier: the encoder on all patches + an MLP head.

    Paper: Pang et al., ECCV 2022, https://arxiv.org/abs/2203.06604, Sec. 4.2
    (downstream classification). Same grouping, mini-PointNet, position MLP
    and blocks as the pre-training encoder (`PointMAEBackbone`), no masking,
    plus a learnable cls token with its own learnable position `cls_pos`.
    Feature = concat(cls output, max over the patch outputs) (2D) ->
    Dense(256) -> BN -> ReLU -> Dropout(0.5) -> Dense(256) -> BN -> ReLU ->
    Dropout(0.5) -> Dense(num_classes). Trained with cross-entropy.

    Args:
        num_points, num_groups, group_size, embed_dim, depth, num_heads,
        mlp_ratio, patch_dims, pos_hidden_dim, drop_path_rate,
        layer_norm_epsilon, activation: encoder, see `PointMAEBackbone`.
        num_classes: int.
        head_dims: (int, int). Hidden widths of the head (official 256, 256).
        head_dropout: float. 0.5.

    Inputs:
        points: (B, N, 3) float (dict {"points": ...} or a bare tensor).

    Returns:
        (B, num_classes) logits.

    Example:

    >>> import garden
    >>> model = garden.build("point_mae_classifier", preset="tiny")
    >>> x = garden.example_inputs("point_mae_classifier", preset="tiny")
    >>> tuple(model(x, training=False).shape)
    (2, 7)
    """

    input_names = ("points",)

    def __init__(self, num_points=1024, num_groups=64, group_size=32,
                 embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0,
                 patch_dims=(128, 256, 512), pos_hidden_dim=128,
                 drop_path_rate=0.1, layer_norm_epsilon=1e-5,
                 activation="gelu", num_classes=40, head_dims=(256, 256),
                 head_dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.num_points = num_points
        self.num_groups = num_groups
        self.group_size = group_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.patch_dims = tuple(patch_dims)
        self.pos_hidden_dim = pos_hidden_dim
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.num_classes = num_classes
        self.head_dims = tuple(head_dims)
        self.head_dropout = head_dropout

        # === Layers ===
        p = self.dtype_policy
        self.backbone = PointMAEBackbone(
            **{k: getattr(self, k) for k in BACKBONE_ARGS}, dtype=p,
            name="backbone")
        self.head_layers = []
        for i, width in enumerate(self.head_dims):
            self.head_layers += [
                keras.layers.Dense(width, dtype=p, name=f"head_dense_{i}"),
                keras.layers.BatchNormalization(
                    epsilon=BN_EPSILON, momentum=BN_MOMENTUM, dtype=p,
                    name=f"head_bn_{i}"),
                keras.layers.ReLU(dtype=p, name=f"head_relu_{i}"),
                keras.layers.Dropout(head_dropout, dtype=p,
                                     name=f"head_dropout_{i}"),
            ]
        # Logits stay float32 under mixed precision.
        self.classifier = keras.layers.Dense(
            num_classes, dtype="float32", name="classifier")

    def build(self, input_shape=None):
        d = self.embed_dim
        if not self.backbone.built:
            self.backbone.build((None, self.num_points, 3))
        # One initializer instance each: an unseeded Keras initializer
        # returns the same values on every call.
        self.cls_token = self.add_weight(
            shape=(1, 1, d),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="cls_token")
        self.cls_pos = self.add_weight(
            shape=(1, 1, d),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="cls_pos")
        shape = (None, 2 * d)
        for layer in self.head_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.classifier.build(shape)
        self.built = True

    def features(self, points, training=False):
        """concat(cls output, max over patch outputs): (B, 2D)."""
        backbone = self.backbone
        neighborhood, centers = backbone.group(points)
        tokens = backbone.embed(neighborhood, training=training)
        pos = backbone.pos_embed(centers)
        batch = ops.shape(tokens)[0]
        cls = ops.broadcast_to(ops.cast(self.cls_token, tokens.dtype),
                               (batch, 1, self.embed_dim))
        cls_pos = ops.broadcast_to(ops.cast(self.cls_pos, pos.dtype),
                                   (batch, 1, self.embed_dim))
        x = backbone.encode(ops.concatenate([cls, tokens], axis=1),
                            ops.concatenate([cls_pos, pos], axis=1),
                            training=training)
        return ops.concatenate([x[:, 0], ops.max(x[:, 1:], axis=1)], axis=-1)

    def call(self, inputs, training=False):
        inputs = self.unpack_inputs(inputs)
        points = self.check_input(
            "points", inputs["points"], (None, self.num_points, 3))
        x = self.features(points, training=training)
        for layer in self.head_layers:
            x = layer(x, training=training)
        return self.classifier(x)

    def task_loss(self, x, y, y_pred, sample_weight=None):
        """Cross-entropy from logits (`nn.CrossEntropyLoss`, no smoothing)."""
        loss = keras.losses.sparse_categorical_crossentropy(
            ops.cast(ops.reshape(y, (-1,)), "int32"),
            ops.cast(y_pred, "float32"), from_logits=True)
        if sample_weight is not None:
            loss = loss * ops.cast(ops.reshape(sample_weight, (-1,)),
                                   loss.dtype)
        return ops.mean(loss)

    def load_encoder_weights(self, pretrainer):
        """Copies the pretrained encoder of a `PointMAEPretrainer`.

        `PointTransformer.load_model_from_ckpt`: every `MAE_encoder.*` entry
        of the checkpoint (mini-PointNet incl. BatchNorm statistics,
        `pos_embed`, `blocks`, `norm`) is loaded; cls token, cls_pos and the
        head keep their initialisation. Raises ValueError if the encoder
        architectures differ (number of points, groups and group size may
        differ: no weight depends on them).
        """
        mine = {k: getattr(self, k) for k in BACKBONE_ARGS}
        theirs = {k: getattr(pretrainer, k, None) for k in BACKBONE_ARGS}
        # No weight depends on the number of points, groups or group size
        # (the official ShapeNet-55 checkpoint is fine-tuned with 1k, 2k and
        # 8k points), and drop-path acts only in training.
        free = ("num_points", "num_groups", "group_size", "drop_path_rate")
        diff = {k: (theirs[k], mine[k]) for k in BACKBONE_ARGS
                if k not in free and _as_tuple(theirs[k])
                != _as_tuple(mine[k])}
        if diff:
            raise ValueError(
                f"{self.model_label}: cannot load the encoder of "
                f"{type(pretrainer).__name__}: configurations differ "
                f"(pretrainer, classifier): {diff}."
            )
        for model in (self, pretrainer):
            if not model.built:
                model.build()
        self.backbone.set_weights(pretrainer.backbone.get_weights())
        return self

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": keras.dtype_policies.serialize(self.dtype_policy)}
        for name in BACKBONE_ARGS:
            config[name] = getattr(self, name)
        config.update(
            patch_dims=list(self.patch_dims),
            num_classes=self.num_classes,
            head_dims=list(self.head_dims),
            head_dropout=self.head_dropout,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(
                config["dtype"])
        return cls(**config)


def _as_tuple(value):
    """A value as a tuple, so lists and tuples compare equal."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)
