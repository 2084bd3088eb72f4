"""Readers of local files (image folder, ModelNet40, ShapeNet-55) on tiny
fixtures written to tmp_path: outputs match the files, errors name paths."""

import os

import numpy as np
import pytest
import tensorflow as tf

import data_pipelines
from data_pipelines import pc_norm
from data_pipelines import pointcloud


def _batches(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def _context(pipeline_id):
    return tf.distribute.InputContext(2, pipeline_id, 2)


# --- image folder -----------------------------------------------------------

LABELS = ("cat", "dog")  # label ids are the sorted folder names


def _image(label, i, height=6, width=5):
    """A distinct RGB image per (label, i)."""
    base = np.arange(height * width * 3, dtype=np.int64).reshape(
        height, width, 3
    )
    return ((base * (i + 2) + 97 * label + 13 * i) % 256).astype(np.uint8)


@pytest.fixture()
def image_root(tmp_path):
    images = {}
    for split, count in (("train", 3), ("test", 1)):
        for label, name in enumerate(LABELS):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = _image(label, i + (10 if split == "test" else 0))
                tf.io.write_file(
                    str(folder / f"{i}.png"), tf.io.encode_png(img)
                )
                images[(split, label, i)] = img
    return tmp_path, images


def test_image_folder_matches_files(image_root):
    root, images = image_root
    ds = data_pipelines.get_dataset(
        "image_folder", root=root, image_size=(6, 5), batch_size=2
    )
    assert ds.element_spec["images"].shape == (2, 6, 5, 3)
    got = {}
    for batch in _batches(ds):
        assert batch["labels"].dtype == np.int32
        for img, label in zip(batch["images"], batch["labels"]):
            got[np.round(img * 255).astype(np.uint8).tobytes()] = label
    expected = {
        img.tobytes(): label
        for (split, label, _), img in images.items()
        if split == "train"
    }
    assert got == expected
    assert data_pipelines.image_folder.label_names(root) == list(LABELS)


def test_image_folder_resize_and_grey(image_root):
    root, images = image_root
    ds = data_pipelines.get_dataset(
        "image_folder",
        split="test",
        root=root,
        image_size=4,
        batch_size=2,
        channels=1,
    )
    (batch,) = _batches(ds)
    assert batch["images"].shape == (2, 4, 4, 1)
    assert 0.0 <= batch["images"].min() and batch["images"].max() <= 1.0
    for img, label in zip(batch["images"], batch["labels"]):
        grey = tf.image.rgb_to_grayscale(images[("test", label, 0)])
        want = tf.image.resize(grey, (4, 4)).numpy() / 255.0
        # PNG grey conversion rounds to uint8 before resizing: < 1/255.
        np.testing.assert_allclose(img, want, atol=1.01 / 255)


def test_image_folder_shards_are_disjoint(image_root):
    root, _ = image_root
    seen = []
    for pipeline_id in (0, 1):
        ds = data_pipelines.get_dataset(
            "image_folder",
            root=root,
            image_size=(6, 5),
            batch_size=2,
            input_context=_context(pipeline_id),
        )
        seen.append(
            {img.tobytes() for b in _batches(ds) for img in b["images"]}
        )
    assert len(seen[0]) == len(seen[1]) == 3
    assert not seen[0] & seen[1]


def test_image_folder_errors_name_the_path(image_root, tmp_path):
    root, _ = image_root
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        data_pipelines.get_dataset(
            "image_folder", root=missing, image_size=4, batch_size=1
        )
    with pytest.raises(ValueError, match="'val'.*available.*test.*train"):
        data_pipelines.get_dataset(
            "image_folder",
            split="val",
            root=root,
            image_size=4,
            batch_size=1,
        )
    with pytest.raises(ValueError, match="image_size"):
        data_pipelines.get_dataset("image_folder", root=root, batch_size=1)


# --- ModelNet40 -------------------------------------------------------------

MODELNET_CLASSES = ("airplane", "night_stand", "chair")
MODELNET_SPLITS = {
    "train": (
        "airplane_0001",
        "night_stand_0001",
        "night_stand_0002",
        "chair_0001",
    ),
    "test": ("airplane_0002", "chair_0002"),
}
ROWS = 12


@pytest.fixture()
def modelnet_root(tmp_path):
    root = tmp_path / "modelnet40_normal_resampled"
    root.mkdir()
    (root / "modelnet40_shape_names.txt").write_text(
        "\n".join(MODELNET_CLASSES) + "\n"
    )
    rng = np.random.default_rng(0)
    arrays = {}
    for split, ids in MODELNET_SPLITS.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        for sample_id in ids:
            cls = sample_id.rsplit("_", 1)[0]
            (root / cls).mkdir(exist_ok=True)
            rows = np.round(rng.normal(size=(ROWS, 6)), 6)
            np.savetxt(
                root / cls / f"{sample_id}.txt",
                rows,
                delimiter=",",
                fmt="%.6f",
            )
            arrays[sample_id] = rows
    return root, arrays


def test_modelnet40_first_points_match_files(modelnet_root):
    root, arrays = modelnet_root
    ds = data_pipelines.get_dataset(
        "modelnet40", root=root, num_points=8, batch_size=4, shuffle=False
    )
    (batch,) = _batches(ds)
    ids = MODELNET_SPLITS["train"]
    want = pc_norm(np.stack([arrays[i][:8, :3] for i in ids]))
    np.testing.assert_allclose(batch["points"], want, atol=1e-5)
    labels = [MODELNET_CLASSES.index(i.rsplit("_", 1)[0]) for i in ids]
    np.testing.assert_array_equal(batch["labels"], labels)  # [0, 1, 1, 2]


def test_modelnet40_random_sampling_seeded(modelnet_root):
    root, arrays = modelnet_root

    def build(seed, num_points=5):
        ds = data_pipelines.get_dataset(
            "modelnet40",
            split="test",
            root=root,
            num_points=num_points,
            batch_size=2,
            seed=seed,
            sampling="random",
            shuffle=False,
            repeat=2,
        )
        return [b["points"] for b in _batches(ds)]

    a, b, c = build(0), build(0), build(1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])  # a new subset every epoch
    # With every row sampled, a cloud is a permutation of pc_norm(file).
    (full, _) = build(0, num_points=ROWS)
    want = pc_norm(arrays["airplane_0002"][:, :3])
    sort = lambda p: p[np.lexsort(p.T)]  # noqa: E731
    np.testing.assert_allclose(sort(full[0]), sort(want), atol=1e-5)
    assert not np.allclose(full[0], want, atol=1e-5)


def test_subsample_rows_are_distinct_rows_of_the_input():
    rows = tf.range(40)[:, None] * tf.constant([[1, 10]])
    out = pointcloud.subsample_tf(rows, 15, seed=tf.constant([3, 4]))
    out = out.numpy()
    assert len(set(out[:, 0])) == 15 and set(out[:, 0]) <= set(range(40))
    np.testing.assert_array_equal(out[:, 1], 10 * out[:, 0])
    first = pointcloud.subsample_tf(rows, 15).numpy()
    np.testing.assert_array_equal(first[:, 0], np.arange(15))


def test_modelnet40_errors_name_the_path(modelnet_root, tmp_path):
    root, _ = modelnet_root
    get = lambda **kw: data_pipelines.get_dataset(  # noqa: E731
        "modelnet40", batch_size=1, **kw
    )
    with pytest.raises(FileNotFoundError, match="nowhere"):
        get(root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="root"):
        get()
    with pytest.raises(FileNotFoundError, match="modelnet40_val.txt"):
        get(root=root, split="val")
    os.remove(root / "chair" / "chair_0001.txt")
    with pytest.raises(FileNotFoundError, match="chair_0001.txt"):
        get(root=root)
    (root / "modelnet40_test.txt").write_text("sofa_0001\n")
    with pytest.raises(ValueError, match="sofa"):
        get(root=root, split="test")


def test_modelnet40_too_few_rows_fails_when_read(modelnet_root):
    root, _ = modelnet_root
    ds = data_pipelines.get_dataset(
        "modelnet40", root=root, num_points=ROWS + 1, batch_size=1
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="modelnet40"):
        next(iter(ds))


# --- ShapeNet-55 ------------------------------------------------------------

SHAPENET_FILES = {
    "train": (
        "03001627-aaa.npy",
        "02691156-bbb.npy",
        "03001627-ccc.npy",
        "02691156-ddd.npy",
    ),
    "test": ("03001627-eee.npy", "03001627-fff.npy"),
}
TAXONOMIES = ("02691156", "03001627")  # sorted: labels 0 and 1


@pytest.fixture()
def shapenet_root(tmp_path):
    root = tmp_path / "ShapeNet55-34"
    (root / "shapenet_pc").mkdir(parents=True)
    (root / "ShapeNet-55").mkdir()
    rng = np.random.default_rng(1)
    arrays = {}
    for split, files in SHAPENET_FILES.items():
        (root / "ShapeNet-55" / f"{split}.txt").write_text(
            "\n".join(files) + "\n"
        )
        for name in files:
            arrays[name] = rng.normal(size=(30, 3)).astype(np.float32)
            np.save(root / "shapenet_pc" / name, arrays[name])
    return root, arrays


def test_shapenet55_first_points_and_labels_match_files(shapenet_root):
    root, arrays = shapenet_root
    for split in ("train", "test"):
        files = SHAPENET_FILES[split]
        ds = data_pipelines.get_dataset(
            "shapenet55",
            split=split,
            root=root,
            num_points=10,
            batch_size=2,
            sampling="first",
            shuffle=False,
        )
        points = np.concatenate([b["points"] for b in _batches(ds)])
        labels = np.concatenate([b["labels"] for b in _batches(ds)])
        want = pc_norm(np.stack([arrays[f][:10] for f in files]))
        np.testing.assert_allclose(points, want, atol=1e-5)
        # Test holds one taxonomy only, yet keeps the shared label map.
        want_labels = [TAXONOMIES.index(f.split("-")[0]) for f in files]
        np.testing.assert_array_equal(labels, want_labels)


def test_shapenet55_random_sampling_default(shapenet_root):
    root, arrays = shapenet_root

    def build(seed, num_points=30):
        ds = data_pipelines.get_dataset(
            "shapenet55",
            split="test",
            root=root,
            num_points=num_points,
            batch_size=2,
            seed=seed,
            shuffle=False,
        )
        return _batches(ds)[0]["points"]

    full = build(0)
    sort = lambda p: p[np.lexsort(p.T)]  # noqa: E731
    for got, name in zip(full, SHAPENET_FILES["test"]):
        want = pc_norm(arrays[name])
        np.testing.assert_allclose(sort(got), sort(want), atol=1e-5)
        assert not np.allclose(got, want, atol=1e-5)  # random order
    assert np.array_equal(build(3, 8), build(3, 8))
    assert not np.array_equal(build(3, 8), build(4, 8))
    np.testing.assert_allclose(
        np.linalg.norm(build(3, 8), axis=-1).max(-1), 1.0, atol=1e-6
    )


def test_shapenet55_errors_name_the_path(shapenet_root, tmp_path):
    root, _ = shapenet_root
    get = lambda **kw: data_pipelines.get_dataset(  # noqa: E731
        "shapenet55", batch_size=1, **kw
    )
    with pytest.raises(FileNotFoundError, match="missing_root"):
        get(root=tmp_path / "missing_root")
    with pytest.raises(FileNotFoundError, match="val.txt"):
        get(root=root, split="val")
    os.remove(root / "shapenet_pc" / "02691156-bbb.npy")
    with pytest.raises(FileNotFoundError, match="02691156-bbb.npy"):
        get(root=root)
    with pytest.raises(ValueError, match="taxonomy"):
        get(root=root, split="test", taxonomy_ids=["02691156"])
    np.save(root / "shapenet_pc" / "03001627-eee.npy", np.zeros((4, 2)))
    ds = get(root=root, split="test", num_points=2, shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="eee.npy"):
        next(iter(ds))
