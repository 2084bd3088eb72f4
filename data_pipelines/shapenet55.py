"""Reader for ShapeNet-55 as used by Point-BERT / Point-MAE.

Layout:

    root/shapenet_pc/<taxonomy id>-<model id>.npy   float arrays (8192, 3)
    root/ShapeNet-55/train.txt                      one .npy file name a line
    root/ShapeNet-55/test.txt

Each element: `num_points` points (a seeded random subset by default, new
every epoch, as Point-MAE's `random_sample`, or the first rows), then
`pc_norm`, in that order as in Point-MAE's `datasets/ShapeNet55Dataset.py`.
Label: the index of the taxonomy id among the sorted taxonomy ids listed in
the split files present (train.txt and test.txt together, so both splits use
the same ids; with the full dataset this is the usual 55-class map), or among
`taxonomy_ids` when given. Nothing is downloaded.

Yields {"points": float32 (num_points, 3), "labels": int32}.
"""

import os

import numpy as np
import tensorflow as tf

from data_pipelines import pipeline
from data_pipelines import point_files
from data_pipelines import pointcloud

LAYOUT = "shapenet_pc/*.npy and ShapeNet-55/{train,test}.txt"
SPLIT_DIR = "ShapeNet-55"
POINTS_DIR = "shapenet_pc"


def taxonomy_of(file_name):
    """Taxonomy id of a file name: "02691156-1a04e3e.npy" gives "02691156"."""
    return file_name.split("-", 1)[0]


def sorted_taxonomies(root):
    """Sorted taxonomy ids over all split files in root/ShapeNet-55/."""
    ids = set()
    for split in ("train", "test"):
        path = os.path.join(root, SPLIT_DIR, f"{split}.txt")
        if os.path.isfile(path):
            ids.update(taxonomy_of(f) for f in point_files.read_lines(path, ""))
    return sorted(ids)


def index(root, split, taxonomy_ids=None):
    """(paths, labels, taxonomy_ids) of one split; checks files exist."""
    root = point_files.require_root(root, "shapenet55", LAYOUT)
    files = point_files.read_lines(
        os.path.join(root, SPLIT_DIR, f"{split}.txt"),
        f"ShapeNet-55 split file for split {split!r}",
    )
    if taxonomy_ids is None:
        taxonomy_ids = sorted_taxonomies(root)
    label_of = {t: i for i, t in enumerate(taxonomy_ids)}
    unknown = sorted({taxonomy_of(f) for f in files} - set(label_of))
    if unknown:
        raise ValueError(
            f"shapenet55: taxonomy ids {unknown} of {split}.txt are not in "
            f"taxonomy_ids={list(taxonomy_ids)}."
        )
    paths = [os.path.join(root, POINTS_DIR, f) for f in files]
    labels = [label_of[taxonomy_of(f)] for f in files]
    point_files.require_all_exist(paths, f"shapenet55 ({root!r})")
    return paths, labels, list(taxonomy_ids)


def _load_npy(path):
    path = path.decode("utf-8")
    points = np.load(path, allow_pickle=False)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(
            f"{path!r}: expected an (N, 3) array, got shape {points.shape}."
        )
    return points[:, :3].astype(np.float32)


def source(
    split="train",
    seed=0,
    root=None,
    num_points=1024,
    sampling="random",
    taxonomy_ids=None,
):
    """Source of ShapeNet-55 point clouds (see the module docstring).

    Args:
        split: "train" or "test" (reads `ShapeNet-55/<split>.txt`).
        seed: int. Unused here (the pipeline passes per-element seeds).
        root: path holding `shapenet_pc/` and `ShapeNet-55/`.
        num_points: int. Points per cloud (Point-MAE: 1024).
        sampling: "random" (default) or "first".
        taxonomy_ids: optional sequence fixing the label order.

    Raises:
        ValueError / FileNotFoundError naming the missing path or bad entry.
    """
    del seed
    point_files.check_sampling(sampling, num_points)
    paths, labels, _ = index(root, split, taxonomy_ids)
    if not paths:
        raise ValueError(f"ShapeNet-55/{split}.txt in {root!r} lists no files.")
    ds = tf.data.Dataset.from_tensor_slices(
        {"path": paths, "labels": tf.constant(labels, tf.int32)}
    )
    num_points = int(num_points)

    def load(element, seed):
        points = tf.numpy_function(
            _load_npy, [element["path"]], tf.float32, stateful=False
        )
        points = tf.ensure_shape(points, (None, 3))
        points = pointcloud.subsample_tf(
            points,
            num_points,
            seed if sampling == "random" else None,
            name="shapenet55",
        )
        return {
            "points": tf.ensure_shape(
                pointcloud.pc_norm_tf(points), (num_points, 3)
            ),
            "labels": element["labels"],
        }

    return pipeline.Source(ds, len(paths), load)
