"""Combiner kernels (Ren et al. 2021, arXiv 2107.05768): the defining
properties, against float64 NumPy.

* `test_equals_float64_reference`: each kernel equals an independent,
  per-query float64 NumPy reference written from the definitions (a span is
  a set of positions; its key/query are the max over the set, its value the
  softmax(span query . k)-weighted values), causal and not, ragged causal
  lengths (end padding), grouped-query heads, eagerly and under XLA.
* Exact limits (`test_reduces_to_dense`): Fixed/Axial/Mixture(causal) with
  one segment (s = L) or one-token segments (s = 1), Logsparse at L = 2,
  equal float64 dense attention; with the garden's `span_log_count`,
  Fixed equals dense when keys and values are constant inside every span,
  and Fixed/Logsparse equal dense when all keys are equal.
* Full support (`test_full_support_and_normalisation`): the one-hot value
  probe gives the effective attention matrix A: A[i, j] > 0 for every
  j <= i (every j when non-causal), A[i, j] == 0 for j > i, rows sum to 1.
* Causality (`test_later_positions_never_change_earlier_outputs`): new
  values at positions >= p leave outputs < p bit-identical, incl. the
  Axial "proj" summary with its weights and residual.
* Logit counts, cummax, options, dtypes, the layer.

`test_detects_*` are mutation checks: the comparisons fail for a span mask
that includes the query's own segment/row (future leak), the official
ceil(log2(L - 1)) logsparse levels (uncovered positions at L = 2^k + 1), a
global (non-running) max in the Mixture summaries (future leak), and a
Fixed kernel without spans (the reference comparison).
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference
from keras import ops

from official.attention import MultiHeadAttention
from official.attention import attention
from official.attention.kernels import combiner_axial
from official.attention.kernels import combiner_common
from official.attention.kernels import combiner_fixed
from official.attention.kernels import combiner_logsparse
from official.attention.kernels import combiner_mixture

TOL = 2e-5  # float32 kernel vs float64 reference
KERNELS = ("combiner_fixed", "combiner_logsparse", "combiner_axial",
           "combiner_mixture")


# --------------------------------------------------------------- reference
def _softmax_sum(terms):
    logits = np.array([t[0] for t in terms])
    values = np.stack([t[1] for t in terms])
    w = np.exp(logits - logits.max())
    return (w / w.sum()) @ values


def _pool(x, summary):
    """`local_summary` over the span axis 0: activation, then pooling."""
    act, pool = summary.split("-")
    if act == "relu":
        x = np.maximum(x, 0.0)
    return {"max": x.max, "mean": x.mean, "sum": x.sum}[pool](axis=0)


def _span(q_i, qh, kh, vh, cells, extra=0.0, summary="identity-max"):
    """(logit, value) of span `cells` for query vector q_i (one head): the
    key and the span query are pooled, the span's softmax uses the raw keys
    (official `sqrt_fixed_full`)."""
    cells = list(cells)
    key = _pool(kh[cells], summary)
    span_q = _pool(qh[cells], summary)
    a = np.exp(kh[cells] @ span_q - (kh[cells] @ span_q).max())
    return (q_i @ key + extra, (a / a.sum()) @ vh[cells])


def _pad(x, length):
    return np.concatenate(
        [x, np.zeros((length - x.shape[0],) + x.shape[1:])]) \
        if length > x.shape[0] else x


def reference(name, q, k, v, causal, s=None, log_count=False,
              row_summary="wsum", summary="identity-max"):
    """Float64 Combiner attention, one query at a time.

    q, k, v: (B, L, H, D) with H query heads (k, v already repeated); q is
    scaled by 1/sqrt(D) first (as the kernels do).
    """
    q = np.asarray(q, np.float64) / math.sqrt(q.shape[-1])
    k, v = np.asarray(k, np.float64), np.asarray(v, np.float64)
    length = q.shape[1]
    if s is not None:
        padded = -(-length // s) * s
        q, k, v = (np.stack([_pad(x[b], padded) for b in range(x.shape[0])])
                   for x in (q, k, v))
    full = q.shape[1]
    out = np.zeros(q.shape)
    for b in range(q.shape[0]):
        for h in range(q.shape[2]):
            qh, kh, vh = q[b, :, h], k[b, :, h], v[b, :, h]
            for i in range(full):
                terms = _terms(name, i, qh, kh, vh, causal, s, log_count,
                               row_summary, summary)
                out[b, i, h] = _softmax_sum(terms)
    return out[:, :length]


def _terms(name, i, qh, kh, vh, causal, s, log_count, row_summary,
           summary="identity-max"):
    full = qh.shape[0]
    qi = qh[i]

    def direct(j):
        return (qi @ kh[j], vh[j])

    if name == "combiner_fixed":
        seg, n = i // s, full // s
        terms = [direct(j) for j in range(seg * s, (seg + 1) * s)
                 if not causal or j <= i]
        for m in range(n):
            if (m < seg) if causal else (m != seg):
                terms.append(_span(qi, qh, kh, vh, range(m * s, (m + 1) * s),
                                   math.log(s) if log_count else 0.0,
                                   summary))
        return terms
    if name == "combiner_logsparse":
        levels = int(math.ceil(math.log2(full))) if full > 1 else 0
        terms = [direct(i)]
        for lev in range(levels):
            b = i >> lev
            if b & 1:  # the block left of i's level-lev block
                block = range((b - 1) << lev, b << lev)
            elif not causal and ((b + 1) << lev) < full:  # right of it
                block = range((b + 1) << lev, min((b + 2) << lev, full))
            else:
                continue
            if lev == 0:  # one position: its own key and value (official)
                terms.append(direct(block[0]))
                continue
            terms.append(_span(qi, qh, kh, vh, block,
                               math.log(len(block)) if log_count else 0.0,
                               summary))
        return terms
    rows = full // s
    r, c = divmod(i, s)

    def cell(t, col):
        return t * s + col

    if name == "combiner_axial":
        terms = [direct(cell(r, j)) for j in range(s) if not causal or j <= c]
        for t in range(rows):
            if (t < r) if causal else (t != r):
                idx = [cell(t, j) for j in range(s)]
                a = np.exp(kh[idx] @ qh[cell(t, c)])
                a /= a.sum()
                key = kh[cell(t, c)] if row_summary == "none" else a @ kh[idx]
                terms.append((qi @ key, a @ vh[idx]))
        return terms
    assert name == "combiner_mixture"
    if causal:
        terms = [direct(cell(t, c)) for t in range(r)]
        terms += [direct(cell(r, j)) for j in range(c + 1)]
        for col in range(s):
            if col != c and r >= 1:
                terms.append(_span(qi, qh, kh, vh,
                                   [cell(t, col) for t in range(r)]))
        for t in range(r):
            if c >= 1:
                terms.append(_span(qi, qh, kh, vh,
                                   [cell(t, j) for j in range(c)]))
            if c <= s - 2:
                terms.append(_span(qi, qh, kh, vh,
                                   [cell(t, j) for j in range(c + 1, s)]))
        return terms
    terms = [direct(cell(r, j)) for j in range(s)]
    terms += [direct(cell(t, c)) for t in range(rows)]
    for col in range(s):
        if r >= 1:
            terms.append(_span(qi, qh, kh, vh,
                               [cell(t, col) for t in range(r)]))
        if r <= rows - 2:
            terms.append(_span(qi, qh, kh, vh,
                               [cell(t, col) for t in range(r + 1, rows)]))
    for t in range(rows):
        if c >= 1:
            terms.append(_span(qi, qh, kh, vh, [cell(t, j) for j in range(c)]))
        if c <= s - 2:
            terms.append(_span(qi, qh, kh, vh,
                               [cell(t, j) for j in range(c + 1, s)]))
    return terms


# ----------------------------------------------------------------- helpers
def qkv(seed, b, length, h, h_kv, d, spread=1.5):
    rng = np.random.default_rng(seed)
    q = (spread * rng.standard_normal((b, length, h, d))).astype("float32")
    k = (spread * rng.standard_normal((b, length, h_kv, d))).astype("float32")
    v = rng.standard_normal((b, length, h_kv, d)).astype("float32")
    return q, k, v


def run(name, q, k, v, causal, xla=False, **options):
    def fn(q, k, v):
        return attention(q, k, v, kernel=name, causal=causal, **options)

    if xla:
        fn = tf.function(fn, jit_compile=True)
    return np.asarray(fn(q, k, v))


def effective_matrix(name, length, causal, seed=0, **options):
    """The one-hot value probe: v = identity (D = L, H = 1); the output is
    the attention matrix (B, L, L)."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, length, 1, length)).astype("float32")
    k = rng.standard_normal((1, length, 1, length)).astype("float32")
    v = np.eye(length, dtype="float32")[None, :, None, :]
    return run(name, q, k, v, causal, **options)[:, :, 0, :]


# ----------------------------------------------------------- reference eq.
REF_CASES = [
    # (kernel, L, s, causal, options)
    ("combiner_fixed", 24, 4, True, {}),
    ("combiner_fixed", 24, 4, False, {}),
    ("combiner_fixed", 22, 4, True, {}),  # padded to 24
    ("combiner_fixed", 24, 6, False, {"span_log_count": True}),
    ("combiner_logsparse", 24, None, True, {}),
    ("combiner_logsparse", 17, None, True, {}),
    ("combiner_logsparse", 21, None, False, {}),
    ("combiner_logsparse", 16, None, False, {"span_log_count": True}),
    ("combiner_axial", 24, 4, True, {"row_summary": "wsum"}),
    ("combiner_axial", 24, 6, False, {"row_summary": "wsum"}),
    ("combiner_axial", 23, 6, True, {"row_summary": "none"}),
    ("combiner_axial", 24, 4, False, {"row_summary": "none"}),
    ("combiner_mixture", 24, 4, True, {}),
    ("combiner_mixture", 22, 6, True, {}),
    ("combiner_mixture", 24, 6, False, {}),
    ("combiner_mixture", 20, 4, False, {}),
]


@pytest.mark.parametrize("case", REF_CASES, ids=lambda c: "-".join(
    str(x) for x in c[:4]) + "".join(f"-{k}" for k in c[4]))
def test_equals_float64_reference(case):
    name, length, s, causal, options = case
    q, k, v = qkv(length, 2, length, 4, 2, 8)  # grouped-query heads
    opts = dict(options)
    if s is not None:
        opts["segment_length"] = s
    out = run(name, q, k, v, causal, **opts)
    k4, v4 = np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2)
    ref = reference(name, q, k4, v4, causal, s,
                    log_count=options.get("span_log_count", False),
                    row_summary=options.get("row_summary", "wsum"))
    np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


def test_xla_equals_eager_and_reference():
    """All four kernels, causal (ragged length: padded) and not, in ONE
    jit-compiled function (one XLA compilation keeps the test fast)."""
    q, k, v = qkv(9, 2, 24, 4, 2, 8)
    cases = [(name, causal) for name in KERNELS for causal in (True, False)]

    def options(name, causal):
        if name == "combiner_logsparse":
            return {}
        return {"segment_length": 5 if causal else 6}

    def all_kernels(q, k, v):
        return [attention(q[:, :23], k[:, :23], v[:, :23], kernel=name,
                          causal=True, **options(name, True)) if causal
                else attention(q, k, v, kernel=name, **options(name, False))
                for name, causal in cases]

    compiled = tf.function(all_kernels, jit_compile=True)(q, k, v)
    eager = all_kernels(q, k, v)
    k4, v4 = np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2)
    for (name, causal), x, e in zip(cases, compiled, eager):
        np.testing.assert_allclose(x.numpy(), e.numpy(), atol=1e-5,
                                   err_msg=name)
        n = 23 if causal else 24
        ref = reference(name, q[:, :n], k4[:, :n], v4[:, :n], causal,
                        options(name, causal).get("segment_length"))
        np.testing.assert_allclose(x.numpy(), ref, atol=TOL, err_msg=name)


def test_detects_missing_spans(monkeypatch):
    """Mutation: a Fixed kernel whose spans are all masked (the plain sparse
    "fixed" pattern) differs from the reference by orders of magnitude."""
    q, k, v = qkv(1, 1, 16, 2, 2, 8)
    ref = reference("combiner_fixed", q, k, v, True, 4)
    monkeypatch.setattr(combiner_fixed, "span_allowed",
                        lambda n, causal: np.zeros((n, n), bool))
    out = run("combiner_fixed", q, k, v, True, segment_length=4)
    assert np.abs(out - ref).max() > 100 * TOL


# Spans longer than combiner_common.FUSED_REDUCE (32) take the chunked
# softmax-weighted sum, head dims above it the sliced dot product (40 = 32 +
# 8): the XLA-on-CPU performance paths. Non-causal L = 160 pads to 256, so
# the level-7 right block [128, 256) has partly and fully masked chunks;
# s = 50 chunks by 25. (kernel, L, s, causal, options)
LONG_CASES = [
    ("combiner_logsparse", 160, None, True, {}),
    ("combiner_logsparse", 160, None, False, {}),
    ("combiner_fixed", 192, 96, True, {}),
    ("combiner_fixed", 150, 50, False, {}),
    ("combiner_logsparse", 21, None, False, {"local_summary": "relu-mean"}),
    ("combiner_logsparse", 40, None, False, {"local_summary": "relu-sum"}),
    ("combiner_logsparse", 24, None, True, {"local_summary": "relu-max"}),
    ("combiner_fixed", 24, 4, False, {"local_summary": "relu-max"}),
]


def _long_case(case):
    name, length, s, causal, options = case
    q, k, v = qkv(length, 1, length, 1, 1, 40)
    opts = dict(options)
    if s is not None:
        opts["segment_length"] = s
    ref = reference(name, q, k, v, causal, s,
                    summary=options.get("local_summary", "identity-max"))
    return run(name, q, k, v, causal, **opts), ref


@pytest.mark.parametrize("case", LONG_CASES, ids=lambda c: "-".join(
    str(x) for x in c[:4]) + "".join(f"-{v}" for v in c[4].values()))
def test_long_spans_wide_heads_and_summaries_equal_reference(case):
    """Also pins the `local_summary` semantics: pooled (activated) span key
    and span query, raw keys inside the span's softmax, for every length
    (the summaries of partly-padded Logsparse blocks used activated keys
    there before)."""
    out, ref = _long_case(case)
    np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


def test_detects_chunks_merged_without_rescaling(monkeypatch):
    """Mutation: adding the per-chunk partial sums of a long span without
    the exp(m_c - M) rescaling (each chunk normalised to its own maximum)
    is far from the reference."""
    def unscaled(chunk_max, chunk_sum, chunk_val):
        return ops.sum(chunk_val, axis=2) / ops.sum(chunk_sum, axis=2)[
            ..., None]

    monkeypatch.setattr(combiner_common, "merge_chunks", unscaled)
    out, ref = _long_case(LONG_CASES[0])
    assert np.abs(out - ref).max() > 100 * TOL


def test_detects_own_block_instead_of_sibling(monkeypatch):
    """Mutation: Logsparse queries using their own level-l block instead of
    its dyadic sibling (left/right neighbour) differ from the reference."""
    monkeypatch.setattr(combiner_logsparse, "sibling", lambda x: x)
    for causal in (True, False):
        q, k, v = qkv(3, 1, 24, 2, 2, 8)
        ref = reference("combiner_logsparse", q, k, v, causal)
        out = run("combiner_logsparse", q, k, v, causal)
        assert np.abs(out - ref).max() > 100 * TOL


# -------------------------------------------------------------- exactness
DENSE_LIMITS = [
    ("combiner_fixed", {"segment_length": 16}, (True, False)),
    ("combiner_fixed", {"segment_length": 1}, (True, False)),
    ("combiner_axial", {"segment_length": 16}, (True, False)),
    ("combiner_axial", {"segment_length": 1, "row_summary": "none"},
     (True, False)),
    ("combiner_axial", {"segment_length": 1, "row_summary": "wsum"},
     (True, False)),
    ("combiner_mixture", {"segment_length": 16}, (True,)),
    ("combiner_mixture", {"segment_length": 1}, (True,)),
]


@pytest.mark.parametrize("limit", DENSE_LIMITS, ids=lambda c: "-".join(
    [c[0]] + [f"{k}{v}" for k, v in c[1].items()]))
def test_reduces_to_dense(limit):
    name, options, modes = limit
    q, k, v = qkv(7, 2, 16, 2, 1, 8, spread=3.0)
    for causal in modes:
        out = run(name, q, k, v, causal, **options)
        ref = dense_reference(q, k, v, causal=causal)
        np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_logsparse_reduces_to_dense_at_two_tokens():
    q, k, v = qkv(3, 2, 2, 2, 2, 8, spread=3.0)
    for causal in (True, False):
        out = run("combiner_logsparse", q, k, v, causal)
        np.testing.assert_allclose(
            out, dense_reference(q, k, v, causal=causal), atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_span_log_count_is_exact_for_constant_spans(causal):
    """Spec check 5: keys and values constant inside every segment; with
    + log s on span logits Combiner-Fixed equals dense attention (a span of s
    identical tokens weighs exactly like s direct logits). Without the
    correction (the paper's and official setting) it does not."""
    rng = np.random.default_rng(5)
    s, n = 4, 5
    q = rng.standard_normal((2, s * n, 2, 8)).astype("float32") * 2
    k = np.repeat(rng.standard_normal((2, n, 2, 8)), s, axis=1).astype(
        "float32") * 2
    v = np.repeat(rng.standard_normal((2, n, 2, 8)), s, axis=1).astype(
        "float32")
    ref = dense_reference(q, k, v, causal=causal)
    exact = run("combiner_fixed", q, k, v, causal, segment_length=s,
                span_log_count=True)
    plain = run("combiner_fixed", q, k, v, causal, segment_length=s)
    np.testing.assert_allclose(exact, ref, atol=1e-5)
    assert np.abs(plain - ref).max() > 1e-2


@pytest.mark.parametrize("name", ["combiner_fixed", "combiner_logsparse"])
@pytest.mark.parametrize("causal", [True, False])
def test_span_log_count_is_exact_for_equal_keys(name, causal):
    """All keys equal (any values): dense attention is the mean of the
    allowed values; a span's value is its mean and its weight, with
    + log|span|, its size, so the kernel is exact. This pins the block
    bookkeeping (which block, its size, its values) of Logsparse."""
    rng = np.random.default_rng(6)
    length = 24 if name == "combiner_fixed" else 21
    q = rng.standard_normal((1, length, 2, 8)).astype("float32")
    k = np.broadcast_to(rng.standard_normal((1, 1, 2, 8)),
                        (1, length, 2, 8)).astype("float32")
    v = rng.standard_normal((1, length, 2, 8)).astype("float32")
    opts = {"span_log_count": True}
    if name == "combiner_fixed":
        opts["segment_length"] = 4
    out = run(name, q, k, v, causal, **opts)
    np.testing.assert_allclose(out, dense_reference(q, k, v, causal=causal),
                               atol=1e-5)


# ------------------------------------------------------------ full support
def _support_cases():
    cases = []
    for length in (8, 9, 12, 16, 17, 64):
        cases.append(("combiner_logsparse", length, True, {}))
        cases.append(("combiner_logsparse", length, False, {}))
        for name in ("combiner_fixed", "combiner_axial", "combiner_mixture"):
            cases.append((name, length, True, {"segment_length": 4}))
            cases.append((name, length, False, {}))  # default s divides L
    return cases


@pytest.mark.parametrize("case", _support_cases(),
                         ids=lambda c: f"{c[0]}-L{c[1]}-causal{c[2]}")
def test_full_support_and_normalisation(case):
    """The paper's defining property (§3, "full attention"): every allowed
    position is reachable in one layer, nothing else is."""
    name, length, causal, options = case
    a = effective_matrix(name, length, causal, **options)
    allowed = np.tri(length, dtype=bool) if causal else np.ones(
        (length, length), bool)
    assert np.all(a[:, allowed] > 0), (
        "unreachable (i, j): " + str(np.argwhere((a[0] <= 0) & allowed)[:5]))
    assert np.all(a[:, ~allowed] == 0)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("length", [9, 17, 33])
def test_detects_official_logsparse_levels(monkeypatch, length):
    """Mutation / spec check 4: the official n_levels = ceil(log2(L - 1))
    leaves position L - 1 = 2^k with only its self logit when L = 2^k + 1;
    ceil(log2 L) (ours) covers it."""
    monkeypatch.setattr(combiner_logsparse, "num_levels",
                        lambda n: int(math.ceil(math.log2(n - 1))))
    a = effective_matrix("combiner_logsparse", length, True)
    holes = np.argwhere((a[0] <= 0) & np.tri(length, dtype=bool))
    assert holes.size and set(holes[:, 0]) == {length - 1}


# ---------------------------------------------------------------- causality
def _axial_proj_options(rng, h, d, width):
    def w(*shape):
        return (0.3 * rng.standard_normal(shape)).astype("float32")

    return dict(
        row_summary="proj", summary_dense_kernel=w(h * d, width),
        summary_dense_bias=w(width), summary_norm_gamma=1 + w(width),
        summary_norm_beta=w(width), summary_head_kernel=w(width, h * d),
        summary_head_bias=w(h * d))


CAUSAL_CASES = [
    ("combiner_fixed", {"segment_length": 4}),
    ("combiner_fixed", {"segment_length": 4, "local_summary": "relu-mean"}),
    ("combiner_logsparse", {}),
    ("combiner_axial", {"segment_length": 4, "row_summary": "wsum"}),
    ("combiner_axial", {"segment_length": 4, "row_summary": "proj"}),
    ("combiner_axial", {"segment_length": 4, "row_summary": "wsum_proj"}),
    ("combiner_mixture", {"segment_length": 4}),
]


def assert_causal(name, options, length=23,
                  cuts=(1, 3, 4, 5, 11, 12, 16, 22)):
    """New inputs (q, k, v and the Axial residual) at positions >= p leave
    the outputs < p bit-identical and change the later ones."""
    rng = np.random.default_rng(11)
    q, k, v = qkv(12, 2, length, 2, 2, 8)
    x = rng.standard_normal((2, length, 12)).astype("float32")
    opts = dict(options)
    proj = "proj" in opts.get("row_summary", "")
    if proj:
        opts.update(_axial_proj_options(rng, 2, 8, 12))
        opts["row_summary"] = options["row_summary"]

    def call(q, k, v, x):
        extra = {"summary_residual": x} if proj else {}
        return run(name, q, k, v, True, **opts, **extra)

    base = call(q, k, v, x)
    for p in cuts:
        new = [a.copy() for a in (q, k, v, x)]
        for a in new:
            a[:, p:] = 3 * rng.standard_normal(a[:, p:].shape)
        out = call(*new)
        np.testing.assert_array_equal(out[:, :p], base[:, :p],
                                      err_msg=f"{name}: cut at {p}")
        assert not np.allclose(out[:, p:], base[:, p:])


@pytest.mark.parametrize("case", CAUSAL_CASES, ids=lambda c: c[0] + "".join(
    f"-{v}" for v in c[1].values()))
def test_later_positions_never_change_earlier_outputs(case):
    assert_causal(*case)


def test_detects_future_leak_through_own_segment_span(monkeypatch):
    monkeypatch.setattr(combiner_fixed, "span_allowed",
                        lambda n, causal: np.tri(n, dtype=bool))
    with pytest.raises(AssertionError):
        assert_causal("combiner_fixed", {"segment_length": 4})


def test_detects_future_leak_through_own_row_summary(monkeypatch):
    monkeypatch.setattr(combiner_axial, "row_allowed",
                        lambda n, causal: np.tri(n, dtype=bool))
    with pytest.raises(AssertionError):
        assert_causal("combiner_axial", {"segment_length": 4})


def test_detects_future_leak_through_global_max(monkeypatch):
    """A Mixture whose summary queries/keys use the max over the whole
    row/column instead of the running max sees the future."""
    def global_max(x, axis, reverse=False):
        return tf.broadcast_to(tf.reduce_max(x, axis=axis, keepdims=True),
                               tf.shape(x))

    monkeypatch.setattr(combiner_common, "cummax", global_max)
    with pytest.raises(AssertionError):
        assert_causal("combiner_mixture", {"segment_length": 4})


def test_causal_gradients_vanish_for_later_positions():
    """Jacobian form (spec check 3): d out_i / d(q, k, v)_j == 0, j > i."""
    q, k, v = (tf.constant(a) for a in qkv(4, 1, 12, 2, 2, 4))
    for name in KERNELS:
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = attention(q, k, v, kernel=name, causal=True,
                            **({} if name == "combiner_logsparse"
                               else {"segment_length": 4}))
            target = tf.reduce_sum(out[:, :6] ** 2)
        for g in tape.gradient(target, [q, k, v]):
            g = g.numpy()
            assert np.all(g[:, 6:] == 0), name
            assert np.any(g[:, :6] != 0), name


# ------------------------------------------------------------ logit counts
@pytest.mark.parametrize("causal", [True, False])
def test_joint_logit_counts(causal):
    """Spec check 4: static last dims of the joint logits."""
    length, s = 48, 8
    q, k, v = (tf.constant(a) for a in qkv(0, 1, length, 2, 2, 4))
    n = length // s

    def count(blocks):
        return sum(b.shape[-1] for b in blocks)

    blocks, _ = combiner_fixed.fixed_parts(q, k, v, causal, s)
    assert count(blocks) == s + n
    blocks, _ = combiner_axial.axial_parts(q, k, v, causal, s)
    assert count(blocks) == s + n
    blocks, _ = combiner_mixture.mixture_parts(q, k, v, causal, s)
    assert count(blocks) == (3 * n + 2 * s if causal else 3 * n + 3 * s)
    blocks, _ = combiner_logsparse.logsparse_parts(q, k, v, causal)
    levels = math.ceil(math.log2(length))
    assert count(blocks) == (levels + 1 if causal else 2 * levels + 1)


def test_joint_exp_equals_concatenated_softmax():
    """`joint_exp` (what the kernels run) is the joint softmax of §3 without
    the concatenation: e_b / Z equals softmax over the concatenated blocks,
    also with masked (NEG) logits, and Z is per query."""
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((2, 3, 5, 4)).astype("float32") * 4,
              rng.standard_normal((2, 3, 5, 7)).astype("float32") * 4]
    blocks[1][..., 2:] = combiner_common.NEG
    exps, total = combiner_common.joint_exp([tf.constant(b) for b in blocks])
    ref = combiner_common.joint_softmax([tf.constant(b) for b in blocks])
    assert tuple(total.shape) == (2, 3, 5)
    for e, r in zip(exps, ref):
        np.testing.assert_allclose(np.asarray(e) / np.asarray(total)[..., None],
                                   np.asarray(r), atol=1e-7)
    assert np.all(np.asarray(exps[1])[..., 2:] == 0)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("causal", [True, False])
def test_gradients_equal_the_concatenated_softmax(name, causal, monkeypatch):
    """Input gradients of each kernel (joint_exp, the output divided by Z
    once, heads folded into the batch where the kernel folds them) equal
    those of the same kernel with the reference concatenated softmax
    (TensorFlow's softmax gradient) and unfolded heads, batch 2,
    grouped-query heads, under XLA."""
    q, k, v = (tf.constant(a) for a in qkv(3, 2, 23 if causal else 24, 4,
                                            2, 8))
    opts = {} if name == "combiner_logsparse" else {"segment_length": 6}

    def grads():
        @tf.function(jit_compile=True)
        def fn(q, k, v):
            with tf.GradientTape() as tape:
                tape.watch([q, k, v])
                out = attention(q, k, v, kernel=name, causal=causal, **opts)
                loss = tf.reduce_sum(out * tf.sin(out))
            return tape.gradient(loss, [q, k, v])
        return [g.numpy() for g in fn(q, k, v)]

    got = grads()

    def concat_run(query, key, value, scale, length, padded, build,
                   fold=False):
        q, k, v = combiner_common.prepare(query, key, value, scale)
        if padded != length:
            q, k, v = (combiner_common.pad_to(x, padded) for x in (q, k, v))
        blocks, merge = build(q, k, v)
        return merge(combiner_common.joint_softmax(blocks))[:, :length]

    monkeypatch.setattr(combiner_common, "run", concat_run)
    want = grads()
    for g, w in zip(got, want):
        assert np.abs(w).max() > 1e-3
        np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-4)


def test_default_segment_length():
    assert combiner_common.default_segment_length(1024) == 32
    assert combiner_common.default_segment_length(4096) == 64
    assert combiner_common.default_segment_length(2048) == 32  # 32 + 64
    assert combiner_common.default_segment_length(12) == 3  # 3 + 4
    assert combiner_common.default_segment_length(13) == 1  # prime


# ------------------------------------------------------------------ cummax
@pytest.mark.parametrize("n", [1, 2, 7, 8, 13])
def test_cummax_matches_numpy(n):
    x = np.random.default_rng(n).standard_normal((2, n, 3)).astype("float32")
    fwd = tf.function(lambda a: combiner_common.cummax(a, 1),
                      jit_compile=True)
    rev = tf.function(lambda a: combiner_common.cummax(a, 1, reverse=True),
                      jit_compile=True)
    np.testing.assert_array_equal(np.asarray(combiner_common.cummax(x, 1)),
                                  np.maximum.accumulate(x, axis=1))
    np.testing.assert_array_equal(fwd(x).numpy(),
                                  np.maximum.accumulate(x, axis=1))
    np.testing.assert_array_equal(
        rev(x).numpy(), np.maximum.accumulate(x[:, ::-1], axis=1)[:, ::-1])


# ------------------------------------------------ options, dtypes, layer
def test_invalid_inputs_raise_value_error():
    q, k, v = qkv(0, 1, 12, 2, 2, 4)
    for name in KERNELS:
        with pytest.raises(ValueError, match="mask"):
            attention(q, k, v, kernel=name, mask=np.ones((12, 12), bool))
        with pytest.raises(ValueError, match="self-attention"):
            attention(q[:, :4], k, v, kernel=name)
    for name in ("combiner_fixed", "combiner_axial", "combiner_mixture"):
        with pytest.raises(ValueError, match="multiple of segment_length"):
            attention(q, k, v, kernel=name, segment_length=5)
        attention(q, k, v, kernel=name, causal=True, segment_length=5)
    with pytest.raises(ValueError, match="local_summary"):
        attention(q, k, v, kernel="combiner_fixed", local_summary="deepset")
    with pytest.raises(ValueError, match="row_summary"):
        attention(q, k, v, kernel="combiner_axial", row_summary="bad")
    with pytest.raises(ValueError, match="summary_residual"):
        attention(q, k, v, kernel="combiner_axial", row_summary="proj")
    with pytest.raises(ValueError, match="unknown options"):
        attention(q, k, v, kernel="combiner_logsparse", segment_length=4)


@pytest.mark.parametrize("name", KERNELS)
def test_low_precision_inputs_keep_their_dtype(name):
    q, k, v = qkv(2, 1, 16, 2, 2, 8)
    ref = run(name, q, k, v, True)
    out = attention(*(tf.cast(a, tf.bfloat16) for a in (q, k, v)),
                    kernel=name, causal=True)
    assert out.dtype == tf.bfloat16
    assert np.abs(out.numpy().astype("float32") - ref).max() < 0.1


@pytest.mark.parametrize("name", KERNELS)
def test_in_multi_head_attention_layer(name):
    """`MultiHeadAttention(kernel=...)` runs the kernel and a training
    step's gradient reaches every weight (XLA: the models' sweep)."""
    options = {"segment_length": 4}
    if name == "combiner_logsparse":
        options = {}
    layer = MultiHeadAttention(2, 8, kernel=name, kernel_options=options)
    x = tf.constant(np.random.default_rng(0).standard_normal((2, 16, 16)),
                    tf.float32)

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, causal=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(grads) == 8  # q, k, v, o kernels + biases
    for g in grads:
        assert np.any(g.numpy() != 0)


def test_axial_proj_weights_are_built_by_the_layer():
    layer = MultiHeadAttention(
        2, 8, kernel="combiner_axial",
        kernel_options={"segment_length": 4, "row_summary": "proj"})
    layer.build((2, 16, 12))
    shapes = {n: tuple(w.shape) for n, w in layer.kernel_params.items()}
    assert shapes == {
        "summary_dense_kernel": (16, 12), "summary_dense_bias": (12,),
        "summary_norm_gamma": (12,), "summary_norm_beta": (12,),
        "summary_head_kernel": (12, 16), "summary_head_bias": (16,)}
    # The plain layer has no residual to give: a clear error, not a guess.
    with pytest.raises(ValueError, match="summary_residual"):
        layer(tf.zeros((2, 16, 12)))
