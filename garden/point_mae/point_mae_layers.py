"""Layers only Point-MAE uses: grouping, mini-PointNet, the transformer that
re-adds positions before every block, and the decoder.

Paper: Pang et al., "Masked Autoencoders for Point Cloud Self-supervised
Learning", ECCV 2022, https://arxiv.org/abs/2203.06604. Official code:
github.com/Pang-Yatian/Point-MAE, `models/Point_MAE.py` (commit 7445a68);
class names of that file are given in each docstring.
"""

import keras
from keras import ops

from official.layers import TransformerBlock
from official.ops import point_cloud
from official.registry import register_layer

# PyTorch BatchNorm1d defaults (eps 1e-5, momentum 0.1 = Keras momentum 0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def trunc_normal_init(layer, stddev=0.02):
    """Re-draws every Dense / EinsumDense kernel under `layer` ~ N(0, .02).

    `MaskTransformer._init_weights` applies timm's `trunc_normal_(std=.02)`
    (truncated at +-2 absolute, i.e. effectively untruncated) to every Linear
    and Conv1d of the encoder; biases stay 0 and norms stay (1, 0), which are
    also Keras' defaults. `TransformerBlock` takes no kernel initializer, so
    the kernels are re-drawn after `build`.
    """
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(sub, (keras.layers.Dense, keras.layers.EinsumDense)):
            # A fresh initializer per kernel: an unseeded Keras initializer
            # instance returns the same values on every call.
            init = keras.initializers.RandomNormal(stddev=stddev)
            kernel = sub.kernel
            kernel.assign(ops.cast(init(kernel.shape), kernel.dtype))


@register_layer()
class PointGrouper(keras.layers.Layer):
    """FPS centres + kNN patches in centre coordinates (`Group`, Sec. 3.1).

    No weights. See `official.ops.point_cloud.group_points`.

    Args:
        num_groups: int. G.
        group_size: int. K.

    Call args:
        points: (B, N, 3) float.

    Returns:
        neighborhood (B, G, K, 3) relative to the centres, centers (B, G, 3).
    """

    def __init__(self, num_groups, group_size, **kwargs):
        super().__init__(**kwargs)
        self.num_groups = num_groups
        self.group_size = group_size

    def call(self, points):
        return point_cloud.group_points(
            points, self.num_groups, self.group_size)

    def compute_output_shape(self, points_shape):
        b = points_shape[0]
        return ((b, self.num_groups, self.group_size, 3),
                (b, self.num_groups, 3))

    def get_config(self):
        return {**super().get_config(), "num_groups": self.num_groups,
                "group_size": self.group_size}


@register_layer()
class MiniPointNet(keras.layers.Layer):
    """Patch embedding, shared over all patches (`Encoder`, Sec. 3.2).

    Conv1d(k=1) == Dense on the last axis:
    Dense(h1) -> BN -> ReLU -> Dense(h2) -> max over K -> concat(global,
    per-point) (2*h2) -> Dense(h3) -> BN -> ReLU -> Dense(out) -> max over K.
    BatchNorm over (B, G, K, C) with axis -1 normalises over B*G*K, exactly
    BatchNorm1d on the (B*G, C, K) tensor of the official code.

    Args:
        hidden_dims: (h1, h2, h3). Official (128, 256, 512).
        output_dim: int. Token width (= transformer width D).

    Call args:
        patches: (B, G, K, 3) float.
        training: bool (BatchNorm mode).

    Returns:
        (B, G, output_dim).
    """

    def __init__(self, hidden_dims=(128, 256, 512), output_dim=384,
                 **kwargs):
        super().__init__(**kwargs)
        self.hidden_dims = tuple(hidden_dims)
        self.output_dim = output_dim
        h1, h2, h3 = self.hidden_dims
        p = self.dtype_policy

        def bn(name):
            return keras.layers.BatchNormalization(
                epsilon=BN_EPSILON, momentum=BN_MOMENTUM, dtype=p, name=name)

        self.conv1 = keras.layers.Dense(h1, dtype=p, name="conv1")
        self.bn1 = bn("bn1")
        self.conv2 = keras.layers.Dense(h2, dtype=p, name="conv2")
        self.conv3 = keras.layers.Dense(h3, dtype=p, name="conv3")
        self.bn2 = bn("bn2")
        self.conv4 = keras.layers.Dense(output_dim, dtype=p, name="conv4")

    def build(self, patches_shape):
        h1, h2, h3 = self.hidden_dims
        lead = tuple(patches_shape[:-1])
        self.conv1.build(lead + (3,))
        self.bn1.build(lead + (h1,))
        self.conv2.build(lead + (h1,))
        self.conv3.build(lead + (2 * h2,))
        self.bn2.build(lead + (h3,))
        self.conv4.build(lead + (h3,))

    def call(self, patches, training=False):
        x = ops.relu(self.bn1(self.conv1(patches), training=training))
        x = self.conv2(x)  # (B, G, K, h2)
        pooled = ops.max(x, axis=2, keepdims=True)
        x = ops.concatenate(
            [ops.broadcast_to(pooled, ops.shape(x)), x], axis=-1)
        x = ops.relu(self.bn2(self.conv3(x), training=training))
        return ops.max(self.conv4(x), axis=2)

    def compute_output_shape(self, patches_shape):
        return tuple(patches_shape[:2]) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "hidden_dims": list(self.hidden_dims),
                "output_dim": self.output_dim}


@register_layer()
class PositionalTransformer(keras.layers.Layer):
    """Pre-LN blocks with the position embedding re-added before each one.

    `TransformerEncoder.forward` / `TransformerDecoder.forward`:
    `for block in blocks: x = block(x + pos)` (Sec. 3.2: "the positional
    embeddings are added to every Transformer block"). qkv_bias=False,
    LayerNorm eps 1e-5, drop-path linear from 0 to `drop_path_rate` over the
    depth (`torch.linspace(0, rate, depth)`). No final norm here.

    Args:
        depth: int.
        num_heads: int.
        mlp_ratio: float.
        drop_path_rate: float.
        layer_norm_epsilon: float.
        activation: str. "gelu" = exact GELU (nn.GELU).

    Call args:
        x: (B, T, D) tokens. pos: (B, T, D) position embeddings.
        training: bool.
    """

    def __init__(self, depth, num_heads, mlp_ratio=4.0, drop_path_rate=0.0,
                 layer_norm_epsilon=1e-5, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0
                 for i in range(depth)]
        self.blocks = [
            TransformerBlock(
                num_heads, mlp_ratio=mlp_ratio, qkv_bias=False,
                drop_path=rate, layer_norm_epsilon=layer_norm_epsilon,
                activation=activation, dtype=self.dtype_policy,
                name=f"block_{i}")
            for i, rate in enumerate(rates)
        ]

    def build(self, x_shape, pos_shape=None):
        for block in self.blocks:
            block.build(x_shape)

    def call(self, x, pos, training=False):
        for block in self.blocks:
            x = block(x + pos, training=training)
        return x

    def compute_output_shape(self, x_shape, pos_shape=None):
        return x_shape

    def get_config(self):
        return {
            **super().get_config(),
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "drop_path_rate": self.drop_path_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation": self.activation,
        }


@register_layer()
class PointMAEDecoder(keras.layers.Layer):
    """`TransformerDecoder`: positional blocks, LayerNorm on the last M tokens.

    Linear layers are xavier-uniform initialised (Keras' glorot_uniform
    default), as `TransformerDecoder._init_weights`.

    Args:
        num_masked: int. M, the tokens returned (the mask tokens, last).
        depth, num_heads, mlp_ratio, drop_path_rate, layer_norm_epsilon,
        activation: as `PositionalTransformer`.

    Call args:
        x: (B, G, D) visible tokens then mask tokens. pos: (B, G, D).

    Returns:
        (B, M, D).
    """

    def __init__(self, num_masked, depth, num_heads, mlp_ratio=4.0,
                 drop_path_rate=0.0, layer_norm_epsilon=1e-5,
                 activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.num_masked = num_masked
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        p = self.dtype_policy
        self.blocks = PositionalTransformer(
            depth, num_heads, mlp_ratio, drop_path_rate, layer_norm_epsilon,
            activation, dtype=p, name="blocks")
        self.norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=p, name="norm")

    def build(self, x_shape, pos_shape=None):
        self.blocks.build(x_shape)
        self.norm.build(x_shape)

    def call(self, x, pos, training=False):
        x = self.blocks(x, pos, training=training)
        return self.norm(x[:, -self.num_masked:])

    def compute_output_shape(self, x_shape, pos_shape=None):
        return (x_shape[0], self.num_masked, x_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "num_masked": self.num_masked,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "drop_path_rate": self.drop_path_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation": self.activation,
        }
