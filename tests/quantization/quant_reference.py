"""NumPy reference formulas for the quantization tests (no Keras here)."""

import numpy as np


def distances(z, codebook):
    """(N, K) squared L2 distances, computed directly (no expansion)."""
    return ((z[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)


def vq(z, codebook, beta, ema):
    """Nearest code, quantized output and VQ-VAE eq. 3 loss (means)."""
    flat = z.reshape(-1, z.shape[-1])
    idx = distances(flat, codebook).argmin(-1)
    q = codebook[idx].reshape(z.shape)
    mse = np.mean((z - q) ** 2)
    loss = beta * mse if ema else (1.0 + beta) * mse
    return idx.reshape(z.shape[:-1]), q, loss


def perplexity(idx, num_codes):
    counts = np.bincount(np.ravel(idx), minlength=num_codes).astype(float)
    p = counts / counts.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def laplace(n_k, eps):
    n = n_k.sum()
    return (n_k + eps) / (n + len(n_k) * eps) * n


class SonnetEMA:
    """EMA codebook with an explicitly stored sum m (Sonnet layout).

    N starts at 1 and m at the initial codebook (no zero-debiasing).
    """

    def __init__(self, codebook, decay, eps, cluster_size=None):
        self.e = np.array(codebook, np.float64)
        k = len(self.e)
        self.n = (
            np.ones(k)
            if cluster_size is None
            else np.array(cluster_size, np.float64)
        )
        self.m = self.e * laplace(self.n, eps)[:, None]
        self.d, self.eps = decay, eps

    def step(self, flat):
        k = len(self.e)
        idx = distances(flat, self.e).argmin(-1)
        onehot = np.eye(k)[idx]
        self.n = self.d * self.n + (1 - self.d) * onehot.sum(0)
        self.m = self.d * self.m + (1 - self.d) * onehot.T @ flat
        self.e = self.m / laplace(self.n, self.eps)[:, None]
        return idx
