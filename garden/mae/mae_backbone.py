"""`MAEViTEncoder`: the ViT encoder shared by the MAE pre-trainer and the
fine-tuning classifier, so weights transfer attribute by attribute.

Official code: facebookresearch/mae `models_mae.py` (`forward_encoder`) and
`models_vit.py` (`forward_features`).
"""

import keras
from keras import ops

from garden.mae.mae_layers import SinCos2DInitializer
from garden.mae.mae_layers import make_blocks
from official.layers.patch_embedding import PatchEmbedding
from official.ops.masking import gather_tokens
from official.registry import register_layer


@register_layer()
class MAEViTEncoder(keras.layers.Layer):
    """ViT encoder: patch embed, cls token, 2-D sin-cos positions, blocks.

    Paper: He et al. 2021, "Masked Autoencoders Are Scalable Vision
    Learners", https://arxiv.org/abs/2111.06377, §3 "MAE encoder": a ViT
    applied only to the visible, unmasked patches.

    The position table is the fixed 2-D sin-cos table of
    `util/pos_embed.py` with a zero row for the cls token. In pre-training it
    is frozen (`requires_grad=False`, `trainable_pos_embed=False`); the
    fine-tuning model (timm `VisionTransformer`) loads it into a trainable
    parameter (`trainable_pos_embed=True`).

    Args:
        image_size: int. Square input side.
        patch_size: int.
        num_channels: int.
        hidden_dim: int. Width D.
        num_layers: int. Depth.
        num_heads: int.
        mlp_ratio: float.
        layer_norm_epsilon: float. 1e-6 in MAE.
        drop_path: float. Maximum stochastic-depth rate (linear over depth).
        final_norm: bool. Apply the final LayerNorm `norm` (pre-training;
            fine-tuning with `global_pool` removes it).
        trainable_pos_embed: bool.
        activation: str. MLP activation; "gelu" is the exact GELU.

    Call args:
        images: (B, H, W, C) float.
        ids_keep: optional (B, K) int. Indices of the visible patches; the
            blocks then see only 1 + K tokens.
        training: bool.

    Returns:
        (B, 1 + K, D) tokens (K = num_patches without `ids_keep`), cls first.

    Example:

    >>> import numpy as np
    >>> from garden.mae import MAEViTEncoder
    >>> enc = MAEViTEncoder(image_size=16, patch_size=4, hidden_dim=32,
    ...                     num_layers=1, num_heads=2)
    >>> tuple(enc(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 17, 32)
    """

    def __init__(self, image_size=224, patch_size=16, num_channels=3,
                 hidden_dim=768, num_layers=12, num_heads=12, mlp_ratio=4.0,
                 layer_norm_epsilon=1e-6, drop_path=0.0, final_norm=True,
                 trainable_pos_embed=False, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(
                f"MAEViTEncoder: image_size {image_size} is not divisible by "
                f"patch_size {patch_size}."
            )
        if hidden_dim % 4:
            raise ValueError(
                "MAEViTEncoder: hidden_dim must be divisible by 4 (2-D sin-cos "
                f"position table); got {hidden_dim}."
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_epsilon = layer_norm_epsilon
        self.drop_path = drop_path
        self.final_norm = final_norm
        self.trainable_pos_embed = trainable_pos_embed
        self.activation = activation
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2

        p = self.dtype_policy
        self.patch_embed = PatchEmbedding(
            patch_size, hidden_dim, dtype=p, name="patch_embed")
        self.blocks = make_blocks(
            num_layers, num_heads, mlp_ratio, layer_norm_epsilon, activation,
            drop_path, p, "blocks")
        self.norm = None
        if final_norm:
            self.norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=p, name="norm")

    def build(self, images_shape=None, ids_keep_shape=None):
        self.patch_embed.build(
            (None, self.image_size, self.image_size, self.num_channels))
        # timm's trunc_normal_(std=.02) is effectively normal(std=.02)
        # (models_mae.py initialize_weights).
        self.cls_token = self.add_weight(
            shape=(1, 1, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="cls_token",
        )
        self.pos_embed = self.add_weight(
            shape=(1, self.num_patches + 1, self.hidden_dim),
            initializer=SinCos2DInitializer(self.grid_size, cls_token=True),
            trainable=self.trainable_pos_embed,
            name="pos_embed",
        )
        token_shape = (None, None, self.hidden_dim)
        for block in self.blocks:
            block.build(token_shape)
        if self.norm is not None:
            self.norm.build(token_shape)

    def embed(self, images):
        """(B, L, D) patch tokens plus their positions (no cls token)."""
        x = self.patch_embed(images)
        return x + ops.cast(self.pos_embed[:, 1:, :], x.dtype)

    def call(self, images, ids_keep=None, training=False):
        x = self.embed(images)
        if ids_keep is not None:
            x = gather_tokens(x, ids_keep)  # visible patches only
        cls = ops.cast(self.cls_token + self.pos_embed[:, :1, :], x.dtype)
        cls = ops.tile(cls, [ops.shape(x)[0], 1, 1])
        x = ops.concatenate([cls, x], axis=1)
        for block in self.blocks:
            x = block(x, training=training)
        if self.norm is not None:
            x = self.norm(x)
        return x

    def compute_output_shape(self, images_shape, ids_keep_shape=None):
        n = self.num_patches if ids_keep_shape is None else ids_keep_shape[1]
        n = None if n is None else n + 1
        return (images_shape[0], n, self.hidden_dim)

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
            "drop_path": self.drop_path,
            "final_norm": self.final_norm,
            "trainable_pos_embed": self.trainable_pos_embed,
            "activation": self.activation,
        }
