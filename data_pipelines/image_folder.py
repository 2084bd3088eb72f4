"""Reader for a local image folder, `root/<split>/<label>/<image>`, via TFDS.

Uses `tfds.folder_dataset.ImageFolder`, which only lists local files (it has
no download step, so it never touches the network). Label ids follow TFDS:
the sorted label-folder names over all splits. TFDS orders each split with a
fixed shuffle (seeded by the split name); images are decoded and resized
after sharding and shuffling, so each input pipeline decodes only its own
shard (every pipeline still reads the encoded bytes of the whole split).

Yields {"images": float32 (H, W, C) in [0, 1], "labels": int32}.
"""

import os

import tensorflow as tf

from data_pipelines import pipeline

# Encoded images are shuffled before decoding; cap the buffer's memory.
MAX_SHUFFLE_BUFFER = 10_000


def _size(image_size):
    if image_size is None:
        raise ValueError(
            "image_folder needs image_size (int or (height, width)): batches "
            "have fixed shapes, so every image is resized to it."
        )
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = image_size
    return (int(height), int(width))


def builder(root):
    """The `tfds.folder_dataset.ImageFolder` builder of `root`.

    Raises:
        FileNotFoundError: `root` is not a directory.
    """
    root = os.fspath(root)
    if not tf.io.gfile.isdir(root):
        raise FileNotFoundError(
            f"Image folder root not found: {root!r} (expected "
            "root/<split>/<label>/<image>.png)."
        )
    import tensorflow_datasets as tfds  # Lazy: only this reader needs it.

    return tfds.folder_dataset.ImageFolder(root)


def label_names(root):
    """Label names in label-id order (sorted folder names)."""
    return list(builder(root).info.features["label"].names)


def source(split="train", seed=0, root=None, image_size=None, channels=3):
    """Source of `root/<split>/<label>/*` images resized to `image_size`.

    Args:
        split: str. A sub-folder of `root`.
        seed: int. Unused by the source itself (the pipeline seeds the
            shuffle); present so all sources share one signature.
        root: str or path. The folder holding the split folders.
        image_size: int or (height, width). Required.
        channels: int. 1 or 3 (decoded with `tf.io.decode_image`, which
            converts grey and RGB as needed).

    Raises:
        ValueError: no `root`, no `image_size`, or `split` not in `root`.
        FileNotFoundError: `root` does not exist.
    """
    del seed
    if root is None:
        raise ValueError("image_folder needs root=<folder with split dirs>.")
    height, width = _size(image_size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    build = builder(root)
    splits = build.info.splits
    if split not in splits:
        raise ValueError(
            f"Split {split!r} not found in image folder {os.fspath(root)!r}; "
            f"available splits: {sorted(splits.keys())}."
        )
    num_examples = int(splits[split].num_examples)
    if num_examples == 0:
        raise ValueError(
            f"No images in {os.path.join(os.fspath(root), split)!r}."
        )
    import tensorflow_datasets as tfds

    ds = build.as_dataset(
        split=split,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    ds = ds.map(lambda x: {"image": x["image"], "labels": x["label"]})

    def decode(element, seed):
        del seed
        image = tf.io.decode_image(
            element["image"], channels=channels, expand_animations=False
        )
        image = tf.image.resize(image, (height, width), method="bilinear")
        image = tf.ensure_shape(image / 255.0, (height, width, channels))
        return {
            "images": tf.cast(image, tf.float32),
            "labels": tf.cast(element["labels"], tf.int32),
        }

    buffer = min(num_examples, MAX_SHUFFLE_BUFFER)
    return pipeline.Source(ds, num_examples, decode, buffer)
