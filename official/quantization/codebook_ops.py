"""Codebook maths shared by the vector quantizers (pure `keras.ops`).

Every function works on flat arrays: `z` is (N, D) encoder outputs, `codebook`
is (K, D). All are XLA-compilable (static K, dynamic N).
"""

from keras import ops


def squared_distances(z, codebook):
    """(N, K) squared L2 distances ||z_i - e_k||^2.

    Expanded as ||z||^2 - 2 z.e + ||e||^2 (one matmul instead of an
    (N, K, D) broadcast), as in VQ-VAE implementations.
    """
    z_sq = ops.sum(ops.square(z), axis=-1, keepdims=True)
    e_sq = ops.sum(ops.square(codebook), axis=-1)
    return z_sq - 2.0 * ops.matmul(z, ops.transpose(codebook)) + e_sq[None, :]


def nearest_code(z, codebook):
    """int32 (N,) index of the nearest codebook entry (VQ-VAE eq. 1).

    Ties go to the lowest index (`argmin`).
    """
    return ops.cast(
        ops.argmin(squared_distances(z, codebook), axis=-1), "int32"
    )


def code_counts(indices, num_codes, dtype="float32"):
    """(K,) histogram of `indices` (unsorted segment sum; XLA-friendly)."""
    ones = ops.ones(ops.shape(indices), dtype=dtype)
    return ops.segment_sum(ones, indices, num_segments=num_codes)


def code_sums(z, indices, num_codes):
    """(K, D) sum of the rows of `z` assigned to each code."""
    return ops.segment_sum(z, indices, num_segments=num_codes)


def perplexity(counts):
    """exp(-sum_k p_k log p_k) of a code histogram, with 0 log 0 = 0.

    Equals K when every code is used equally often and 1 when one code takes
    everything (codebook-usage metric of VQ-VAE-2 / SoundStream).
    """
    p = counts / ops.maximum(ops.sum(counts), 1e-12)
    safe = ops.where(p > 0, p, ops.ones_like(p))
    return ops.exp(-ops.sum(p * ops.log(safe)))


def laplace_smoothing(cluster_size, epsilon):
    """Laplace-smoothed EMA cluster sizes (Sonnet `VectorQuantizerEMA`).

    N~_k = (N_k + eps) / (n + K eps) * n with n = sum_k N_k, so that no code
    divides by zero while the total mass n is kept.
    """
    n = ops.sum(cluster_size)
    k = ops.cast(ops.shape(cluster_size)[0], cluster_size.dtype)
    return (cluster_size + epsilon) / (n + k * epsilon) * n
