"""FIT helpers: layer-string grammar, chunk-causal mask, sub-image grouping."""

import numpy as np
import pytest
from keras import ops

from garden.fit import chunk_causal_mask
from garden.fit import group_images
from garden.fit import parse_layers


@pytest.mark.parametrize("spec,blocks", [
    ("(2)", [(2, 0)]),
    ("(2)4(2)", [(2, 4), (2, 0)]),
    ("(1)1(1)", [(1, 1), (1, 0)]),
    ("(2)4(2)4(2)4(2)", [(2, 4), (2, 4), (2, 4), (2, 0)]),
    ("(0)3", [(0, 3)]),
    ("(2)4(2)1", [(2, 4), (2, 1)]),
])
def test_parse_layers(spec, blocks):
    assert parse_layers(spec) == blocks


@pytest.mark.parametrize("spec", ["", "2", "(2", "(a)1", "(2)0(2)", "(1)(1)",
                                  "2(1)"])
def test_parse_layers_rejects(spec):
    with pytest.raises(ValueError):
        parse_layers(spec)


def test_chunk_causal_mask_is_block_lower_triangular():
    t, m = 4, 3
    got = ops.convert_to_numpy(chunk_causal_mask(t, m))
    # Official get_chunk_ar_mask: masked = future AND not in the same chunk.
    i, j = np.meshgrid(np.arange(t * m), np.arange(t * m), indexing="ij")
    masked = (j > i) & (i // m != j // m)
    np.testing.assert_array_equal(got, ~masked)
    assert got[:m, :m].all() and not got[:m, m:].any()


def _reference_groups(images, g, p):
    """Official order: sub-images row-major, then raster patches, each
    patch (row, col, channel) (split_image_into_sub_images +
    tf.image.extract_patches)."""
    b, h, w, c = images.shape
    groups = []
    for i in range(h // g):
        for j in range(w // g):
            sub = images[:, i * g:(i + 1) * g, j * g:(j + 1) * g]
            patches = []
            for r in range(g // p):
                for s in range(g // p):
                    patch = sub[:, r * p:(r + 1) * p, s * p:(s + 1) * p]
                    patches.append(patch.reshape(b, -1))
            groups.append(np.stack(patches, 1))
    return np.stack(groups, 1)


@pytest.mark.parametrize("size,g,p,c", [(8, 4, 1, 1), (16, 8, 2, 3),
                                        (12, 6, 3, 2)])
def test_group_images_matches_official_order(size, g, p, c):
    images = np.random.default_rng(0).normal(
        size=(2, size, size, c)).astype("float32")
    got = ops.convert_to_numpy(group_images(images, g, p))
    np.testing.assert_array_equal(got, _reference_groups(images, g, p))


def test_group_images_rejects_bad_sizes():
    with pytest.raises(ValueError):
        group_images(np.zeros((1, 10, 10, 1), "float32"), 4, 1)


def test_reference_patch_order_is_tf_extract_patches():
    import tensorflow as tf

    images = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(
        "float32")
    want = tf.image.extract_patches(images, [1, 2, 2, 1], [1, 2, 2, 1],
                                    [1, 1, 1, 1], "VALID").numpy()
    got = _reference_groups(images, 8, 2)[:, 0]  # one group = whole image
    np.testing.assert_array_equal(got, want.reshape(2, 16, 12))
