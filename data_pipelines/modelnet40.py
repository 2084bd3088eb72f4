"""Reader for ModelNet40 in the `modelnet40_normal_resampled` layout.

Layout (as distributed with PointNet++ / Point-BERT / Point-MAE):

    root/modelnet40_shape_names.txt   one class name per line (label = line)
    root/modelnet40_train.txt         sample ids, e.g. "night_stand_0001"
    root/modelnet40_test.txt
    root/<class>/<sample id>.txt      rows "x,y,z,nx,ny,nz"

The class of an id is everything before its last "_" (as in Point-MAE's
`datasets/ModelNetDataset.py`). Each element: the first `num_points` rows
(`sampling="first"`) or a seeded random subset (`sampling="random"`, a new
subset every epoch, deterministic for the seed), xyz only, then `pc_norm`.
Only the sampled rows are parsed. Nothing is downloaded.

Yields {"points": float32 (num_points, 3), "labels": int32}.
"""

import os

import tensorflow as tf

from data_pipelines import pipeline
from data_pipelines import point_files
from data_pipelines import pointcloud

LAYOUT = (
    "modelnet40_shape_names.txt, modelnet40_<split>.txt and "
    "<class>/<id>.txt files"
)


def parse_points_text(text, num_points, seed=None, name="points"):
    """xyz of comma-separated rows in a text tensor, sampled, as float32.

    Args:
        text: scalar string tensor, the file's contents.
        num_points: int.
        seed: None (first rows) or a (2,) int tensor (random subset).
        name: for the error message when the file has too few rows.

    Returns:
        float32 (num_points, 3).
    """
    lines = tf.strings.strip(tf.strings.split(text, "\n"))
    lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
    lines = pointcloud.subsample_tf(lines, num_points, seed, name)
    fields = tf.strings.split(lines, ",")[:, :3]
    xyz = tf.strings.to_number(tf.strings.strip(fields), tf.float32)
    return tf.ensure_shape(xyz.to_tensor(), (num_points, 3))


def index(root, split):
    """(paths, labels, class_names) of one split; checks every file exists."""
    root = point_files.require_root(root, "modelnet40", LAYOUT)
    names = point_files.read_lines(
        os.path.join(root, "modelnet40_shape_names.txt"),
        "ModelNet40 shape-names file",
    )
    ids = point_files.read_lines(
        os.path.join(root, f"modelnet40_{split}.txt"),
        f"ModelNet40 split file for split {split!r}",
    )
    label_of = {name: i for i, name in enumerate(names)}
    paths, labels = [], []
    for sample_id in ids:
        cls = sample_id.rsplit("_", 1)[0]
        if cls not in label_of:
            raise ValueError(
                f"Sample {sample_id!r} in modelnet40_{split}.txt has class "
                f"{cls!r}, which is not in modelnet40_shape_names.txt."
            )
        paths.append(os.path.join(root, cls, sample_id + ".txt"))
        labels.append(label_of[cls])
    point_files.require_all_exist(paths, f"modelnet40 ({root!r})")
    return paths, labels, names


def source(split="train", seed=0, root=None, num_points=1024, sampling="first"):
    """Source of ModelNet40 point files (see the module docstring).

    Args:
        split: "train" or "test" (reads `modelnet40_<split>.txt`).
        seed: int. Unused here (the pipeline passes per-element seeds).
        root: path to the `modelnet40_normal_resampled` folder.
        num_points: int. Points per cloud.
        sampling: "first" or "random".

    Raises:
        ValueError / FileNotFoundError naming the missing path or bad entry.
    """
    del seed
    point_files.check_sampling(sampling, num_points)
    paths, labels, _ = index(root, split)
    if not paths:
        raise ValueError(f"modelnet40_{split}.txt in {root!r} lists no ids.")
    ds = tf.data.Dataset.from_tensor_slices(
        {"path": paths, "labels": tf.constant(labels, tf.int32)}
    )
    num_points = int(num_points)

    def load(element, seed):
        xyz = parse_points_text(
            tf.io.read_file(element["path"]),
            num_points,
            seed if sampling == "random" else None,
            name="modelnet40",
        )
        return {
            "points": pointcloud.pc_norm_tf(xyz),
            "labels": element["labels"],
        }

    return pipeline.Source(ds, len(paths), load)
