"""Non-overlapping patches: patchify / unpatchify and a linear patch embed.

`patchify` orders each patch vector as (row-in-patch, column-in-patch,
channel), the layout of MAE's `patchify` (`einsum('nchpwq->nhwpqc')`), so a
(B, H, W, C) image becomes (B, (H/p)·(W/p), p·p·C) tokens in raster order.

Reshape + rank-5 transpose only (no `extract_patches`), so it converts to
LiteRT builtins and ONNX.
"""

import keras
from keras import ops

from official.registry import register_layer


def patchify(images, patch_size):
    """(B, H, W, C) -> (B, (H/p)(W/p), p*p*C); H and W static multiples of p."""
    _, height, width, channels = images.shape
    p = patch_size
    if height % p or width % p:
        raise ValueError(
            f"patchify: image size ({height}, {width}) is not divisible by "
            f"the patch size {p}."
        )
    gh, gw = height // p, width // p
    x = ops.reshape(images, (-1, gh, p, gw, p * channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4))  # (B, gh, gw, p, p*C)
    return ops.reshape(x, (-1, gh * gw, p * p * channels))


def unpatchify(patches, patch_size, grid_size, channels):
    """Inverse of `patchify`: (B, gh*gw, p*p*C) -> (B, gh*p, gw*p, C).

    `grid_size` is an int (square) or a (gh, gw) pair.
    """
    gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    p = patch_size
    x = ops.reshape(patches, (-1, gh, gw, p, p * channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4))  # (B, gh, p, gw, p*C)
    return ops.reshape(x, (-1, gh * p, gw * p, channels))


@register_layer()
class PatchEmbedding(keras.layers.Layer):
    """Linear embedding of non-overlapping p×p patches (ViT's patch embed).

    Equivalent to PyTorch's `Conv2d(C, D, kernel_size=p, stride=p)` (same
    parameter count p·p·C·D + D), written as a Dense on patchified pixels so
    the default Glorot-uniform initializer sees fan_in = p·p·C and
    fan_out = D, exactly MAE's "initialize patch_embed like nn.Linear"
    (`xavier_uniform_(w.view([w.shape[0], -1]))`).

    Args:
        patch_size: int. Patch side p.
        hidden_dim: int. Embedding width D.
        use_bias: bool.
        kernel_initializer: initializer of the (p·p·C, D) kernel.

    Call args:
        images: (B, H, W, C), H and W multiples of p.

    Returns:
        (B, (H/p)·(W/p), D) tokens in raster order.
    """

    def __init__(self, patch_size, hidden_dim, use_bias=True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.proj = keras.layers.Dense(
            hidden_dim, use_bias=use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy, name="proj",
        )

    def build(self, images_shape):
        channels = images_shape[-1]
        self.proj.build((None, None, self.patch_size**2 * channels))

    def call(self, images):
        return self.proj(patchify(images, self.patch_size))

    def compute_output_shape(self, images_shape):
        b, h, w, _ = images_shape
        p = self.patch_size
        n = None if h is None or w is None else (h // p) * (w // p)
        return (b, n, self.hidden_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "patch_size": self.patch_size,
            "hidden_dim": self.hidden_dim,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer
            ),
        }
