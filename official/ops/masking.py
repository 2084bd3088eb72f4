"""Random masking with an equal masked count per sample (MAE, Point-MAE).

`ids_shuffle = argsort(noise)`; the first `num_keep` are visible, the rest
masked; `ids_restore = argsort(ids_shuffle)` undoes the shuffle. The noise is
an argument, so masking is deterministic for a given noise (inference, export)
and random in training (the model draws the noise from a SeedGenerator).
"""

import tensorflow as tf


def random_masking_indices(noise, num_keep):
    """Returns (ids_keep (B, K), ids_masked (B, N-K), ids_restore (B, N),
    mask (B, N) float 1 = masked), from noise (B, N)."""
    # tf.argsort is exported as TopK by both LiteRT and ONNX converters.
    ids_shuffle = tf.argsort(noise, axis=1, stable=True)
    ids_restore = tf.argsort(ids_shuffle, axis=1, stable=True)
    ids_keep = ids_shuffle[:, :num_keep]
    ids_masked = ids_shuffle[:, num_keep:]
    # Position i is masked iff its rank in the shuffle is >= num_keep.
    mask = tf.cast(ids_restore >= num_keep, noise.dtype)
    return ids_keep, ids_masked, ids_restore, mask


def gather_tokens(x, ids):
    """x (B, N, ...) gathered along axis 1 with ids (B, M) -> (B, M, ...)."""
    return tf.gather(x, ids, batch_dims=1)
