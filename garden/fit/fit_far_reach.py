"""Offline proxy (spec `fit.md` Sec. 6.4 (a)): a far-reaching synthetic task.

Images are random binary 8x8 pixels; FIT groups them into 4 sub-images of
4x4 pixels (the `tiny` preset's grouping: L = 64 tokens, n = 16 per group;
the spec suggests L = 256 in 8 groups, scaled down for CPU time). The label
is the XOR of the first pixel of the first group (top-left) and the last
pixel of the last group (bottom-right). XOR of two bits in different groups
cannot be computed inside any one group, and a linear head on the means of
per-group features only adds a function of each group (u(a) + w(b) cannot
be XOR), so a model whose groups never exchange information stays at
chance (0.5); FIT can solve it only through its read -> global -> write
path (paper Sec. 2: latents carry information between groups).
"""

import keras
import numpy as np

from official import registry

PROXY_CONFIG = dict(
    image_size=8, num_channels=1, patch_size=1, group_size=4,
    latents_per_group=2, x_dim=32, latent_dim=32, x_num_heads=2,
    latent_num_heads=2, num_classes=2,
)


def far_reach_batch(rng, batch_size, image_size=8, group_size=4,
                    spread=True):
    """(images (B, S, S, 1) float32 in {0, 1}, labels (B,) int32).

    Every pixel is a random bit; the label is a XOR b with a = the first
    pixel of the first group, b = the last pixel of the last group. With
    `spread`, a and b fill their whole group (every pixel of the top-left
    sub-image is a, of the bottom-right one b), the other groups stay noise.
    """
    bits = rng.integers(0, 2, (batch_size, image_size, image_size, 1))
    if spread:
        g = group_size
        bits[:, :g, :g] = bits[:, :1, :1]
        bits[:, -g:, -g:] = bits[:, -1:, -1:]
    labels = bits[:, 0, 0, 0] ^ bits[:, -1, -1, 0]
    return bits.astype("float32"), labels.astype("int32")


def train_far_reach(layers="(1)1(1)", steps=800, batch_size=64,
                    learning_rate=1e-3, seed=0, jit_compile=False,
                    **overrides):
    """A FIT classifier with `layers`, trained for `steps` steps (graph
    mode: XLA compilation of the FIT graph takes minutes on 2 CPU cores)."""
    keras.utils.set_random_seed(seed)
    config = dict(PROXY_CONFIG, layers=layers)
    config.update(overrides)
    model = registry.build("fit", preset="tiny", **config)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate),
                  metrics=["accuracy"], jit_compile=jit_compile)
    x, y = far_reach_batch(np.random.default_rng(seed), steps * batch_size)
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return model, history


def far_reach_accuracy(model, num_samples=1024, seed=1):
    x, y = far_reach_batch(np.random.default_rng(seed), num_samples)
    logits = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == y))
