"""Naive and semi-parallel sampling for `AxialTransformer` (§3.2, §4).

Official code: `Transformer2d.sample_slow` / `sample_fast` and
`Transformer3d._sample` (google-research/google-research
`axial/transformers.py`). Pixels are drawn in raster order within a channel
slice, slices one after another, as argmax(logits + noise) with Gumbel noise
(the Gumbel-max trick), so equal noise gives equal samples.

* naive (`fast=False`): the whole model is re-run for every pixel:
  H·W full evaluations per channel.
* semi-parallel (`fast=True`): per row r the outer (upper-context) decoder
  runs once on the partly sampled image (H evaluations of O(L^1.5) per
  channel); then for each column only the inner row decoder runs on that
  single 1 x W row with the cached context u[r] (H·W evaluations of O(W^2)).

Both return identical samples: the upper context of row r only depends on
rows < r, and the inner decoder of pixel (r, c) only on (r, c' < c), which
are the same in both samplers when pixel (r, c) is drawn.
"""

import keras
from keras import ops


def gumbel_noise(shape, seed=None, temperature=1.0):
    """Gumbel(0, 1) noise times `temperature` (argmax(logits + noise)
    samples softmax(logits / temperature))."""
    u = keras.random.uniform(shape, minval=1e-7, maxval=1.0 - 1e-7,
                             seed=seed)
    return -ops.log(-ops.log(u)) * temperature


def _row(x, r):
    """x[:, r:r+1] for a scalar tensor r."""
    return ops.take(x, ops.reshape(r, (1,)), axis=1)


def _select(h, w, c, num_channels, row=None, col=None):
    """Boolean (1, H, W, C): row `row` (all rows if None), column `col`
    (all columns if None), channel `c`."""
    rows = ops.ones((h,), "bool") if row is None else ops.equal(
        ops.arange(h), row)
    cols = ops.ones((w,), "bool") if col is None else ops.equal(
        ops.arange(w), col)
    chans = ops.equal(ops.arange(num_channels), c)
    sel = ops.logical_and(rows[:, None, None], cols[None, :, None])
    return ops.logical_and(sel, chans[None, None, :])[None]


def _draw(logits, noise):
    return ops.cast(ops.argmax(logits + noise, axis=-1), "int32")


def _slice_slow(model, noise, images, acc, c):
    h, w, nc = model.image_height, model.image_width, model.num_channels
    k = model.num_values
    cond = model.slice_context(images, c)
    noise_flat = ops.reshape(noise[:, :, :, c, :], (-1, h * w, k))

    def pixel(i, state):
        images, acc = state
        logits = model.decode_slice(model.embed(images[..., c]), cond)
        pix = ops.take(ops.reshape(logits, (-1, h * w, k)), i, axis=1)
        sample = _draw(pix, ops.take(noise_flat, i, axis=1))
        sel = _select(h, w, c, nc, row=i // w, col=i % w)
        images = ops.where(sel, sample[:, None, None, None], images)
        acc = ops.where(sel[..., None], pix[:, None, None, None, :], acc)
        return images, acc

    return ops.fori_loop(0, h * w, pixel, (images, acc))


def _slice_fast(model, noise, images, acc, c):
    h, w, nc = model.image_height, model.image_width, model.num_channels
    cond = model.slice_context(images, c)
    pos = model.pos_embedding.table()[None]
    noise_c = noise[:, :, :, c, :]

    def row_step(r, state):
        images, acc = state
        # The upper context once per row (cost of the outer decoder).
        u = model.upper_context(model.embed(images[..., c]), cond)
        row_u, row_pos = _row(u, r), _row(pos, r)
        row_cond = None if cond is None else _row(cond, r)
        row_noise = ops.take(noise_c, r, axis=1)  # (B, W, K)
        empty = ops.zeros_like(_row(images[..., c], r))  # (B, 1, W)

        def pixel(col, row_state):
            row, row_logits = row_state
            z = model.row_decoder(model.embed(row), row_u, row_pos, row_cond)
            logits = model.final_logits(z)[:, 0]  # (B, W, K)
            pix = ops.take(logits, col, axis=1)
            sample = _draw(pix, ops.take(row_noise, col, axis=1))
            at = ops.equal(ops.arange(w), col)
            row = ops.where(at[None, None], sample[:, None, None], row)
            row_logits = ops.where(at[None, :, None], pix[:, None],
                                   row_logits)
            return row, row_logits

        row, row_logits = ops.fori_loop(
            0, w, pixel, (empty, ops.zeros_like(row_noise)))
        sel = _select(h, w, c, nc, row=r)
        images = ops.where(sel, row[:, 0, :, None][:, None], images)
        acc = ops.where(sel[..., None], row_logits[:, None, :, None, :], acc)
        return images, acc

    return ops.fori_loop(0, h, row_step, (images, acc))


def sample(model, noise, fast=True, return_logits=False):
    """Samples images from `noise` (B, H, W, C, K) (Gumbel noise).

    Returns int32 images (B, H, W, C); with `return_logits`, also the
    (B, H, W, C, K) logits each pixel was drawn from.
    """
    noise = ops.cast(noise, "float32")
    images = ops.zeros_like(noise[..., 0], dtype="int32")
    acc = ops.zeros_like(noise)
    step = _slice_fast if fast else _slice_slow
    for c in range(model.num_channels):
        images, acc = step(model, noise, images, acc, c)
    return (images, acc) if return_logits else images
