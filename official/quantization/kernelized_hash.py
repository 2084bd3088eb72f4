"""Kernelized binary hashing with learned hash functions (KSH).

EcoFormer (Liu et al. 2022, https://arxiv.org/abs/2209.09004, sec. 4.2)
maps queries/keys to b-bit codes H(z) = sign(A phi(z)) with RBF features on
m anchors, and learns A with kernel-based supervised hashing (KSH: Liu et
al. CVPR 2012, "Supervised hashing with kernels", sec. 3) on labels taken
from the attention's own similarity (self-supervised). Written after the
official code, ziplab/EcoFormer@a277f9e `pvt/hashing/ksh.py` (`KernelSH`:
`forward`, `train_hashing_weight_woeig`, `optimization`, `compute_loss`) and
`pvt/performer.py` (`EcoformerFastAttention.forward`: labels and anchors).

Two halves:

* `rbf_anchor_features` / `kernelized_hash_codes` (keras.ops, XLA-safe):
  D2[n, i] = ||z_n - a_i||^2, sigma = mean over (n, i) of D2 computed from
  the *current* tokens per example and head (as the official `forward`),
  phi = exp(-D2 / (2 sigma)) - mu, codes = sign(A phi) in {-1, +1} with the
  official straight-through gradient (1 where |A phi| < 1, 0 elsewhere):
  `binary_hash(clip(y, -1, 1))` (sign(0) = +1 here; torch.sign(0) = 0).
* `fit_kernelized_hash` (NumPy, eager, one-off): labels S (+1 for each
  token's `topk` most cosine-similar tokens, -1 for its `topk` least
  similar), anchors = m random tokens of the first example, mu = mean
  feature, then the greedy bit-by-bit KSH fit: for bit r, Nesterov SGD on
  the relaxed loss -(1/(N b)) y^T (b S_r) y with y = 2 sigmoid(phi a) - 1,
  keep the new a_r only if the sign-version loss improves, then the
  residual S_{r+1} = S_r - y y^T (y the kept sign codes).
"""

import dataclasses

import numpy as np
from keras import ops

from official.quantization.binary_hash import binary_hash


def rbf_anchor_features(z, anchors, feature_mean=None, token_mask=None):
    """Centred RBF features of tokens on per-head anchors.

    Args:
        z: (B, H, N, D) tokens (EcoFormer: l2-normalised queries/keys).
        anchors: (H, m, D).
        feature_mean: (H, m) or None (= 0), subtracted from the features.
        token_mask: optional (B, N) or (B, 1, N) bool; sigma is the mean of
            D2 over the True tokens only (so padding cannot change it).

    Returns:
        (B, H, N, m) float32 features.
    """
    z = ops.cast(z, "float32")
    anchors = ops.cast(anchors, "float32")
    zz = ops.sum(z * z, axis=-1, keepdims=True)  # (B, H, N, 1)
    aa = ops.sum(anchors * anchors, axis=-1)[None, :, None, :]  # (1,H,1,m)
    za = ops.einsum("bhnd,hmd->bhnm", z, anchors)
    d2 = ops.maximum(zz + aa - 2.0 * za, 0.0)
    if token_mask is None:
        sigma = ops.mean(d2, axis=(2, 3), keepdims=True)
    else:
        w = ops.cast(ops.reshape(token_mask, (ops.shape(z)[0], 1, -1, 1)),
                     "float32")
        count = ops.maximum(ops.sum(w, axis=2, keepdims=True), 1.0)
        sigma = ops.sum(ops.mean(d2, axis=3, keepdims=True) * w, axis=2,
                        keepdims=True) / count
    sigma = ops.maximum(sigma, 1e-12)
    phi = ops.exp(-d2 / (2.0 * sigma))
    if feature_mean is not None:
        phi = phi - ops.cast(feature_mean, "float32")[None, :, None, :]
    return phi


def kernelized_hash_codes(z, anchors, hash_weights, feature_mean=None,
                          token_mask=None):
    """(B, H, N, b) codes in {-1, +1}: sign(A phi(z)), clipped STE.

    `hash_weights` A is (H, b, m) and treated as a constant (the official
    buffer is detached); gradients reach `z` through phi.
    """
    phi = rbf_anchor_features(z, anchors, feature_mean, token_mask)
    a = ops.stop_gradient(ops.cast(hash_weights, "float32"))
    y = ops.einsum("bhnm,hkm->bhnk", phi, a)
    return binary_hash(ops.clip(y, -1.0, 1.0))


# --------------------------------------------------------------- fitting
def _np_features(z, anchors, sigma=None):
    """NumPy RBF features (B, H, N, m) and the per-(B, H) sigma used."""
    zz = np.sum(z * z, axis=-1)[..., None]
    aa = np.sum(anchors * anchors, axis=-1)[None, :, None, :]
    d2 = np.maximum(zz + aa - 2.0 * np.einsum("bhnd,hmd->bhnm", z, anchors),
                    0.0)
    if sigma is None:
        sigma = d2.mean(axis=(2, 3), keepdims=True)
    return np.exp(-d2 / (2.0 * np.maximum(sigma, 1e-12))), sigma


def similarity_labels(z, topk):
    """KSH labels from cosine similarity (official `EcoformerFastAttention`).

    Args:
        z: (B, H, N, D) l2-normalised tokens.
        topk: int.

    Returns:
        (B, H, N, N) with +1 at each row's `topk` largest z_i.z_j (the token
        itself included), -1 at its `topk` smallest (written second, so -1
        wins where both apply), 0 elsewhere.
    """
    z = np.asarray(z)
    n = z.shape[2]
    if not 0 < topk <= n:
        raise ValueError(f"similarity_labels: topk must be in [1, {n}]; got "
                         f"{topk}.")
    sim = np.einsum("bhnd,bhmd->bhnm", z, z)
    labels = np.zeros(sim.shape, z.dtype)
    top = np.argpartition(-sim, topk - 1, axis=-1)[..., :topk]
    np.put_along_axis(labels, top, 1.0, axis=-1)
    bottom = np.argpartition(sim, topk - 1, axis=-1)[..., :topk]
    np.put_along_axis(labels, bottom, -1.0, axis=-1)
    return labels


def ksh_loss(y, scaled_labels, num_bits):
    """mean over (B, H) of -(y^T S y) / (N b) (official `compute_loss`)."""
    n = y.shape[-1]
    ys = np.einsum("bhn,bhnl->bhl", y, scaled_labels)
    return float(-np.mean(np.einsum("bhl,bhl->bh", ys, y)) / (n * num_bits))


def _relaxed_loss_and_grad(features, scaled_labels, a, num_bits):
    """Relaxed KSH loss (y = 2 sigmoid(phi a) - 1) and its gradient in a."""
    b, h, n, _ = features.shape
    u = np.einsum("bhnm,hm->bhn", features, a)
    y = 2.0 / (1.0 + np.exp(-u)) - 1.0
    loss = ksh_loss(y, scaled_labels, num_bits)
    sy = (np.einsum("bhnl,bhl->bhn", scaled_labels, y)
          + np.einsum("bhln,bhl->bhn", scaled_labels, y))
    dy = -sy / (n * num_bits * b * h)
    du = dy * (1.0 - y * y) / 2.0
    return loss, np.einsum("bhnm,bhn->hm", features, du).astype(a.dtype)


def _sign(x):
    # The official fit's rule: torch.where(y > 0, 1, -1).
    return np.where(x > 0.0, 1.0, -1.0).astype(x.dtype)


@dataclasses.dataclass
class KSHFit:
    """Result of `fit_kernelized_hash` (arrays, float32 by default).

    hash_weights (H, b, m), anchors (H, m, D), feature_mean (H, m);
    per bit: `initial_losses` / `candidate_losses` (sign-version loss of the
    bit's starting and SGD-optimised vector on the current residual labels),
    `accepted` (candidate kept), `relaxed_losses` (b, iterations).
    """

    hash_weights: np.ndarray
    anchors: np.ndarray
    feature_mean: np.ndarray
    initial_losses: np.ndarray
    candidate_losses: np.ndarray
    accepted: np.ndarray
    relaxed_losses: np.ndarray

    @property
    def bit_losses(self):
        """Loss of the kept vector of every bit (never above the initial)."""
        return np.where(self.accepted, self.candidate_losses,
                        self.initial_losses)


def fit_kernelized_hash(z, hash_weights, topk=10, iterations=100,
                        learning_rate=5e-4, momentum=0.9, anchors=None,
                        seed=0, labels=None, dtype="float32"):
    """Fits EcoFormer's hash functions on a batch of tokens (eager, NumPy).

    Args:
        z: (B, H, N, D) l2-normalised tokens (the attention's shared
            queries/keys of one batch).
        hash_weights: (H, b, m) starting hash functions (the official fit
            starts from the current buffer, N(0, 1) at initialisation).
        topk: int. Labels per row and sign (official 10).
        iterations: int. Nesterov SGD steps per bit (official 100).
        learning_rate, momentum: official 5e-4, 0.9.
        anchors: (H, m, D) or None: m tokens of example 0 drawn without
            replacement with `np.random.default_rng(seed)` (the official
            code uses `torch.randperm`).
        labels: optional (B, H, N, N) labels instead of
            `similarity_labels(z, topk)`.
        dtype: computation dtype (official: float32).

    Returns:
        `KSHFit`.
    """
    z = np.asarray(z, dtype)
    a_all = np.array(hash_weights, dtype, copy=True)
    bsz, heads, n, dim = z.shape
    if a_all.ndim != 3 or a_all.shape[0] != heads:
        raise ValueError(
            "fit_kernelized_hash: hash_weights must be (H, b, m) with H = "
            f"{heads}; got {a_all.shape}.")
    num_bits, m = a_all.shape[1], a_all.shape[2]
    if anchors is None:
        if m > n:
            raise ValueError(f"fit_kernelized_hash: {m} anchors need at "
                             f"least {m} tokens; got N = {n}.")
        pick = np.random.default_rng(seed).permutation(n)[:m]
        anchors = z[0][:, pick, :]
    anchors = np.asarray(anchors, dtype)
    if anchors.shape != (heads, m, dim):
        raise ValueError(f"fit_kernelized_hash: anchors must be "
                         f"{(heads, m, dim)}; got {anchors.shape}.")
    if labels is None:
        labels = similarity_labels(z, topk)
    features, _ = _np_features(z, anchors)
    mean = features.mean(axis=(0, 2))  # (H, m): over batch and tokens
    features = (features - mean[None, :, None, :]).astype(dtype)
    scaled = (np.asarray(labels, dtype) * num_bits).astype(dtype)

    init_l, cand_l, acc, relaxed = [], [], [], []
    for r in range(num_bits):
        a0 = a_all[:, r, :].copy()
        a = a0.copy()
        buf = None
        history = []
        for _ in range(iterations):
            loss, g = _relaxed_loss_and_grad(features, scaled, a, num_bits)
            history.append(loss)
            buf = g if buf is None else momentum * buf + g
            a = (a - learning_rate * (g + momentum * buf)).astype(dtype)
        if not np.all(np.isfinite(a)):
            raise FloatingPointError(
                f"fit_kernelized_hash: bit {r} diverged (non-finite hash "
                "weights); lower the learning rate.")
        y0 = _sign(np.einsum("bhnm,hm->bhn", features, a0))
        y1 = _sign(np.einsum("bhnm,hm->bhn", features, a))
        l0, l1 = ksh_loss(y0, scaled, num_bits), ksh_loss(y1, scaled, num_bits)
        keep = l1 < l0
        a_all[:, r, :] = a if keep else a0
        y = y1 if keep else y0
        scaled = scaled - np.einsum("bhn,bhm->bhnm", y, y)
        init_l.append(l0)
        cand_l.append(l1)
        acc.append(keep)
        relaxed.append(history)
    return KSHFit(
        hash_weights=a_all, anchors=anchors, feature_mean=mean.astype(dtype),
        initial_losses=np.array(init_l), candidate_losses=np.array(cand_l),
        accepted=np.array(acc), relaxed_losses=np.array(relaxed))
