"""FIT building blocks: the layer-string grammar, masks, grouping, and the
read/write cross-attention.

Paper: Chen & Li 2023, "FIT: Far-reaching Interleaved Transformers",
https://arxiv.org/abs/2305.12689 (Sec. 2). Official code: google-research/
pix2seq `architectures/transformers.py` (`get_layer_config`,
`get_chunk_ar_mask`, `TransformerDecoderLayer` as used by `FIT`) and
`utils.py` (`images2subimages2tokens`).
"""

import re

import keras
from keras import ops

from official.attention import MultiHeadAttention
from official.layers.patch_embedding import patchify
from official.registry import register_layer

_LAYERS_RE = re.compile(r"^(\([0-9]+\)[0-9]+)+$")


def parse_layers(layers):
    """The layer string -> [(local_layers, global_layers), ...].

    Grammar (official `get_layer_config`): one or more blocks
    "(L)G" = L local layers on each group's data tokens, then G global
    layers on all latents; a string ending in ")" gets G = 0 for its last
    block ("(2)4(2)" = [(2, 4), (2, 0)]). Every block but the last must have
    G > 0 (otherwise consecutive local stacks would simply merge).
    """
    if not isinstance(layers, str):
        raise ValueError(f"FIT layers must be a string; got {layers!r}.")
    spec = layers + "0" if layers.endswith(")") else layers
    if not _LAYERS_RE.match(spec):
        raise ValueError(
            f"Unrecognized FIT layer specification {layers!r}; expected "
            "blocks '(local)global', e.g. '(2)4(2)'.")
    blocks = [tuple(int(v) for v in re.findall(r"[0-9]+", b))
              for b in re.findall(r"\([0-9]+\)[0-9]+", spec)]
    for i, (_, num_global) in enumerate(blocks[:-1]):
        if num_global == 0:
            raise ValueError(
                f"FIT layers {layers!r}: block {i} has no global layers; "
                "only the last block may omit them.")
    return blocks


def chunk_causal_mask(num_chunks, chunk_size):
    """(L, L) boolean, True = may attend, L = num_chunks * chunk_size.

    Full attention inside a chunk, causal across chunks: position i sees j
    iff chunk(j) <= chunk(i) (the complement of the official
    `get_chunk_ar_mask`, which marks the masked-out entries).
    """
    chunk = ops.arange(num_chunks * chunk_size) // chunk_size
    return chunk[None, :] <= chunk[:, None]


def group_images(images, group_size, patch_size):
    """(B, H, W, C) -> (B, t, n, p*p*C) patch tokens grouped by sub-image.

    Groups are the (H/g)*(W/g) square sub-images of side `group_size` in
    row-major order; inside a group, patches in raster order, each patch
    vector in (row, column, channel) order (official
    `images2subimages2tokens`: `split_image_into_sub_images` +
    `tf.image.extract_patches`). Reshapes/transposes of rank <= 5 only.
    """
    _, height, width, channels = images.shape
    g = group_size
    if height % g or width % g or g % patch_size:
        raise ValueError(
            f"group_images: image ({height}, {width}) must be divisible by "
            f"group_size {g}, itself divisible by patch_size {patch_size}.")
    gh, gw = height // g, width // g
    x = ops.reshape(images, (-1, g, gw, g * channels))  # (B*gh, g, gw, gC)
    x = ops.transpose(x, (0, 2, 1, 3))  # (B*gh, gw, g, g*C)
    x = ops.reshape(x, (-1, g, g, channels))  # (B*gh*gw, g, g, C)
    x = patchify(x, patch_size)  # (B*t, n, p*p*C)
    n = (g // patch_size) ** 2
    return ops.reshape(x, (-1, gh * gw, n, patch_size * patch_size * channels))


@register_layer()
class FITCrossAttention(keras.layers.Layer):
    """Residual cross-attention between latents and data tokens of a group.

    `query + MHA(LN_q(query), LN_kv(context))`, no MLP: the official
    `TransformerDecoderLayer(self_attention=False, cross_attention=True,
    use_mlp=False, use_enc_ln=True)`. FIT uses it twice per block (paper
    Sec. 2): "read" (`l2x_cross_attn`, latents attend to their group's data
    tokens) and "write" (`x2l_cross_attn`, data tokens attend to their
    group's latents). The official heads/width are min(latent, data) heads
    and min(latent_dim, x_dim) attention width.

    Args:
        num_heads: int.
        key_dim: int. Size per head.
        layer_norm_epsilon: float.
        attention_kernel: str. `official.attention` kernel.

    Call args:
        query: (N, Tq, Dq). context: (N, Tk, Dk).

    Returns:
        (N, Tq, Dq).
    """

    def __init__(self, num_heads, key_dim, layer_norm_epsilon=1e-6,
                 attention_kernel="dense", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        self.attention_kernel = attention_kernel

    def build(self, query_shape, context_shape):
        p = self.dtype_policy
        eps = self.layer_norm_epsilon
        self.query_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype=p, name="query_norm")
        self.context_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype=p, name="context_norm")
        self.attn = MultiHeadAttention(
            self.num_heads, self.key_dim, kernel=self.attention_kernel,
            dtype=p, name="attn")
        self.query_norm.build(query_shape)
        self.context_norm.build(context_shape)
        self.attn.build(query_shape, context_shape)

    def call(self, query, context):
        kv = self.context_norm(context)
        return query + self.attn(self.query_norm(query), kv, kv)

    def compute_output_shape(self, query_shape, context_shape):
        return query_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "attention_kernel": self.attention_kernel,
        }
