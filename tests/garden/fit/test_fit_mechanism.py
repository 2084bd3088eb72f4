"""FIT's mechanism: local layers keep groups apart; only the read -> global
-> write path carries information between groups (paper Sec. 2; spec
`fit.md` Sec. 6.2 checks 1-3)."""

import keras
import numpy as np
import pytest
from keras import ops

from garden.fit import FITEncoder
from official.layers import TransformerBlock

T, N, C = 4, 16, 3
# Measured: with the path intact, changing one group moves every other
# group's outputs by 0.11-0.75 (max abs; a group's own outputs by 2.4-3.8);
# with the path cut (no global layers, no read, or no write), by exactly 0.
MOVED = 1e-3


def encoder(layers="(1)1(1)", cls=FITEncoder, **kwargs):
    keras.utils.set_random_seed(0)
    enc = cls(layers, num_groups=T, tokens_per_group=N, latents_per_group=2,
              x_dim=32, latent_dim=24, x_num_heads=2, latent_num_heads=3,
              name="enc", **kwargs)
    enc.build((None, T, N, C))
    return enc


def group_influence(enc):
    """(T, T) matrix: max |change| of group b's outputs (data tokens and
    latents) when only group a's input tokens change (row a, column b)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, T, N, C)).astype("float32")
    base = [ops.convert_to_numpy(o) for o in enc(x)]
    out = np.zeros((T, T))
    for a in range(T):
        x2 = x.copy()
        x2[:, a] += rng.normal(size=(2, N, C)).astype("float32")
        new = [ops.convert_to_numpy(o) for o in enc(x2)]
        for b in range(T):
            out[a, b] = max(np.abs(n[:, b] - o[:, b]).max()
                            for n, o in zip(new, base))
    return out


def data_influence(enc):
    """Like `group_influence` for the data-token outputs only."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, T, N, C)).astype("float32")
    base = ops.convert_to_numpy(enc(x)[0])
    out = np.zeros((T, T))
    for a in range(T):
        x2 = x.copy()
        x2[:, a] += rng.normal(size=(2, N, C)).astype("float32")
        new = ops.convert_to_numpy(enc(x2)[0])
        out[a] = np.abs(new - base).max(axis=(0, 2, 3))
    return out


def off_diagonal(m):
    return m[~np.eye(T, dtype=bool)]


def test_global_path_carries_information_between_every_pair_of_groups():
    infl = group_influence(encoder("(1)1(1)"))
    assert off_diagonal(infl).min() > MOVED, infl


def test_without_global_layers_groups_are_independent():
    infl = group_influence(encoder("(2)"))  # same local depth, path cut
    assert np.all(off_diagonal(infl) == 0.0), infl
    assert np.diag(infl).min() > MOVED  # a group still sees itself


class NoWrite(FITEncoder):
    """Broken variant: latents never write back into the data tokens."""

    def build(self, input_shape):
        super().build(input_shape)
        self.plan = [dict(e, write=None) for e in self.plan]


class NoRead(FITEncoder):
    """Broken variant: latents never read the data tokens."""

    def build(self, input_shape):
        super().build(input_shape)
        for layer in self.read:
            layer.call = lambda query, context: query


@pytest.mark.parametrize("cls", [NoWrite, NoRead])
def test_cutting_read_or_write_isolates_the_data_tokens(cls):
    intact = data_influence(encoder("(1)1(1)"))
    cut = data_influence(encoder("(1)1(1)", cls=cls))
    assert off_diagonal(intact).min() > MOVED, intact
    assert np.all(off_diagonal(cut) == 0.0), cut


def test_causal_latents_see_only_earlier_groups():
    infl = group_influence(encoder("(1)1(1)", latent_mask="causal"))
    later = np.triu(np.ones((T, T), bool), 1)  # a < b: a earlier than b
    assert np.all(infl[later.T] == 0.0), infl  # later groups never leak back
    assert infl[later].min() > MOVED, infl  # earlier groups reach later ones


def test_one_group_local_only_is_a_plain_transformer_encoder():
    """t = 1, layers "(k)": stem + positions + k pre-LN blocks + LN."""
    keras.utils.set_random_seed(1)
    k, n, c = 3, 10, 5
    enc = FITEncoder("(3)", num_groups=1, tokens_per_group=n,
                     latents_per_group=2, x_dim=32, latent_dim=32,
                     x_num_heads=4, latent_num_heads=4)
    enc.build((None, 1, n, c))
    x = np.random.default_rng(1).normal(size=(2, 1, n, c)).astype("float32")
    got = ops.convert_to_numpy(enc(x)[0])[:, 0]

    stem = keras.layers.Dense(32)
    stem_norm = keras.layers.LayerNormalization(epsilon=1e-6)
    blocks = [TransformerBlock(4, layer_norm_epsilon=1e-6) for _ in range(k)]
    norm = keras.layers.LayerNormalization(epsilon=1e-6)
    stem.build((None, n, c))
    stem_norm.build((None, n, 32))
    norm.build((None, n, 32))
    for b, src in zip(blocks, enc.local_blocks):
        b.build((None, n, 32))
        b.set_weights(src.get_weights())
    stem.set_weights(enc.stem.get_weights())
    stem_norm.set_weights(enc.stem_norm.get_weights())
    norm.set_weights(enc.x_norm.get_weights())
    h = stem_norm(stem(x[:, 0])) + enc.x_pos_embed
    for b in blocks:
        h = b(h)
    want = ops.convert_to_numpy(norm(h))
    np.testing.assert_allclose(got, want, atol=1e-6)
