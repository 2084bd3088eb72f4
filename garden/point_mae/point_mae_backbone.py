"""`PointMAEBackbone`: the Point-MAE encoder shared by the pre-trainer and
the classifier, so pretrained weights transfer by layer path.

Official code: github.com/Pang-Yatian/Point-MAE `models/Point_MAE.py`,
`MaskTransformer` (pre-training) and `PointTransformer` (fine-tuning); the
fine-tuning loader renames `MAE_encoder.*` into the classifier, i.e. the
mini-PointNet `encoder`, `pos_embed`, `blocks` and `norm` are shared.
"""

import keras

from garden.point_mae.point_mae_layers import MiniPointNet
from garden.point_mae.point_mae_layers import PointGrouper
from garden.point_mae.point_mae_layers import PositionalTransformer
from garden.point_mae.point_mae_layers import trunc_normal_init
from official.layers import MLP
from official.registry import register_layer

BACKBONE_ARGS = (
    "num_points", "num_groups", "group_size", "embed_dim", "depth",
    "num_heads", "mlp_ratio", "patch_dims", "pos_hidden_dim",
    "drop_path_rate", "layer_norm_epsilon", "activation",
)


@register_layer()
class PointMAEBackbone(keras.layers.Layer):
    """Point-MAE encoder: grouping, mini-PointNet tokens, positional blocks.

    Paper: Pang et al., ECCV 2022, https://arxiv.org/abs/2203.06604, Sec. 3.1
    (point patches: FPS centres + kNN, centre-normalised), Sec. 3.2
    (embedding: mini-PointNet tokens; positions = MLP(centre xyz) added before
    every block; Transformer encoder of standard pre-LN blocks).

    Called on a cloud it returns the features of all G patches, unmasked
    (the probing / fine-tuning view). The pre-trainer uses the pieces
    (`group`, `embed`, `encode`) to feed only the visible patches.

    Args:
        num_points: int. N, the points per cloud (checked by the models).
        num_groups: int. G, the patches (FPS centres).
        group_size: int. K, the points per patch.
        embed_dim: int. D; also the mini-PointNet output width
            (`encoder_dims` = `trans_dim` in every official config: the
            official code has no projection between them).
        depth: int. Encoder blocks.
        num_heads: int.
        mlp_ratio: float.
        patch_dims: (h1, h2, h3) mini-PointNet widths; official (128, 256,
            512).
        pos_hidden_dim: int. Hidden width of the position MLP (official 128).
        drop_path_rate: float. Max stochastic depth (linear over depth).
        layer_norm_epsilon: float. 1e-5 (PyTorch default).
        activation: str. "gelu" = exact GELU.

    Call args:
        points: (B, N, 3) float.
        training: bool.

    Returns:
        (B, G, D) normalised token features.

    Example:

    >>> import numpy as np
    >>> from garden.point_mae import PointMAEBackbone
    >>> net = PointMAEBackbone(num_points=64, num_groups=8, group_size=8,
    ...                        embed_dim=32, depth=1, num_heads=2,
    ...                        patch_dims=(16, 32, 32), pos_hidden_dim=16)
    >>> pts = np.random.RandomState(0).randn(2, 64, 3).astype("float32")
    >>> tuple(net(pts).shape)
    (2, 8, 32)
    """

    def __init__(self, num_points=1024, num_groups=64, group_size=32,
                 embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0,
                 patch_dims=(128, 256, 512), pos_hidden_dim=128,
                 drop_path_rate=0.1, layer_norm_epsilon=1e-5,
                 activation="gelu", **kwargs):
        super().__init__(**kwargs)
        if group_size > num_points or num_groups > num_points:
            raise ValueError(
                f"PointMAEBackbone: num_groups ({num_groups}) and group_size "
                f"({group_size}) must not exceed num_points ({num_points})."
            )
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

        p = self.dtype_policy
        # Grouping stays float32 under mixed precision: FPS / kNN decide
        # discrete indices, which fp16 rounding would change.
        self.grouper = PointGrouper(num_groups, group_size, dtype="float32",
                                    name="grouper")
        self.patch_embed = MiniPointNet(self.patch_dims, embed_dim, dtype=p,
                                        name="patch_embed")
        self.pos_embed = MLP(pos_hidden_dim, output_dim=embed_dim,
                             activation=activation, dtype=p,
                             name="pos_embed")
        self.blocks = PositionalTransformer(
            depth, num_heads, mlp_ratio, drop_path_rate, layer_norm_epsilon,
            activation, dtype=p, name="blocks")
        self.norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="norm")

    def build(self, points_shape=None):
        g, k, d = self.num_groups, self.group_size, self.embed_dim
        self.patch_embed.build((None, g, k, 3))
        self.pos_embed.build((None, None, 3))
        self.blocks.build((None, None, d))
        self.norm.build((None, None, d))
        # MaskTransformer.apply(_init_weights): trunc-normal(.02) kernels for
        # every Linear / Conv1d of the encoder.
        for layer in (self.patch_embed, self.pos_embed, self.blocks):
            trunc_normal_init(layer)

    def group(self, points):
        """(B, N, 3) -> neighborhood (B, G, K, 3), centers (B, G, 3)."""
        return self.grouper(points)

    def embed(self, neighborhood, training=False):
        """Patch tokens (B, G, D) from centre-normalised patches."""
        return self.patch_embed(neighborhood, training=training)

    def encode(self, tokens, pos, training=False):
        """Positional blocks then the final LayerNorm, on any token set."""
        return self.norm(self.blocks(tokens, pos, training=training))

    def call(self, points, training=False):
        neighborhood, centers = self.group(points)
        tokens = self.embed(neighborhood, training=training)
        return self.encode(tokens, self.pos_embed(centers), training=training)

    def compute_output_shape(self, points_shape):
        return (points_shape[0], self.num_groups, self.embed_dim)

    def get_config(self):
        config = super().get_config()
        for name in BACKBONE_ARGS:
            config[name] = getattr(self, name)
        config["patch_dims"] = list(self.patch_dims)
        return config
