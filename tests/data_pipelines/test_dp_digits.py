"""digits: values, labels, seeded stratified split, resize, channels."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import data_pipelines
from data_pipelines import digits


@pytest.fixture(scope="module")
def raw():
    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target


def test_load_matches_sklearn_scaled_and_labels(raw):
    images, target = raw
    train_x, train_y = digits.load("train", seed=0)
    test_x, test_y = digits.load("test", seed=0)
    assert train_x.shape[1:] == (8, 8, 1) and train_x.dtype == np.float32
    assert train_y.dtype == np.int32
    assert len(train_y) + len(test_y) == 1797
    assert train_x.min() == 0.0 and train_x.max() == 1.0
    # Every output image is an sklearn image / 16 with its own label.
    lookup = {img.tobytes(): lab for img, lab in zip(images / 16.0, target)}
    for x, y in zip(np.concatenate([train_x, test_x]), np.r_[train_y, test_y]):
        assert lookup[x[..., 0].astype(np.float32).tobytes()] == y
    # Train and test are disjoint and together are the whole set.
    keys = lambda xs: {x.tobytes() for x in xs}  # noqa: E731
    assert not keys(train_x) & keys(test_x)
    assert len(keys(train_x) | keys(test_x)) == len(keys(images / 16.0))


def test_split_is_stratified_and_seeded(raw):
    _, target = raw
    _, y0 = digits.load("test", seed=0)
    counts = np.bincount(y0, minlength=10)
    expected = np.round(0.2 * np.bincount(target, minlength=10))
    np.testing.assert_array_equal(counts, expected)
    x0, _ = digits.load("test", seed=0)
    x0b, _ = digits.load("test", seed=0)
    x1, _ = digits.load("test", seed=1)
    np.testing.assert_array_equal(x0, x0b)
    assert not np.array_equal(x0, x1)
    with pytest.raises(ValueError, match="split"):
        digits.load("validation")


@pytest.mark.parametrize("size", [16, 32])
def test_resize_matches_tf_bilinear_and_channels_replicate(size):
    small, _ = digits.load("test", seed=0)
    big, labels = digits.load("test", seed=0, image_size=size, channels=3)
    assert big.shape == (len(labels), size, size, 3)
    reference = tf.image.resize(small, (size, size), "bilinear").numpy()
    np.testing.assert_allclose(big[..., :1], reference, atol=1e-6)
    np.testing.assert_array_equal(big[..., 0], big[..., 2])
    assert 0.0 <= big.min() and big.max() <= 1.0


def test_get_dataset_digits_batches():
    ds = data_pipelines.get_dataset(
        "digits", split="test", batch_size=50, image_size=16, channels=3
    )
    batches = [{k: v.numpy() for k, v in b.items()} for b in ds]
    assert len(batches) == 359 // 50
    assert batches[0]["images"].shape == (50, 16, 16, 3)
    assert batches[0]["labels"].dtype == np.int32
    # Test split is not shuffled by default: the order of `load`.
    x, y = digits.load("test", seed=0, image_size=16, channels=3)
    np.testing.assert_array_equal(batches[0]["labels"], y[:50])
    np.testing.assert_allclose(batches[0]["images"], x[:50])
