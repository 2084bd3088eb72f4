"""The KSH step: fitting the hash functions makes Hamming affinities follow
the similarity, and the hashed attention follow the softmax attention.

Data: tokens drawn around 32 random centres per head on the sphere
(d = 16, noise 0.5), 2 x 128 tokens to fit on and a *held-out* batch from
the same centres to evaluate on; b = 8 bits, m = 25 anchors, topk = 10.

Compared, with the same anchors and feature mean (taken from the fit
batch), on the held-out batch:
  * `rand`: the starting A ~ N(0, 1) (a random kernelized hash),
  * `fit`: KSH-fitted A (lr 0.5, 300 Nesterov steps per bit: the official
    lr 5e-4 x 100 barely moves A on these inputs, see the last test and
    garden/ecoformer/README.md),
  * `broken`: KSH fitted on labels whose columns were shuffled (the
    mechanism without the similarity signal), the calibration control.
Metrics: precision@10 (overlap of each token's 10 most cosine-similar
tokens with its 10 largest Hamming affinities) and the relative error of
the hashed kernel smoother against softmax attention on the normalised
tokens, softmax(z z^T) V (temperature 1, whose weight range e^2 ~ 7 is
comparable with the hashed similarities' 1..2b+1).

Calibration (seeds 0-4, `fit` / `rand` / `broken`): precision 0.52-0.59 /
0.39-0.44 / 0.42-0.45 (gain over `rand`: fit 0.11-0.15, broken <= 0.03);
attention error ratio to `rand` 0.73-0.80 (fit) vs 0.85-0.94 (broken).
Thresholds: precision gain > 0.08 (broken < 0.05); mean error ratio over
seeds 0-2 < 0.83 for fit and > 0.83 for broken.
"""

import types

import numpy as np
import pytest
import tensorflow as tf

from official.quantization.kernelized_hash import _relaxed_loss_and_grad
from official.quantization.kernelized_hash import fit_kernelized_hash
from official.quantization.kernelized_hash import ksh_loss
from official.quantization.kernelized_hash import similarity_labels

H, D, M, BITS, TOPK = 2, 16, 25, 8, 10


def clustered(rng, centres, batch=2, tokens=128, noise=0.5):
    idx = rng.integers(0, centres.shape[1], size=(batch, H, tokens))
    x = np.take_along_axis(centres[None], idx[..., None], 2)
    x = x + noise * rng.normal(size=x.shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(
        "float32"), idx


def codes(z, fit, hash_weights):
    from official.quantization.kernelized_hash import kernelized_hash_codes

    return np.asarray(kernelized_hash_codes(z, fit.anchors, hash_weights,
                                            fit.feature_mean), np.float64)


def precision_at_k(z, c, k=10):
    sim = np.einsum("bhnd,bhmd->bhnm", z, z)
    aff = np.einsum("bhnk,bhmk->bhnm", c, c)
    # Break Hamming ties at random (fixed seed), not by similarity.
    aff = aff + 1e-3 * np.random.default_rng(0).random(aff.shape)
    top_s = np.argsort(-sim, -1)[..., :k]
    top_a = np.argsort(-aff, -1)[..., :k]
    hits = (top_s[..., :, None] == top_a[..., None, :]).any(-1).sum()
    return hits / top_s.size


def smoother(c, v):
    s = np.einsum("bhnk,bhmk->bhnm", c, c) + c.shape[-1] + 1
    return np.einsum("bhnm,bhmd->bhnd", s / s.sum(-1, keepdims=True), v)


def softmax_attention(z, v):
    logits = np.einsum("bhnd,bhmd->bhnm", z, z)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return np.einsum("bhnm,bhmd->bhnd", p / p.sum(-1, keepdims=True), v)


def relative_error(out, target, v):
    return np.linalg.norm(out - target) / np.linalg.norm(
        target - v.mean(axis=2, keepdims=True))


def experiment(seed, lr=0.5, iterations=300):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(H, 32, D))
    z, _ = clustered(rng, centres)
    z_test, _ = clustered(rng, centres)
    v_test = rng.normal(size=z_test.shape)
    a0 = rng.normal(size=(H, BITS, M)).astype("float32")
    fit = fit_kernelized_hash(z, a0, topk=TOPK, learning_rate=lr,
                              iterations=iterations, seed=seed)
    shuffled = similarity_labels(z, TOPK)[..., rng.permutation(z.shape[2])]
    broken = fit_kernelized_hash(z, a0, topk=TOPK, learning_rate=lr,
                                 iterations=iterations, seed=seed,
                                 labels=shuffled)
    target = softmax_attention(z_test, v_test)
    out = {}
    for name, a in (("rand", a0), ("fit", fit.hash_weights),
                    ("broken", broken.hash_weights)):
        c = codes(z_test, fit, a)
        out[name] = (precision_at_k(z_test, c),
                     relative_error(smoother(c, v_test), target, v_test))
    return out, fit, a0


@pytest.fixture(scope="module")
def runs():
    return [experiment(seed) for seed in range(3)]


def test_fitted_codes_retrieve_similar_tokens(runs):
    for out, _, _ in runs:
        gain = out["fit"][0] - out["rand"][0]
        assert gain > 0.08, out
        assert out["broken"][0] - out["rand"][0] < 0.05, out


def test_fitted_codes_approximate_softmax_attention_better(runs):
    fit_ratio = np.mean([o["fit"][1] / o["rand"][1] for o, _, _ in runs])
    broken_ratio = np.mean([o["broken"][1] / o["rand"][1] for o, _, _ in runs])
    assert fit_ratio < 0.83, (fit_ratio, runs)
    assert broken_ratio > 0.83, (broken_ratio, runs)


def test_greedy_rule_never_increases_a_bit_loss(runs):
    for _, fit, _ in runs:
        assert np.all(fit.bit_losses <= fit.initial_losses)
        assert fit.accepted.any()


def test_within_cluster_hamming_below_between_cluster():
    """Spec 5.2 check 4, official hyper-parameters (b = 16). Control: the
    layer's untrained state (random anchors, zero mean, same A). Measured
    (seeds 11-13): fitted gap 8.6-9.3 bits, untrained 0.7-1.4."""
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(H, 4, D))
    z, idx = clustered(rng, centres, noise=0.3)
    a0 = rng.normal(size=(H, 16, M)).astype("float32")
    fit = fit_kernelized_hash(z, a0, topk=TOPK)
    untrained = types.SimpleNamespace(
        anchors=(rng.normal(size=(H, M, D)) / np.sqrt(D)).astype("float32"),
        feature_mean=np.zeros((H, M), "float32"))
    same = idx[..., :, None] == idx[..., None, :]
    gaps = []
    for state, a in ((fit, fit.hash_weights), (untrained, a0)):
        c = codes(z, state, a)
        ham = (16 - np.einsum("bhnk,bhmk->bhnm", c, c)) / 2
        gaps.append(ham[~same].mean() - ham[same].mean())
    assert gaps[0] > 4.0 > 2.0 > gaps[1], gaps


def test_relaxed_gradient_matches_autodiff():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(2, H, 20, 6))
    labels = similarity_labels(
        (lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True))(
            rng.normal(size=(2, H, 20, 5))), 3) * BITS
    a = rng.normal(size=(H, 6))
    loss, grad = _relaxed_loss_and_grad(feats, labels, a, BITS)
    at = tf.Variable(a)
    with tf.GradientTape() as tape:
        y = 2.0 * tf.sigmoid(tf.einsum("bhnm,hm->bhn", feats, at)) - 1.0
        ys = -tf.einsum("bhn,bhnl->bhl", y, labels) / (20 * BITS)
        tf_loss = tf.reduce_mean(tf.einsum("bhl,bhl->bh", ys, y))
    np.testing.assert_allclose(loss, tf_loss.numpy(), rtol=1e-10)
    np.testing.assert_allclose(grad, tape.gradient(tf_loss, at).numpy(),
                               rtol=1e-8, atol=1e-12)
    y = np.sign(rng.normal(size=(2, H, 20)))
    assert ksh_loss(y, labels, BITS) == pytest.approx(float(np.mean(
        -np.einsum("bhn,bhnl,bhl->bh", y, labels, y))) / (20 * BITS))


def test_official_learning_rate_barely_moves_the_hash_functions():
    """Documents a finding (README): with the official lr 5e-4 x 100 steps
    the fitted A stays within ~0.1 of its N(0, 1) start and retrieves no
    better than the random A (precision within 0.03)."""
    out, fit, a0 = experiment(0, lr=5e-4, iterations=100)
    assert np.abs(fit.hash_weights - a0).max() < 0.1
    assert abs(out["fit"][0] - out["rand"][0]) < 0.03, out
