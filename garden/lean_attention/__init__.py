"""Lean Attention: "Hardware-Aware Scalable Attention Mechanism for the
Decode-Phase of Transformers" (Sanovar et al. 2024).

https://arxiv.org/abs/2405.10480. The kernel is `official.attention`'s
`split_k`; importing this package registers the `lean_attention` model (a
causal decoder with a KV cache whose `generate` decodes through `split_k`)
and provides the stream-K schedule simulator. See
garden/lean_attention/README.md.
"""

from garden.lean_attention.lean_attention_decoder import LeanAttentionDecoder  # noqa: F401
from garden.lean_attention.lean_attention_decoder import next_token_loss  # noqa: F401
from garden.lean_attention.lean_attention_layers import CachedDecoderBlock  # noqa: F401
from garden.lean_attention.lean_attention_presets import lean_attention_presets  # noqa: F401
from garden.lean_attention.lean_attention_schedule import lean_schedule  # noqa: F401
from garden.lean_attention.lean_attention_schedule import simulate_lean_decode  # noqa: F401
