"""Residual vector quantization (RVQ).

Zeghidour et al. 2021, "SoundStream" (https://arxiv.org/abs/2107.03312),
sec. 3.3, Algorithm 1: level l quantizes the residual left by levels < l; the
quantized output is the sum of the selected codes.
"""

import keras
from keras import ops

from official.quantization.vector_quantizer import VectorQuantizer
from official.quantization.vector_quantizer import codebook_config
from official.registry import register_layer


@register_layer()
class ResidualVectorQuantizer(keras.layers.Layer):
    """`num_levels` `VectorQuantizer`s applied to successive residuals.

        r_0 = z;  k_l = argmin_k ||r_l - e^l_k||^2;  r_{l+1} = r_l - e^l_{k_l}
        quantized = sum_l e^l_{k_l}

    Each level is a full `VectorQuantizer` (same options: EMA codebook,
    Laplace smoothing, dead-code restart on that level's residuals, training
    only). Gradients: the returned `quantized` is straight-through w.r.t.
    `z` (`z + stop_gradient(sum_l e_l - z)`, identity Jacobian); residuals
    are formed with `stop_gradient` on the codes, so each level's
    commitment term pulls the encoder towards that level's codes.

    Loss (returned, never `add_loss`-ed): sum over levels of each level's
    loss (codebook + beta * commitment, or beta * commitment with `ema`).

    Args:
        num_levels: int. Number of quantizers L.
        num_codes: int. Codebook size per level.
        beta, ema, decay, epsilon, dead_code_threshold,
        codebook_initializer: as in `VectorQuantizer`, for every level.
        seed: int or None. Level l uses seed + l for its restart sampler.

    Call args:
        inputs: (..., D) float tensor.
        training: bool. Enables EMA updates and restarts of every level.

    Returns:
        dict with `quantized` (..., D), `indices` (..., L) int32 (level
        codes), `loss` () (summed), `perplexity` (L,) per level.

    Example:
    >>> rvq = official.quantization.ResidualVectorQuantizer(3, 16, ema=True)
    >>> out = rvq(np.random.randn(8, 4).astype("float32"), training=True)
    >>> tuple(out["indices"].shape), tuple(out["perplexity"].shape)
    ((8, 3), (3,))
    """

    def __init__(
        self,
        num_levels,
        num_codes,
        beta=0.25,
        ema=False,
        decay=0.99,
        epsilon=1e-5,
        dead_code_threshold=0.0,
        codebook_initializer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_levels < 1:
            raise ValueError(
                "ResidualVectorQuantizer: num_levels must be >= 1; "
                f"got {num_levels}."
            )
        self.num_levels = num_levels
        self.num_codes = num_codes
        self.beta = beta
        self.ema = ema
        self.decay = decay
        self.epsilon = epsilon
        self.dead_code_threshold = dead_code_threshold
        self.codebook_initializer = codebook_initializer
        self.seed = seed
        self.quantizers = [
            VectorQuantizer(
                num_codes,
                beta=beta,
                ema=ema,
                decay=decay,
                epsilon=epsilon,
                dead_code_threshold=dead_code_threshold,
                codebook_initializer=codebook_initializer,
                seed=None if seed is None else seed + level,
                dtype=self.dtype_policy,
                name=f"level_{level}",
            )
            for level in range(num_levels)
        ]

    def build(self, input_shape):
        for quantizer in self.quantizers:
            quantizer.build(input_shape)

    def decode(self, indices, num_levels=None):
        """Sum of the codes of the first `num_levels` levels (None = all).

        `indices` is (..., L) as returned by `call`.
        """
        num_levels = self.num_levels if num_levels is None else num_levels
        total = 0.0
        for level in range(num_levels):
            total = total + self.quantizers[level].lookup(indices[..., level])
        return total

    def call(self, inputs, training=False):
        z = ops.cast(inputs, self.quantizers[0].variable_dtype)
        residual = z
        total = ops.zeros_like(z)
        indices, perplexities, loss = [], [], 0.0
        for quantizer in self.quantizers:
            out = quantizer(residual, training=training)
            code = ops.stop_gradient(ops.cast(out["quantized"], z.dtype))
            total = total + code
            residual = residual - code
            indices.append(out["indices"])
            perplexities.append(out["perplexity"])
            loss = loss + out["loss"]
        quantized = z + ops.stop_gradient(total - z)
        return {
            "quantized": ops.cast(quantized, self.compute_dtype),
            "indices": ops.stack(indices, axis=-1),
            "loss": loss,
            "perplexity": ops.stack(perplexities),
        }

    def get_config(self):
        return {**super().get_config(), "num_levels": self.num_levels,
                **codebook_config(self)}
