"""`PointMAEPretrainer`: masked point-patch reconstruction (registry name
`point_mae`).

Official code: github.com/Pang-Yatian/Point-MAE `models/Point_MAE.py`,
class `Point_MAE` (+ `MaskTransformer`, `TransformerDecoder`).
"""

import keras
import numpy as np
from keras import ops

from garden.point_mae import point_mae_presets
from garden.point_mae.point_mae_backbone import BACKBONE_ARGS
from garden.point_mae.point_mae_backbone import PointMAEBackbone
from garden.point_mae.point_mae_layers import PointMAEDecoder
from official.layers import MLP
from official.models.garden_model import GardenModel
from official.ops import masking
from official.ops import point_cloud
from official.registry import register_model

# Seed of the fixed mask noise used at inference when no `mask_noise` is
# given, so that `model(points, training=False)` is deterministic.
INFERENCE_MASK_SEED = 1234
LOSSES = ("cdl2", "cdl1")


def _torch_linear_init():
    """PyTorch's default nn.Linear / Conv1d kernel init, U(+-1/sqrt(fan_in)).

    `Point_MAE` does not re-initialise its own `decoder_pos_embed` and
    `increase_dim` (only `MAE_encoder` and `MAE_decoder` get `_init_weights`),
    so these keep kaiming_uniform(a=sqrt(5)). (Their biases, also
    U(+-1/sqrt(fan_in)) in PyTorch, start at 0 here.)
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


@register_model(
    "point_mae",
    presets=point_mae_presets.pretrainer_presets,
    example_inputs=point_mae_presets.pretrainer_example_inputs,
    tags={"domain": "vision", "task": "point-cloud-pretraining",
          "modality": "point_cloud", "family": "vision-ssl",
          "paper": "point_mae"},
    description="Point-MAE: masked point-patch autoencoder (Pang et al., "
    "ECCV 2022).",
)
class PointMAEPretrainer(GardenModel):
    """Point-MAE pre-training model: mask patches, reconstruct their points.

    Paper: Pang et al., "Masked Autoencoders for Point Cloud Self-supervised
    Learning", ECCV 2022, https://arxiv.org/abs/2203.06604.

    The cloud is split into G patches (FPS + kNN, Sec. 3.1); `int(mask_ratio
    * G)` = M patches per cloud are masked at random (Sec. 3.2); the encoder
    sees only the visible tokens with their centre positions; the decoder
    sees the encoded visible tokens followed by M copies of a learned mask
    token, all with positions from a separate MLP on the centres (re-added
    before every block); a Dense head predicts the K points of every masked
    patch in centre coordinates (Sec. 3.3), and the loss is Chamfer-L2 on
    the masked patches only (Eq. 1-2).

    Args:
        num_points, num_groups, group_size, embed_dim, depth, num_heads,
        mlp_ratio, patch_dims, pos_hidden_dim, drop_path_rate,
        layer_norm_epsilon, activation: encoder, see `PointMAEBackbone`.
        decoder_depth: int.
        decoder_num_heads: int.
        mask_ratio: float. M = int(mask_ratio * G) (0.6: 38 of 64).
        loss: "cdl2" (paper) or "cdl1".

    Inputs:
        points: (B, N, 3) float, `pc_norm`-ed clouds. A bare tensor works.
        mask_noise: optional (B, G) float; the M patches with the largest
            noise are masked. Without it: noise from the model's
            SeedGenerator when training, a fixed noise table otherwise
            (deterministic inference, see `mask_noise`).

    Returns:
        dict with
        reconstruction: (B, M, K, 3) predicted masked patches (centre coords),
        target: (B, M, K, 3) ground-truth masked patches (centre coords,
            float32),
        centers: (B, G, 3) patch centres,
        mask: (B, G) float, 1 = masked.
        Masked patches appear in increasing group index, as `center[mask]`.

    Example:

    >>> import garden
    >>> model = garden.build("point_mae", preset="tiny")
    >>> x = garden.example_inputs("point_mae", preset="tiny", batch_size=2)
    >>> out = model(x, training=False)
    >>> tuple(out["reconstruction"].shape), tuple(out["mask"].shape)
    ((2, 9, 16, 3), (2, 16))
    >>> float(model.compute_loss(x, None, out)) > 0
    True
    """

    input_names = ("points", "mask_noise")
    optional_input_names = ("mask_noise",)

    def __init__(self, num_points=1024, num_groups=64, group_size=32,
                 embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0,
                 patch_dims=(128, 256, 512), pos_hidden_dim=128,
                 drop_path_rate=0.1, layer_norm_epsilon=1e-5,
                 activation="gelu", decoder_depth=4, decoder_num_heads=6,
                 mask_ratio=0.6, loss="cdl2", seed=None, **kwargs):
        super().__init__(**kwargs)
        num_masked = int(mask_ratio * num_groups)
        if not 0 < num_masked < num_groups:
            raise ValueError(
                f"PointMAEPretrainer: mask_ratio {mask_ratio} masks "
                f"{num_masked} of {num_groups} patches; need 0 < M < G."
            )
        if loss not in LOSSES:
            raise ValueError(
                f"PointMAEPretrainer: loss must be one of {LOSSES}; got "
                f"'{loss}'."
            )
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
        self.decoder_depth = decoder_depth
        self.decoder_num_heads = decoder_num_heads
        self.mask_ratio = mask_ratio
        self.loss_name = loss
        self.seed = seed
        self.num_masked = num_masked
        self.num_visible = num_groups - num_masked

        # === Layers ===
        p = self.dtype_policy
        self.backbone = PointMAEBackbone(
            **{k: getattr(self, k) for k in BACKBONE_ARGS}, dtype=p,
            name="backbone")
        self.decoder_pos_embed = MLP(
            pos_hidden_dim, output_dim=embed_dim, activation=activation,
            kernel_initializer=_torch_linear_init(), dtype=p,
            name="decoder_pos_embed")
        self.decoder = PointMAEDecoder(
            num_masked, decoder_depth, decoder_num_heads, mlp_ratio,
            drop_path_rate, layer_norm_epsilon, activation, dtype=p,
            name="decoder")
        # increase_dim: Conv1d(D, 3K, 1) on each decoded mask token.
        self.increase_dim = keras.layers.Dense(
            3 * group_size, kernel_initializer=_torch_linear_init(),
            dtype=p, name="increase_dim")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        d = self.embed_dim
        sublayers = (
            (self.backbone, (None, self.num_points, 3)),
            (self.decoder_pos_embed, (None, None, 3)),
            (self.decoder, (None, self.num_groups, d)),
            (self.increase_dim, (None, None, d)),
        )
        for layer, shape in sublayers:
            if not layer.built:
                layer.build(shape)
        self.mask_token = self.add_weight(
            shape=(1, 1, d),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="mask_token")
        self.built = True

    # ------------------------------------------------------------- pieces
    def _check_points(self, points):
        return self.check_input("points", points, (None, self.num_points, 3))

    def mask_noise(self, points, training=False):
        """(B, G) uniform noise: random in training, fixed at inference.

        Training: drawn from the model's SeedGenerator. Inference: one fixed
        table U(0, 1)^G from NumPy seed `INFERENCE_MASK_SEED`, the same for
        every cloud, so a cloud's output does not depend on its batch, and
        the graph has no random op (LiteRT has no builtin for TF's
        stateless RNG).
        """
        batch = ops.shape(points)[0]
        if training:
            return keras.random.uniform((batch, self.num_groups),
                                        seed=self.seed_generator,
                                        dtype="float32")
        table = np.random.RandomState(INFERENCE_MASK_SEED).uniform(
            size=(1, self.num_groups)).astype("float32")
        return ops.broadcast_to(ops.convert_to_tensor(table),
                                (batch, self.num_groups))

    def random_mask(self, noise):
        """Random masking with exactly M masked patches per cloud (Sec. 3.2).

        Returns mask (B, G) float (1 = masked), ids_visible (B, G-M) and
        ids_masked (B, M), each in increasing group index (the order of
        `center[~mask]` / `center[mask]` in the official code).
        """
        noise = ops.cast(noise, "float32")
        # rank of each patch's noise; the M largest are masked. (Not
        # `official.ops.masking.random_masking_indices`: its mask gather
        # fails for batch > 1.)
        rank = ops.argsort(ops.argsort(noise, axis=1), axis=1)
        mask = ops.cast(rank >= self.num_visible, "float32")
        # Visible first, then masked; within each, by group index. Keys are
        # unique (no ties), so any argsort gives this order.
        g = self.num_groups
        key = mask * g + ops.cast(ops.arange(g), "float32")[None, :]
        order = ops.argsort(key, axis=1)
        return mask, order[:, :self.num_visible], order[:, self.num_visible:]

    def forward_encoder(self, neighborhood, centers, ids_visible,
                        training=False):
        """`MaskTransformer.forward`: encodes the visible patches only.

        Masked patches and masked centres are gathered away before any
        layer sees them. Returns (B, G-M, D).
        """
        tokens = self.backbone.embed(
            masking.gather_tokens(neighborhood, ids_visible),
            training=training)
        pos = self.backbone.pos_embed(
            masking.gather_tokens(centers, ids_visible))
        return self.backbone.encode(tokens, pos, training=training)

    def forward_decoder(self, x_visible, centers, ids_visible, ids_masked,
                        training=False):
        """`Point_MAE.forward` after the encoder: (B, M, K, 3) predictions."""
        c_vis = masking.gather_tokens(centers, ids_visible)
        c_mask = masking.gather_tokens(centers, ids_masked)
        pos = self.decoder_pos_embed(ops.concatenate([c_vis, c_mask], axis=1))
        batch = ops.shape(x_visible)[0]
        mask_tokens = ops.broadcast_to(
            ops.cast(self.mask_token, x_visible.dtype),
            (batch, self.num_masked, self.embed_dim))
        x = ops.concatenate([x_visible, mask_tokens], axis=1)
        x = self.decoder(x, pos, training=training)  # (B, M, D)
        x = self.increase_dim(x)  # (B, M, 3K)
        return ops.reshape(x, (-1, self.num_masked, self.group_size, 3))

    def encode(self, points, training=False):
        """Encoder features of every patch, no masking: (B, G, D).

        The view used for linear probing and by the fine-tuned classifier.
        """
        points = self._check_points(points)
        return self.backbone(points, training=training)

    # ------------------------------------------------------------- call
    def call(self, inputs, training=False):
        inputs = self.unpack_inputs(inputs)
        points = self._check_points(inputs["points"])
        noise = inputs.get("mask_noise")
        if noise is None:
            noise = self.mask_noise(points, training=training)
        else:
            noise = self.check_input(
                "mask_noise", noise, (None, self.num_groups))
        neighborhood, centers = self.backbone.group(points)
        mask, ids_visible, ids_masked = self.random_mask(noise)
        x_visible = self.forward_encoder(
            neighborhood, centers, ids_visible, training=training)
        reconstruction = self.forward_decoder(
            x_visible, centers, ids_visible, ids_masked, training=training)
        target = masking.gather_tokens(neighborhood, ids_masked)
        return {
            "reconstruction": reconstruction,
            # Ground truth stays float32 under mixed precision.
            "target": target,
            "centers": centers,
            "mask": mask,
        }

    # ------------------------------------------------------------- loss
    def patch_loss(self, reconstruction, target):
        """Per-cloud Chamfer distance (B,), averaged over the M patches."""
        fn = (point_cloud.chamfer_l2 if self.loss_name == "cdl2"
              else point_cloud.chamfer_l1)
        per_patch = fn(ops.cast(reconstruction, "float32"),
                       ops.cast(target, "float32"), reduction="none")
        return ops.mean(per_patch, axis=-1)

    def task_loss(self, x, y, y_pred, sample_weight=None):
        """Chamfer on masked patches only (Eq. 2; `loss_func(rebuild, gt)`).

        Equal to `ChamferDistanceL2()(rebuild_points, gt_points)` of the
        official code (every patch has K points, so the mean of per-cloud
        means is the mean over all B*M*K points).
        """
        per_cloud = self.patch_loss(y_pred["reconstruction"],
                                    y_pred["target"])
        if sample_weight is not None:
            per_cloud = per_cloud * ops.cast(
                ops.reshape(sample_weight, (-1,)), per_cloud.dtype)
        return ops.mean(per_cloud)

    # ------------------------------------------------------------- config
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": keras.dtype_policies.serialize(self.dtype_policy)}
        for name in BACKBONE_ARGS:
            config[name] = getattr(self, name)
        config.update(
            patch_dims=list(self.patch_dims),
            decoder_depth=self.decoder_depth,
            decoder_num_heads=self.decoder_num_heads,
            mask_ratio=self.mask_ratio,
            loss=self.loss_name,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(
                config["dtype"])
        return cls(**config)
