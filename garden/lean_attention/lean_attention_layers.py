"""`CachedDecoderBlock`: the shared pre-LN `TransformerBlock` with a KV cache.

Lean Attention (Sanovar et al. 2024, arXiv 2405.10480) is a decode-phase
attention schedule: at each generated token one query attends to the whole
key/value cache, split into pieces whose partial softmaxes are merged with
the associative re-scaling operator (paper Sec. III; garden spec
`lean_attention.md` Sec. 4.1). The decoder block itself is a standard causal
pre-LN block, so this layer only adds the cache to `TransformerBlock`:
same sublayers (`norm1`, `attn`, `norm2`, `mlp`), same weights, same
parameter count.
"""

from official.layers import TransformerBlock
from official.registry import register_layer


@register_layer()
class CachedDecoderBlock(TransformerBlock):
    """A causal `TransformerBlock` whose attention can read/extend a cache.

    Args: those of `official.layers.TransformerBlock` (the attention kernel
    and its options, e.g. `attention_kernel="split_k"`,
    `kernel_options={"num_splits": 4}`).

    Call args:
        x: (B, T, D) tokens.
        cache: None, or `(k, v)` with the projected keys/values of the
            S_past earlier positions, each (B, S_past, H, D_head). The new
            keys/values are appended (`MultiHeadAttention(cache=...)`), and
            the causal mask aligns the T queries with the last T keys
            (query i sees keys j <= i + S_past).
        training: bool.

    Returns:
        (B, T, D) without a cache; `((B, T, D), (k, v))` with one, where
        k, v are (B, S_past + T, H, D_head).
    """

    def call(self, x, cache=None, training=False):
        h = self.norm1(x)
        if cache is None:
            a = self.attn(h, causal=True)
        else:
            a, cache = self.attn(h, causal=True, cache=cache)
        x = x + self.drop(a, training=training)
        x = x + self.drop(self.mlp(self.norm2(x), training=training),
                          training=training)
        if cache is None:
            return x
        return x, cache
