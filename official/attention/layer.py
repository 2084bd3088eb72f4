"""`MultiHeadAttention`: Q/K/V/O projections around a pluggable kernel."""

import keras
from keras import ops

from official.attention.interface import attention
from official.attention.interface import get_kernel
from official.attention.interface import get_kernel_params
from official.attention.interface import kernel_shares_qk
from official.registry import register_layer


@register_layer()
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention whose maths is a named kernel.

    Projections are 2-D `EinsumDense` layers (so `model.quantize("int8")`
    covers them) with PyTorch `Linear`'s layout and fans: kernel (D_in,
    H·D_head), so Glorot/Xavier initialisation sees fan_in = D_in and
    fan_out = H·D_head, as `nn.Linear` does, and every projection gets its own
    initializer instance (a shared unseeded Keras initializer repeats its
    values). Parameter count equals a fused qkv Linear(D, 3D) + Linear(D, D):
    3·D·D (+3·D bias if `qkv_bias`) + D·D + D.

    Shared-QK kernels (`register_kernel(..., shared_qk=True)`, e.g. `lsh`:
    Reformer, Kitaev et al. 2020 Sec. 3 "Shared-QK Transformer") derive the
    keys from the queries, so the layer has no key projection:
    `key_dense` is None, the parameter count is 2·D·D (+2·D bias) + D·D + D,
    the `key` input only has to match the query length (its values are not
    used) and `cache=` is not supported.

    Args:
        num_heads: int. Query heads.
        key_dim: int. Size per head.
        num_kv_heads: int or None. Key/value heads (grouped-query); None =
            num_heads.
        qkv_bias: bool. Bias on the Q/K/V projections.
        out_bias: bool. Bias on the output projection.
        kernel: str. Attention kernel name (`official.attention.list_kernels`).
        kernel_options: dict. Extra options passed to the kernel.
        output_dim: int or None. Output width; None = the query width.

    Call args:
        query: (B, T, D_q). key/value: (B, S, D_kv); default = query.
        attention_mask: optional boolean, broadcastable to (B, T, S),
            True = may attend. (Not `mask`: that name is Keras' implicit
            masking protocol.)
        causal: bool.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        num_kv_heads=None,
        qkv_bias=True,
        out_bias=True,
        kernel="dense",
        kernel_options=None,
        output_dim=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        get_kernel(kernel)  # unknown kernel fails at construction
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.num_kv_heads = num_kv_heads or num_heads
        if num_heads % self.num_kv_heads:
            raise ValueError(
                f"MultiHeadAttention: num_heads ({num_heads}) must be a "
                f"multiple of num_kv_heads ({self.num_kv_heads})."
            )
        self.qkv_bias = qkv_bias
        self.out_bias = out_bias
        self.kernel = kernel
        self.kernel_options = dict(kernel_options or {})
        self.output_dim = output_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _fresh_initializer(self):
        return keras.initializers.get(
            keras.initializers.serialize(self.kernel_initializer))

    def _proj(self, heads, bias, name):
        # 2-D equation on (B*T, D) tokens, see `_project`.
        return keras.layers.EinsumDense(
            "nd,de->ne",
            output_shape=(heads * self.key_dim,),
            bias_axes="e" if bias else None,
            kernel_initializer=self._fresh_initializer(),
            dtype=self.dtype_policy,
            name=name,
        )

    def _project(self, dense, x, heads):
        """(B, T, D) -> (B, T, heads, key_dim) through a 2-D matmul.

        The tokens are flattened to (B*T, D) first. Keras' TF einsum runs
        "btd,de->bte" as a broadcasting BatchMatMul whose kernel gradient is
        B per-example (D, E) products plus a sum over them (about a fifth of
        an MAE training step on CPU); the 2-D product's gradient is one
        matmul. Same kernel shape (D, E), so saved weights are unchanged.
        """
        shape = ops.shape(x)
        y = dense(ops.reshape(x, (-1, shape[-1])))
        return ops.reshape(y, (shape[0], shape[1], heads, self.key_dim))

    def kernel_call_inputs(self, query):
        """Per-call tensors a subclass passes to its kernel (default none)."""
        return {}

    def _output(self, heads_out):
        """(B, T, H, key_dim) kernel output -> (B, T, D_out), 2-D matmul."""
        shape = ops.shape(heads_out)
        y = self.output_dense(
            ops.reshape(heads_out, (-1, self.num_heads * self.key_dim)))
        return ops.reshape(y, (shape[0], shape[1], ops.shape(y)[-1]))

    def build(self, query_shape, key_shape=None, value_shape=None):
        key_shape = key_shape or query_shape
        value_shape = value_shape or key_shape
        out_dim = self.output_dim or query_shape[-1]
        self.query_dense = self._proj(self.num_heads, self.qkv_bias, "query")
        # Shared-QK kernels compute keys from the queries: no key projection.
        self.key_dense = None
        if not kernel_shares_qk(self.kernel):
            self.key_dense = self._proj(self.num_kv_heads, self.qkv_bias,
                                        "key")
        self.value_dense = self._proj(self.num_kv_heads, self.qkv_bias, "value")
        self.output_dense = keras.layers.EinsumDense(
            "ne,ed->nd",
            output_shape=(out_dim,),
            bias_axes="d" if self.out_bias else None,
            kernel_initializer=self._fresh_initializer(),
            dtype=self.dtype_policy,
            name="attention_output",
        )
        self.query_dense.build((None, query_shape[-1]))
        if self.key_dense is not None:
            self.key_dense.build((None, key_shape[-1]))
        self.value_dense.build((None, value_shape[-1]))
        self.output_dense.build((None, self.num_heads * self.key_dim))
        # Weights owned by the kernel itself (see register_kernel(params=)).
        build_params = get_kernel_params(self.kernel)
        self.kernel_params = {}
        if build_params is not None:
            self.kernel_params = dict(build_params(
                self, tuple(query_shape), tuple(key_shape), self.num_heads,
                self.num_kv_heads, self.key_dim, dict(self.kernel_options),
            ))

    def project_kv(self, key, value):
        """Projected (B, S, H_kv, D_head) keys and values."""
        if self.key_dense is None:
            raise ValueError(
                f"MultiHeadAttention: kernel '{self.kernel}' shares the query "
                "and key projections; its keys are the projected queries.")
        return (self._project(self.key_dense, key, self.num_kv_heads),
                self._project(self.value_dense, value, self.num_kv_heads))

    def call(self, query, key=None, value=None, attention_mask=None,
             causal=False, cache=None):
        """If `cache=(k, v)` (projected, (B, S_past, H_kv, D)) is given, new
        keys/values are appended and `(output, (k, v))` is returned."""
        key = query if key is None else key
        value = key if value is None else value
        q = self._project(self.query_dense, query, self.num_heads)
        if self.key_dense is None:
            k, v = self._shared_qk_kv(q, query, key, value, cache)
        else:
            k, v = self.project_kv(key, value)
        if cache is not None:
            k = ops.concatenate([cache[0], k], axis=1)
            v = ops.concatenate([cache[1], v], axis=1)
        out = attention(
            q, k, v, kernel=self.kernel, causal=causal, mask=attention_mask,
            **self.kernel_options, **self.kernel_params,
            **self.kernel_call_inputs(query),
        )
        out = self._output(out)
        if cache is not None:
            return out, (k, v)
        return out

    def _shared_qk_kv(self, q, query, key, value, cache):
        """Shared-QK kernels: the keys passed on are the projected queries
        (the kernel derives its keys from them; only S = T matters)."""
        if cache is not None:
            raise ValueError(
                f"MultiHeadAttention: kernel '{self.kernel}' shares Q and K "
                "and attends over the whole sequence at once; `cache=` "
                "(incremental decoding) is not supported.")
        t, s = query.shape[1], key.shape[1]
        if t is not None and s is not None and t != s:
            raise ValueError(
                f"MultiHeadAttention: kernel '{self.kernel}' shares Q and K "
                f"(self-attention); the key length {s} must equal the query "
                f"length {t}.")
        v = self._project(self.value_dense, value, self.num_kv_heads)
        return q[:, :, :self.num_kv_heads], v

    def compute_output_shape(self, query_shape, key_shape=None,
                             value_shape=None):
        return tuple(query_shape[:-1]) + (self.output_dim or query_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            num_kv_heads=self.num_kv_heads,
            qkv_bias=self.qkv_bias,
            out_bias=self.out_bias,
            kernel=self.kernel,
            kernel_options=self.kernel_options,
            output_dim=self.output_dim,
            kernel_initializer=keras.initializers.serialize(
                self.kernel_initializer
            ),
        )
        return config
