"""Finite Scalar Quantization (FSQ).

Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple"
(https://arxiv.org/abs/2309.15505), sec. 3 and the reference code of
appendix A.1, which this file follows line by line.
"""

import math

import keras
import numpy as np
from keras import ops

from official.quantization import codebook_ops
from official.registry import register_layer


@register_layer()
class FiniteScalarQuantizer(keras.layers.Layer):
    """Bounds each channel to L_i levels and rounds (implicit codebook).

    Channel i of the (..., d) input, d = len(levels), is bounded by

        f(z) = tanh(z + shift) * h - offset,  h = (L - 1)(1 - eps) / 2

    with offset = 0.5 and shift = tan(offset / h) for even L (offset = 0 for
    odd L), so that `round(f(z))` takes exactly L integer values
    ({-L/2, ..., L/2 - 1} for even L, {-(L-1)/2, ..., (L-1)/2} for odd L).
    `tan` is what the paper's appendix A.1 code uses (atanh would map z = 0
    exactly to 0; the level count is the same). Rounding is straight-through
    (`f + stop_gradient(round(f) - f)`) and the result is divided by
    L // 2, so codes lie in [-1, 1]. The implicit codebook has prod(levels)
    entries; `codes_to_indices` / `indices_to_codes` convert between codes
    and a mixed-radix integer index (basis = cumprod of levels, first
    channel least significant), as in the reference code.

    There is no codebook and no auxiliary loss: `loss` is returned as 0 so
    that FSQ is a drop-in for `VectorQuantizer`.

    Args:
        levels: list of int (each >= 2). Levels per channel, e.g. [8, 5, 5, 5]
            (~2^10 codes, table 1 of the paper).
        eps: float. Keeps the bound strictly inside the outer levels.

    Call args:
        inputs: (..., len(levels)) float tensor.

    Returns:
        dict with `quantized` (..., d) in [-1, 1], `indices` (...,) int32,
        `loss` () = 0 and `perplexity` () of the batch index histogram.

    Example:
    >>> fsq = official.quantization.FiniteScalarQuantizer([8, 5, 5, 5])
    >>> out = fsq(np.random.randn(2, 7, 4).astype("float32"))
    >>> codes = fsq.indices_to_codes(out["indices"])
    >>> bool(np.all(np.asarray(codes) == np.asarray(out["quantized"])))
    True
    """

    def __init__(self, levels, eps=1e-3, **kwargs):
        super().__init__(**kwargs)
        levels = [int(level) for level in levels]
        if not levels or min(levels) < 2:
            raise ValueError(
                "FiniteScalarQuantizer: every level must be >= 2; "
                f"got {levels}."
            )
        self.levels = levels
        self.eps = eps
        self.codebook_size = math.prod(levels)
        if self.codebook_size >= 2**31:
            raise ValueError(
                "FiniteScalarQuantizer: prod(levels) must fit in int32; "
                f"got {self.codebook_size}."
            )
        lv = np.asarray(levels, dtype=np.float64)
        half_l = (lv - 1.0) * (1.0 - eps) / 2.0
        offset = np.where(lv % 2 == 1, 0.0, 0.5)
        self._half_l = half_l.astype("float32")
        self._offset = offset.astype("float32")
        self._shift = np.tan(offset / half_l).astype("float32")
        self._half_width = (lv // 2).astype("float32")
        self._basis = np.concatenate([[1], np.cumprod(levels[:-1])]).astype(
            "int32"
        )
        self._levels_int = np.asarray(levels, dtype="int32")

    @property
    def num_channels(self):
        return len(self.levels)

    def build(self, input_shape):
        self._check_channels(input_shape)

    def _check_channels(self, input_shape):
        if input_shape[-1] != self.num_channels:
            raise ValueError(
                f"FiniteScalarQuantizer: the input has {input_shape[-1]} "
                f"channels but levels={self.levels} needs "
                f"{self.num_channels}. Project to len(levels) channels first."
            )

    def bound(self, z):
        """tanh bound of appendix A.1 (before rounding)."""
        return ops.tanh(z + self._shift) * self._half_l - self._offset

    def round_codes(self, z):
        """Rounded, straight-through, normalised codes in [-1, 1]."""
        bounded = self.bound(z)
        rounded = bounded + ops.stop_gradient(ops.round(bounded) - bounded)
        return rounded / self._half_width

    def codes_to_indices(self, codes):
        """int32 (...,) mixed-radix indices of normalised codes (..., d)."""
        codes = ops.convert_to_tensor(codes)
        digits = ops.cast(
            ops.round(codes * self._half_width + self._half_width), "int32"
        )
        return ops.sum(digits * self._basis, axis=-1)

    def indices_to_codes(self, indices):
        """Normalised codes (..., d) of int `indices` (...,)."""
        indices = ops.cast(ops.convert_to_tensor(indices), "int32")
        digits = ops.mod(
            ops.floor_divide(indices[..., None], self._basis),
            self._levels_int,
        )
        digits = ops.cast(digits, "float32")
        return (digits - self._half_width) / self._half_width

    def call(self, inputs, training=False):
        self._check_channels(inputs.shape)
        z = ops.cast(inputs, "float32")
        codes = self.round_codes(z)
        indices = self.codes_to_indices(codes)
        counts = codebook_ops.code_counts(
            ops.reshape(indices, (-1,)), self.codebook_size
        )
        return {
            "quantized": ops.cast(codes, self.compute_dtype),
            "indices": indices,
            "loss": ops.zeros((), dtype="float32"),
            "perplexity": codebook_ops.perplexity(counts),
        }

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "eps": self.eps}
