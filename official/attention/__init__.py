"""One attention interface over pluggable kernels.

    official.attention.attention(query, key, value, kernel="dense",
                                 causal=False, mask=None, **options)

query (B, T, H, D); key/value (B, S, H_kv, D) with H % H_kv == 0 (grouped-query
heads); mask boolean, broadcastable to (B, T, S), True = may attend.
`causal=True` with T < S aligns the queries with the last T keys (decoding).
"""

from official.attention.interface import attention  # noqa: F401
from official.attention.interface import list_kernels  # noqa: F401
from official.attention.interface import register_kernel  # noqa: F401
from official.attention.layer import MultiHeadAttention  # noqa: F401
