"""The kernel registry and the `attention()` entry point (shape checks)."""

import inspect

from keras import ops

_KERNELS = {}
_KERNEL_PARAMS = {}
_SHARED_QK = set()


def register_kernel(name, params=None, shared_qk=False):
    """Registers `fn(query, key, value, causal, mask, **options)`.

    Kernels with weights of their own (Linformer's projections, SLAB's
    depthwise convolution, Performer's random features, Ecoformer's hash
    functions) also give `params`, a function

        params(layer, query_shape, key_shape, num_heads, num_kv_heads,
               key_dim, options) -> dict[str, keras.Variable]

    that `MultiHeadAttention.build` calls to create them with
    `layer.add_weight` (so they are tracked, trained and saved with the
    layer); the dict is passed to the kernel as extra keyword options on
    every call. `options` are the layer's `kernel_options`. Functional use
    of `attention()` passes the same tensors as options explicitly.

    `shared_qk=True` declares that the kernel derives its keys from the
    queries and ignores the contents of `key` (Reformer's shared-QK, Kitaev
    et al. 2020 Sec. 3): `MultiHeadAttention` then builds no key projection
    (`kernel_shares_qk`).
    """

    def decorator(fn):
        if name in _KERNELS:
            raise ValueError(f"Attention kernel '{name}' already registered.")
        _KERNELS[name] = fn
        if params is not None:
            _KERNEL_PARAMS[name] = params
        if shared_qk:
            _SHARED_QK.add(name)
        return fn

    return decorator


def get_kernel_params(name):
    """The kernel's weight-building function, or None (see register_kernel)."""
    get_kernel(name)
    return _KERNEL_PARAMS.get(name)


def kernel_shares_qk(name):
    """Whether the kernel computes keys from the queries (see
    register_kernel(shared_qk=...)), so a layer needs no key projection."""
    get_kernel(name)
    return name in _SHARED_QK


def list_kernels():
    _load_builtin_kernels()
    return sorted(_KERNELS)


def get_kernel(name):
    _load_builtin_kernels()
    if name not in _KERNELS:
        raise ValueError(
            f"Unknown attention kernel '{name}'. Expected one of "
            f"{sorted(_KERNELS)}."
        )
    return _KERNELS[name]


def _load_builtin_kernels():
    # Importing the package registers every kernel module it lists.
    import official.attention.kernels  # noqa: F401


def _check_shapes(query, key, value, mask):
    if len(query.shape) != 4 or len(key.shape) != 4 or len(value.shape) != 4:
        raise ValueError(
            "attention: expected query (B, T, H, D) and key/value "
            f"(B, S, H_kv, D); received query {tuple(query.shape)}, key "
            f"{tuple(key.shape)}, value {tuple(value.shape)}."
        )
    if tuple(key.shape) != tuple(value.shape):
        raise ValueError(
            "attention: key and value must have the same shape (B, S, H_kv, "
            f"D); received key {tuple(key.shape)}, value {tuple(value.shape)}."
        )
    h, d = query.shape[2], query.shape[3]
    h_kv, d_kv = key.shape[2], key.shape[3]
    if d is not None and d_kv is not None and d != d_kv:
        raise ValueError(
            f"attention: query head size {d} != key head size {d_kv}."
        )
    if h is not None and h_kv is not None and h % h_kv != 0:
        raise ValueError(
            f"attention: query heads ({h}) must be a multiple of key/value "
            f"heads ({h_kv})."
        )
    if mask is not None and len(mask.shape) not in (2, 3):
        raise ValueError(
            "attention: mask must be broadcastable to (B, T, S) (rank 2 or 3);"
            f" received shape {tuple(mask.shape)}."
        )


def attention(query, key, value, kernel="dense", causal=False, mask=None,
              **options):
    """Computes softmax(QK^T/sqrt(D)) V (or the kernel's version of it).

    Returns a tensor of shape (B, T, H, D).
    """
    fn = get_kernel(kernel)
    _check_shapes(query, key, value, mask)
    accepted = inspect.signature(fn).parameters
    has_var_kw = any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in accepted.values()
    )
    if not has_var_kw:
        unknown = set(options) - set(accepted)
        if unknown:
            allowed = sorted(
                set(accepted) - {"query", "key", "value", "causal", "mask"}
            )
            raise ValueError(
                f"attention kernel '{kernel}': unknown options "
                f"{sorted(unknown)}; accepted options: {allowed}."
            )
    if mask is not None:
        mask = ops.cast(mask, "bool")
    return fn(query, key, value, causal=causal, mask=mask, **options)
