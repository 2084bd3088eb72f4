"""Vector quantizer (VQ-VAE), with an optional EMA codebook and code restart.

van den Oord et al. 2017, "Neural Discrete Representation Learning"
(https://arxiv.org/abs/1711.00937); EMA codebook: ibid. appendix A.1 and
Razavi et al. 2019 (VQ-VAE-2); Laplace smoothing as in Sonnet
`VectorQuantizerEMA`; dead-code restart as in Dhariwal et al. 2020 (Jukebox,
sec. 3.2) / Zeghidour et al. 2021 (SoundStream, sec. 3.3).
"""

import keras
from keras import ops

from official.quantization import codebook_ops
from official.registry import register_layer


def _default_codebook_initializer():
    # Sonnet's VectorQuantizer: variance scaling (scale 1, uniform) over the
    # code dimension D, i.e. U(-sqrt(3/D), sqrt(3/D)) per entry.
    return keras.initializers.VarianceScaling(
        scale=1.0, mode="fan_out", distribution="uniform"
    )


@register_layer()
class VectorQuantizer(keras.layers.Layer):
    """Nearest-neighbour vector quantizer with a straight-through gradient.

    The last axis of the input (size D) is quantized to the nearest of
    `num_codes` codebook vectors by squared L2 distance (VQ-VAE eq. 1-2). The
    forward output is the code vector; the backward pass copies the gradient
    to the encoder output (`z + stop_gradient(e - z)`).

    Loss (returned, never `add_loss`-ed; all squared errors are means over
    every element, as in Sonnet):
      * gradient codebook (`ema=False`), VQ-VAE eq. 3 without the
        reconstruction term:
        `loss = mean((sg[z] - e)^2) + beta * mean((z - sg[e])^2)`.
      * EMA codebook (`ema=True`): the codebook is not trained by gradients,
        `loss = beta * mean((z - sg[e])^2)` (commitment term only).

    EMA update (`ema=True`, only when `training=True`; VQ-VAE appendix A.1):
        N_k <- d N_k + (1 - d) n_k          (n_k: batch count of code k)
        m_k <- d m_k + (1 - d) sum_{i->k} z_i
        e_k <- m_k / N~_k,  N~_k = (N_k + eps) / (n + K eps) * n,  n = sum N_k
    N starts at 1 for every code and m at the initial codebook (so the first
    update is consistent with the initial codes); there is no zero-debiasing
    (Sonnet 2 debiases, the VQ-VAE-2 PyTorch ports do not). m is not stored:
    the update keeps the invariant m_k = e_k * N~_k, so it is recomputed from
    the codebook and N, which saves a K x D buffer.

    Usage tracking and dead-code restart (both variants; training only): N
    (the EMA of per-batch code counts, same `decay`) is kept for every
    quantizer. When `dead_code_threshold > 0`, after the update every code
    with N_k < threshold is re-initialised to an encoder output drawn at
    random from the current batch (without replacement while the batch has
    at least K vectors; `SeedGenerator(seed)`), and its N_k is reset to the
    threshold.

    All updates are `assign`s on variables, so they run inside a compiled
    `tf.function` (also `jit_compile=True`) and inside `Model.fit`.

    Args:
        num_codes: int. Codebook size K.
        beta: float. Commitment weight (0.25 in VQ-VAE).
        ema: bool. EMA codebook (non-trainable) instead of a gradient one.
        decay: float. EMA decay d for the codebook and the usage counts.
        epsilon: float. Laplace smoothing of the cluster sizes.
        dead_code_threshold: float. Restart codes whose EMA usage falls below
            this many vectors per batch; 0 disables restarts.
        codebook_initializer: initializer for the (K, D) codebook; None =
            variance scaling U(-sqrt(3/D), sqrt(3/D)) as in Sonnet.
        seed: int or None. Seed of the restart sampler.

    Call args:
        inputs: (..., D) float tensor.
        training: bool. Enables the EMA update and restarts.

    Returns:
        dict with `quantized` (..., D) (straight-through), `indices` (...,)
        int32, `loss` () and `perplexity` () = exp(-sum p log p) of the
        batch code histogram.

    Example:
    >>> vq = official.quantization.VectorQuantizer(num_codes=16, ema=True)
    >>> out = vq(np.random.randn(2, 5, 4).astype("float32"), training=True)
    >>> tuple(out["quantized"].shape), tuple(out["indices"].shape)
    ((2, 5, 4), (2, 5))
    """

    def __init__(
        self,
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
        if num_codes < 1:
            raise ValueError(
                f"VectorQuantizer: num_codes must be >= 1; got {num_codes}."
            )
        if not 0.0 <= decay < 1.0:
            raise ValueError(
                f"VectorQuantizer: decay must be in [0, 1); got {decay}."
            )
        self.num_codes = num_codes
        self.beta = beta
        self.ema = ema
        self.decay = decay
        self.epsilon = epsilon
        self.dead_code_threshold = dead_code_threshold
        self.codebook_initializer = codebook_initializer
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.dim = int(input_shape[-1])
        init = self.codebook_initializer
        init = (
            _default_codebook_initializer()
            if init is None
            else keras.initializers.get(init)
        )
        self.codebook = self.add_weight(
            shape=(self.num_codes, self.dim),
            initializer=init,
            trainable=not self.ema,
            name="codebook",
        )
        self.cluster_size = self.add_weight(
            shape=(self.num_codes,),
            initializer="ones",
            trainable=False,
            name="cluster_size",
        )

    def lookup(self, indices):
        """Code vectors (..., D) for int `indices` (...)."""
        return ops.take(ops.convert_to_tensor(self.codebook), indices, axis=0)

    def call(self, inputs, training=False):
        codebook = ops.convert_to_tensor(self.codebook)
        z = ops.cast(inputs, codebook.dtype)
        flat = ops.reshape(z, (-1, self.dim))
        idx = codebook_ops.nearest_code(flat, codebook)
        q = ops.reshape(ops.take(codebook, idx, axis=0), ops.shape(z))
        counts = codebook_ops.code_counts(idx, self.num_codes, codebook.dtype)

        commitment = ops.mean(ops.square(z - ops.stop_gradient(q)))
        loss = self.beta * commitment
        if not self.ema:
            loss = loss + ops.mean(ops.square(ops.stop_gradient(z) - q))

        if training:
            self._update(flat, idx, counts, codebook)

        quantized = z + ops.stop_gradient(q - z)
        return {
            "quantized": ops.cast(quantized, self.compute_dtype),
            "indices": ops.reshape(idx, ops.shape(z)[:-1]),
            "loss": loss,
            "perplexity": codebook_ops.perplexity(counts),
        }

    def _update(self, flat, idx, counts, codebook):
        """EMA codebook / usage update and dead-code restart (training)."""
        flat = ops.stop_gradient(flat)
        d = self.decay
        old_size = ops.convert_to_tensor(self.cluster_size)
        new_size = d * old_size + (1.0 - d) * counts
        new_codebook = None
        if self.ema:
            eps = self.epsilon
            old_sum = (
                codebook
                * codebook_ops.laplace_smoothing(old_size, eps)[:, None]
            )
            sums = codebook_ops.code_sums(flat, idx, self.num_codes)
            new_sum = d * old_sum + (1.0 - d) * sums
            new_codebook = (
                new_sum / codebook_ops.laplace_smoothing(new_size, eps)[:, None]
            )
        if self.dead_code_threshold > 0:
            dead = new_size < self.dead_code_threshold
            base = codebook if new_codebook is None else new_codebook
            samples = self._sample_rows(flat)
            new_codebook = ops.where(dead[:, None], samples, base)
            new_size = ops.where(
                dead,
                ops.full_like(new_size, self.dead_code_threshold),
                new_size,
            )
        self.cluster_size.assign(new_size)
        if new_codebook is not None:
            self.codebook.assign(new_codebook)

    def _sample_rows(self, flat):
        """K rows of `flat`, a random permutation (cycled if N < K)."""
        n = ops.shape(flat)[0]
        noise = keras.random.uniform(
            (n,), seed=self.seed_generator, dtype=flat.dtype
        )
        perm = ops.argsort(noise)
        pick = ops.take(perm, ops.mod(ops.arange(self.num_codes), n))
        return ops.take(flat, pick, axis=0)

    def get_config(self):
        return {**super().get_config(), **codebook_config(self)}


def codebook_config(layer):
    """The codebook options shared by `VectorQuantizer` and
    `ResidualVectorQuantizer`, serialised for `get_config`."""
    init = layer.codebook_initializer
    if init is not None and not isinstance(init, (str, dict)):
        init = keras.initializers.serialize(init)
    return {
        "num_codes": layer.num_codes,
        "beta": layer.beta,
        "ema": layer.ema,
        "decay": layer.decay,
        "epsilon": layer.epsilon,
        "dead_code_threshold": layer.dead_code_threshold,
        "codebook_initializer": init,
        "seed": layer.seed,
    }
