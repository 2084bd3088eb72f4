"""Binary hash codes: sign with a straight-through gradient.

The sign-with-STE binarisation of learning-to-hash (e.g. EcoFormer, Liu et
al. 2022, sec. 4.2, https://arxiv.org/abs/2209.09004; STE: Bengio et al.
2013) and the Hamming distance of +-1 codes, d_H(x, y) = (b - x.y) / 2 for
b-bit codes (each agreeing bit adds +1 to x.y, each disagreeing one -1).
"""

import keras
from keras import ops

from official.registry import register_layer

_CODES = ("pm1", "01")


def _check_codes(codes):
    if codes not in _CODES:
        raise ValueError(f"codes must be one of {_CODES}; got {codes!r}.")


def binary_hash(x, codes="pm1"):
    """Binarises `x` with sign(x) (sign(0) = +1) and a straight-through grad.

    Args:
        x: float tensor.
        codes: "pm1" for {-1, +1} codes (`x + stop_gradient(sign(x) - x)`,
            gradient 1), "01" for {0, 1} codes = (pm1 + 1) / 2 (gradient 1/2).

    Returns:
        Tensor like `x` with the codes.
    """
    _check_codes(codes)
    x = ops.convert_to_tensor(x)
    sign = ops.where(x >= 0, ops.ones_like(x), -ops.ones_like(x))
    pm1 = x + ops.stop_gradient(sign - x)
    return pm1 if codes == "pm1" else (pm1 + 1.0) / 2.0


def _to_pm1(x, codes):
    _check_codes(codes)
    x = ops.convert_to_tensor(x)
    return x if codes == "pm1" else 2.0 * x - 1.0


def hamming_distance(x, y, codes="pm1"):
    """Hamming distance over the last axis, (b - x.y) / 2 (broadcasting).

    `codes="01"` codes are mapped to +-1 first (2c - 1).
    """
    x, y = _to_pm1(x, codes), _to_pm1(y, codes)
    bits = ops.cast(ops.shape(x)[-1], x.dtype)
    return (bits - ops.sum(x * y, axis=-1)) / 2.0


def pairwise_hamming_distance(x, y, codes="pm1"):
    """(N, M) Hamming distances between rows of x (N, b) and y (M, b)."""
    x, y = _to_pm1(x, codes), _to_pm1(y, codes)
    bits = ops.cast(ops.shape(x)[-1], x.dtype)
    return (bits - ops.matmul(x, ops.transpose(y))) / 2.0


@register_layer()
class BinaryHash(keras.layers.Layer):
    """Binary hash layer: sign with a straight-through gradient (no weights).

    Args:
        codes: "pm1" ({-1, +1}, gradient identity) or "01" ({0, 1},
            gradient 1/2).

    Example:
    >>> layer = official.quantization.BinaryHash(codes="01")
    >>> np.asarray(layer(np.array([[-0.3, 0.0, 2.0]], "float32"))).tolist()
    [[0.0, 1.0, 1.0]]
    """

    def __init__(self, codes="pm1", **kwargs):
        super().__init__(**kwargs)
        _check_codes(codes)
        self.codes = codes

    def call(self, inputs):
        return binary_hash(inputs, codes=self.codes)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "codes": self.codes}
