"""Fixed sin-cos position embeddings (Vaswani et al.; MAE's 2-D variant).

These return NumPy arrays: fixed, non-trainable tables that models keep as
constants (MAE freezes them: `requires_grad=False` in the official code).
"""

import numpy as np


def sincos_1d(dim, positions):
    """(len(positions), dim): half sin, half cos, omega = 1/10000^(2i/dim)."""
    if dim % 2:
        raise ValueError(f"sincos_1d: dim must be even; got {dim}.")
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", np.asarray(positions, np.float64).reshape(-1),
                    omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid_size, cls_token=False):
    """(grid_size**2 [+1], dim) table, as MAE's `get_2d_sincos_pos_embed`.

    The first half of the channels encodes the column (w) coordinate, the
    second half the row (h) coordinate, matching the official layout
    (`np.meshgrid(grid_w, grid_h)`). With `cls_token` a zero row is
    prepended.
    """
    if dim % 4:
        raise ValueError(f"sincos_2d: dim must be divisible by 4; got {dim}.")
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    w, h = np.meshgrid(grid_w, grid_h)  # w varies along columns
    emb_w = sincos_1d(dim // 2, w)
    emb_h = sincos_1d(dim // 2, h)
    table = np.concatenate([emb_w, emb_h], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return table.astype(np.float32)
