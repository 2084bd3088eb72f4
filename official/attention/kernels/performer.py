"""`performer`: FAVOR+ attention with positive orthogonal random features.

Choromanski et al. 2021, "Rethinking Attention with Performers", ICLR,
arXiv 2009.14794 (garden spec `efficient_attention_survey.md` Sec. 8.2).

Positive random features (Lemma 1, Eq. 7): with x = q * scale**0.5 (for the
default scale 1/sqrt(D), x = q / D**(1/4)) and rows w_r of W (m, D),

    phi(x) = exp(-||x||^2 / 2) / sqrt(m) * [exp(w_1.x), ..., exp(w_m.x)],
    E[phi(q).phi(k)] = exp(scale * q.k)       (w_r ~ N(0, I_D)),

so o_i = phi(q_i) sum_j phi(k_j) v_j^T / phi(q_i) sum_j phi(k_j) estimates
softmax attention in O((T + S) m D) (Eq. 4-5). W is orthogonal (Sec. 2.4,
"ORF": Gaussian blocks orthogonalised by QR, each row rescaled to a chi(D)
norm, as `create_projection_matrix` in the official code). Causal attention
(Sec. 2.6, prefix sums): S_i = sum_{j<=i} phi(k_j) v_j^T, z_i = sum_{j<=i}
phi(k_j), computed in chunks of `chunk_size`: masked (C x C) products inside
a chunk, a prefix scan (`_approx_utils.prefix_scan`) of per-chunk states
across chunks. Both forms loop over blocks of `chunk_size` positions
(`keras.ops.map`), computing each block's features inside the loop, so the
working set is one block whatever L is: O(L m D) time, O(L D + (L / C) m D)
memory, no (T, S) array.

Numerical stabilisation (the official code subtracts maxima before exp):
the factor exp(c) cancels between numerator and denominator only when it
is shared, so
- each query row is divided by its own max feature (exact);
- non-causal: keys share one max per (batch, head) over all valid keys;
- causal: a shared maximum over *all* keys would let a later key change
  earlier outputs (by rounding, or by underflow when a later key is large).
  Instead each key keeps its own log-scale m_j, and sums are referenced to
  the running maximum R_i = max_{j<=i} m_j, rescaled with exp(R_old - R_new)
  as in online softmax. Every output then depends on keys j <= p_i only,
  bit for bit.
The stabilisers are constants of the estimator (stop_gradient).

Masks: a key-padding mask (no variation along queries) zeroes the masked
keys' features and keeps the linear cost. A mask that varies along queries
cannot be factorised; it falls back to the explicit masked weights
phi(q_i).phi(k_j) (O(T S m), same estimator). A row with no allowed key
(or whose feature products all underflow) returns 0.

Weights: `MultiHeadAttention(kernel="performer")` owns W as a non-trainable
weight `performer_features` (num_features, D) through
`register_kernel(params=...)`: drawn once (option `seed`; None = a fresh
seed from NumPy's global RNG), saved with the model; `redraw_features`
draws a new W (the paper redraws periodically during training). Functional
calls pass `random_features=` or get W drawn from `seed` (default 0).
"""

import math

import keras
import numpy as np
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels._approx_utils import NEG
from official.attention.kernels._approx_utils import check_bool
from official.attention.kernels._approx_utils import check_int
from official.attention.kernels._approx_utils import exclusive
from official.attention.kernels._approx_utils import key_padding
from official.attention.kernels._approx_utils import numpy_rng
from official.attention.kernels._approx_utils import pad_axis
from official.attention.kernels._approx_utils import prefix_scan
from official.attention.kernels._approx_utils import safe_divide
from official.attention.kernels.block_mask import take_block
from official.attention.kernels.common import combined_mask

NAME = "performer"
DEFAULT_FEATURES = 256


# ------------------------------------------------------------ random features


def draw_random_features(num_features, dim, seed=0, orthogonal=True):
    """(num_features, dim) float64 W: orthogonal random features (Sec. 2.4).

    orthogonal: Gaussian (dim x dim) blocks -> QR -> orthonormal rows
    (sign-corrected so the block is Haar-distributed), each row rescaled to
    the norm of an independent N(0, I_dim) vector (a chi(dim) sample, the
    official `scaling=0`), so every row is marginally N(0, I) while rows
    within a block are exactly orthogonal. Otherwise i.i.d. N(0, I) rows.
    """
    rng = numpy_rng(seed)
    if not orthogonal:
        return rng.standard_normal((num_features, dim))
    blocks = []
    for _ in range(-(-num_features // dim)):
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        blocks.append((q * np.sign(np.diag(r))).T)
    w = np.concatenate(blocks, axis=0)[:num_features]
    norms = np.linalg.norm(rng.standard_normal((num_features, dim)), axis=1)
    return w * norms[:, None]


class RandomFeatureInitializer(keras.initializers.Initializer):
    """Initializer drawing `draw_random_features(*shape, seed, orthogonal)`."""

    def __init__(self, seed=None, orthogonal=True):
        self.seed = seed
        self.orthogonal = orthogonal

    def __call__(self, shape, dtype=None):
        w = draw_random_features(shape[0], shape[1], self.seed, self.orthogonal)
        return ops.convert_to_tensor(w, dtype=dtype or "float32")

    def get_config(self):
        return {"seed": self.seed, "orthogonal": self.orthogonal}


def performer_params(
    layer, query_shape, key_shape, num_heads, num_kv_heads, key_dim, options
):
    """The non-trainable W (num_features, key_dim), shared by all heads (as
    the official `projection_matrix`)."""
    m = options.get("num_features") or DEFAULT_FEATURES
    check_int(NAME, "num_features", m)
    orthogonal = options.get("orthogonal", True)
    check_bool(NAME, "orthogonal", orthogonal)
    w = layer.add_weight(
        name="performer_features",
        shape=(m, key_dim),
        initializer=RandomFeatureInitializer(options.get("seed"), orthogonal),
        trainable=False,
    )
    return {"random_features": w}


def redraw_features(layer, seed=None):
    """Assigns a fresh W to a `MultiHeadAttention(kernel="performer")`."""
    w = layer.kernel_params["random_features"]
    orthogonal = layer.kernel_options.get("orthogonal", True)
    new = draw_random_features(w.shape[0], w.shape[1], seed, orthogonal)
    w.assign(ops.convert_to_tensor(new, dtype=w.dtype))


# ------------------------------------------------------------------ features


def log_features(x, w):
    """log of phi(x) * sqrt(m): w.x - ||x||^2 / 2 (Lemma 1), x (..., D),
    w (m, D) -> (..., m)."""
    proj = ops.matmul(x, ops.transpose(w))
    return proj - 0.5 * ops.sum(x * x, axis=-1, keepdims=True)


def query_features(lq):
    """exp(lq - max_r lq): each row divided by its own max (cancels)."""
    return ops.exp(lq - ops.stop_gradient(ops.max(lq, axis=-1, keepdims=True)))


def key_scales(lk, valid):
    """Per-key log scale m_j = max_r lk_j (NEG for invalid keys) and the
    stabilised features exp(lk_j - m_j) <= 1 (0 for invalid keys).

    lk (B, S, Hkv, m); valid None or boolean (B|1, S)."""
    mj = ops.stop_gradient(ops.max(lk, axis=-1))  # (B, S, Hkv)
    if valid is None:
        return mj, ops.exp(lk - mj[..., None])
    vk = valid[:, :, None]
    mj = ops.where(vk, mj, NEG)
    ek = ops.exp(ops.where(vk[..., None], lk - mj[..., None], NEG))
    return mj, ek


# ------------------------------------------------------------------- forms


def quadratic_form(fq, mj, ek, v, allowed):
    """Explicit masked weights A_ij = phi(q_i).phi(k_j) (up to per-row
    constants), referenced to each row's max over its allowed keys (so only
    allowed keys enter a row). allowed broadcastable to (B, 1, T, S)."""
    dots = ops.einsum("btkgm,bskm->bkgts", fq, ek)
    mk = ops.transpose(mj, (0, 2, 1))[:, :, None, None, :]  # (B,Hkv,1,1,S)
    al = allowed[:, :, None] if allowed is not None else None  # +G axis
    if al is not None:
        mk_allowed = ops.where(al, mk, NEG)
    else:
        mk_allowed = mk
    ref = ops.stop_gradient(ops.max(mk_allowed, axis=-1, keepdims=True))
    w = dots * ops.exp(ops.minimum(mk_allowed - ref, 0.0))
    if al is not None:
        w = ops.where(al, w, 0.0)
    num = ops.einsum("bkgts,bskd->btkgd", w, v)
    den = ops.transpose(ops.sum(w, axis=-1), (0, 3, 1, 2))
    return safe_divide(num, den)


def _merge_states(a, b):
    """(M, S, z) o (M', S', z'): sums referenced to max(M, M') (the
    online-softmax rescaling; identity (NEG, 0, 0))."""
    m1, s1, z1 = a
    m2, s2, z2 = b
    m = ops.maximum(m1, m2)
    a1, a2 = ops.exp(m1 - m), ops.exp(m2 - m)
    return (
        m,
        a1[..., None, None] * s1 + a2[..., None, None] * s2,
        (a1[..., None] * z1 + a2[..., None] * z2),
    )


def chunk_causal_mask(chunk):
    """(C, C) boolean, key j <= query i inside a chunk."""
    return ops.tril(ops.ones((chunk, chunk), "bool"))


class _Blocks:
    """Feature maps of one sequence block, computed inside the block loops
    so the working set stays one block (O(C m) per head), whatever L is.

    xq (B, N, Hkv, G, D), xk (B, N, Hkv, D), v (B, N, Hkv, D), valid None
    or (B|1, N); N a multiple of c."""

    def __init__(self, xq, xk, v, valid, w, c):
        self.xq, self.xk, self.v, self.valid, self.w, self.c = (
            xq,
            xk,
            v,
            valid,
            w,
            c,
        )

    def queries(self, n):
        return query_features(
            log_features(take_block(self.xq, 1, n * self.c, self.c), self.w)
        )

    def keys(self, n):
        """(mj, ek, v) of block n (see key_scales)."""
        valid = None
        if self.valid is not None:
            valid = take_block(self.valid, 1, n * self.c, self.c)
        lk = log_features(take_block(self.xk, 1, n * self.c, self.c), self.w)
        mj, ek = key_scales(lk, valid)
        return mj, ek, take_block(self.v, 1, n * self.c, self.c)

    def state(self, n):
        """(M, sum phi(k) v^T, sum phi(k)) of block n referenced to its own
        max M (B, Hkv), (B, Hkv, m, D), (B, Hkv, m)."""
        mj, ek, v = self.keys(n)
        mc = ops.max(mj, axis=1)
        wk = ek * ops.exp(mj - mc[:, None])[..., None]
        return mc, ops.einsum("bckm,bckd->bkmd", wk, v), ops.sum(wk, axis=1)


def _block_states(blocks, nb):
    return ops.map(blocks.state, ops.arange(nb, dtype="int32"))


def _noncausal(blocks, nq, nk):
    """Linear form phi(Q) (phi(K)^T V): key-block states merged with one
    shared reference (their max), then query blocks."""
    mc, u, z = _block_states(blocks, nk)  # (nk, B, Hkv[, m[, D]])
    ref = ops.max(mc, axis=0)
    a = ops.exp(mc - ref)
    kv = ops.sum(a[..., None, None] * u, axis=0)  # (B, Hkv, m, D)
    z = ops.sum(a[..., None] * z, axis=0)

    def rows(n):
        fq = blocks.queries(n)
        num = ops.einsum("bckgm,bkmd->bckgd", fq, kv)
        return safe_divide(num, ops.einsum("bckgm,bkm->bckg", fq, z))

    return ops.map(rows, ops.arange(nq, dtype="int32"))


def _merge_states(a, b):
    """(M, S, z) o (M', S', z'): sums referenced to max(M, M') (the
    online-softmax rescaling; identity (NEG, 0, 0))."""
    m1, s1, z1 = a
    m2, s2, z2 = b
    m = ops.maximum(m1, m2)
    a1, a2 = ops.exp(m1 - m), ops.exp(m2 - m)
    return (
        m,
        a1[..., None, None] * s1 + a2[..., None, None] * s2,
        (a1[..., None] * z1 + a2[..., None] * z2),
    )


def _prefix_states(states):
    """Exclusive prefix merge over blocks (block n's prefix is built from
    blocks < n only)."""
    inclusive = prefix_scan(_merge_states, states)
    return tuple(exclusive(x, 0, f) for x, f in zip(inclusive, (NEG, 0.0, 0.0)))


def _causal(blocks, nc):
    """Causal prefix sums with a running key reference (module docstring);
    query i sees keys j <= i (aligned, N = nc * c)."""
    c = blocks.c
    tri = chunk_causal_mask(c)
    p_all, s_all, z_all = _prefix_states(_block_states(blocks, nc))

    def rows(args):
        n, p, s_prev, z_prev = args  # p (B, Hkv), s_prev (B, Hkv, m, D)
        fq = blocks.queries(n)  # (B, C, Hkv, G, m)
        mj, ek, v = blocks.keys(n)
        mk = ops.transpose(mj, (0, 2, 1))  # (B, Hkv, C)
        # Running reference R_i = max(P_n, max_{j<=i in block} m_j).
        local = ops.max(ops.where(tri, mk[..., None, :], NEG), axis=-1)
        r = ops.maximum(p[..., None], local)  # (B, Hkv, C)
        # In-block products, each key scaled by exp(m_j - R_i) <= 1.
        scale = ops.exp(ops.where(tri, mk[..., None, :] - r[..., None], NEG))
        a = ops.einsum("bckgm,bskm->bkgcs", fq, ek) * scale[:, :, None]
        num = ops.einsum("bkgcs,bskd->bkgcd", a, v)
        den = ops.sum(a, axis=-1)
        # Earlier blocks: exp(P_n - R_i) phi(q_i).S_n (P_n <= R_i).
        carry = ops.exp(p[..., None] - r)[:, :, None]  # (B, Hkv, 1, C)
        num = num + carry[..., None] * ops.einsum(
            "bckgm,bkmd->bkgcd", fq, s_prev
        )
        den = den + carry * ops.einsum("bckgm,bkm->bkgc", fq, z_prev)
        out = safe_divide(num, den)  # (B, Hkv, G, C, D)
        return ops.transpose(out, (0, 3, 1, 2, 4))

    return ops.map(rows, (ops.arange(nc, dtype="int32"), p_all, s_all, z_all))


def _unblock(out, t0, t):
    """(nb, B, c, Hkv, G, D) -> rows t0 .. t0 + t of (B, nb c, Hkv, G, D)."""
    shape = ops.shape(out)
    out = ops.transpose(out, (1, 0, 2, 3, 4, 5))
    out = ops.reshape(out, (shape[1], -1) + tuple(shape[3:]))
    return out[:, t0 : t0 + t]


def _linear(xq, xk, v, valid, w, causal, chunk):
    """Blocked linear forms. Causal aligns query i with key i + S - T by
    front padding (padded keys invalid); both pad to whole blocks."""
    t, s = xq.shape[1], xk.shape[1]
    if causal:
        n = max(t, s)
        q_front, k_front = n - t, n - s
        tq = tk = n
    else:
        q_front = k_front = 0
        tq, tk = t, s
    c = max(1, min(chunk, max(tq, tk)))
    nq, nk = -(-tq // c), -(-tk // c)
    if valid is None and (k_front or nk * c != tk):
        valid = ops.ones((1, s), "bool")
    xq = pad_axis(pad_axis(xq, 1, q_front, before=True), 1, nq * c - tq)
    xk = pad_axis(pad_axis(xk, 1, k_front, before=True), 1, nk * c - tk)
    v = pad_axis(pad_axis(v, 1, k_front, before=True), 1, nk * c - tk)
    if valid is not None:
        valid = pad_axis(valid, 1, k_front, value=False, before=True)
        valid = pad_axis(valid, 1, nk * c - tk, value=False)
    blocks = _Blocks(xq, xk, v, valid, w, c)
    out = _causal(blocks, nq) if causal else _noncausal(blocks, nq, nk)
    return _unblock(out, q_front, t)


# -------------------------------------------------------------------- kernel


@register_kernel(NAME, params=performer_params)
def performer_attention(
    query,
    key,
    value,
    causal=False,
    mask=None,
    scale=None,
    num_features=None,
    random_features=None,
    seed=None,
    orthogonal=True,
    chunk_size=128,
):
    """FAVOR+ softmax-kernel attention (Performer).

    Options:
        scale: float or None. Logit scale; None = 1 / sqrt(D).
        num_features: int or None. m, the number of random features (None:
            random_features' rows, else 256).
        random_features: (m, D) tensor W or None (drawn from `seed`).
        seed: int or None. Seed of W when it is drawn here (None = 0).
        orthogonal: bool. Orthogonal (True) or i.i.d. Gaussian features.
        chunk_size: int. Causal chunk length C (cost O(T C m + T m D)).
    """
    check_int(NAME, "chunk_size", chunk_size)
    check_bool(NAME, "orthogonal", orthogonal)
    d = query.shape[3]
    if num_features is not None:
        check_int(NAME, "num_features", num_features)
    if random_features is None:
        m = num_features or DEFAULT_FEATURES
        w = draw_random_features(m, d, 0 if seed is None else seed, orthogonal)
        w = ops.convert_to_tensor(w, "float32")
    else:
        w = ops.cast(random_features, "float32")
        if len(w.shape) != 2 or w.shape[1] != d:
            raise ValueError(
                f"attention kernel '{NAME}': random_features must be (m, "
                f"{d}); received {tuple(w.shape)}."
            )
        if num_features is not None and num_features != w.shape[0]:
            raise ValueError(
                f"attention kernel '{NAME}': num_features={num_features} but "
                f"random_features has {w.shape[0]} rows."
            )
    w = ops.stop_gradient(w)  # random features are never trained
    b = ops.shape(query)[0]
    t, s = query.shape[1], key.shape[1]
    if t is None or s is None:
        raise ValueError(
            f"attention kernel '{NAME}': needs static sequence lengths (the "
            "blocks have static sizes); pad to a fixed length."
        )
    h, h_kv = query.shape[2], key.shape[2]
    g = h // h_kv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    root = math.sqrt(scale)
    xq = ops.reshape(ops.cast(query, "float32") * root, (b, t, h_kv, g, d))
    xk = ops.cast(key, "float32") * root
    v = ops.cast(value, "float32")
    valid = key_padding(mask)
    if mask is not None and valid is None:  # varies along queries
        fq = query_features(log_features(xq, w))
        mj, ek = key_scales(log_features(xk, w), None)
        allowed = combined_mask(t, s, causal, mask)
        out = quadratic_form(fq, mj, ek, v, allowed)
    else:
        if valid is not None and valid.shape[1] == 1:
            valid = ops.broadcast_to(valid, (ops.shape(valid)[0], s))
        out = _linear(xq, xk, v, valid, w, causal, chunk_size)
    return ops.cast(ops.reshape(out, (b, t, h, d)), query.dtype)
