"""`get_dataset(name, ...)`: one entry point over every source.

A source is `fn(split, seed, **options) -> pipeline.Source`; `get_dataset`
builds it and runs the shared `pipeline.finalize` (shard, seeded shuffle,
repeat, per-element loading, fixed-shape batching, prefetch).
"""

from data_pipelines import digits
from data_pipelines import image_folder
from data_pipelines import modelnet40
from data_pipelines import multichannel
from data_pipelines import pipeline
from data_pipelines import shapenet55
from data_pipelines import shapes3d

_SOURCES = {
    "digits": digits.source,
    "shapes3d": shapes3d.source,
    "multichannel": multichannel.source,
    "image_folder": image_folder.source,
    "modelnet40": modelnet40.source,
    "shapenet55": shapenet55.source,
}


def list_datasets():
    """Names accepted by `get_dataset`, sorted."""
    return sorted(_SOURCES)


def get_dataset(
    name,
    split="train",
    batch_size=32,
    seed=0,
    input_context=None,
    shuffle=None,
    repeat=False,
    shuffle_buffer=None,
    **options,
):
    """A batched, prefetched, deterministic `tf.data.Dataset` of `name`.

    Args:
        name: str, one of `list_datasets()`.
        split: str. "train" / "test" (image folders: any split folder).
        batch_size: int. The *global* batch size; with `input_context` each
            pipeline yields `input_context.get_per_replica_batch_size(...)`.
        seed: int. Seeds the data (procedural sources, digits split), the
            shuffle and per-element sampling; same seed, same batches.
        input_context: optional `tf.distribute.InputContext` (e.g. from
            `strategy.distribute_datasets_from_function`): the data is
            sharded with `ds.shard(num_input_pipelines, input_pipeline_id)`.
        shuffle: bool or None. None shuffles "train" only.
        repeat: bool or int. True repeats forever, an int that many epochs.
        shuffle_buffer: optional int; default the whole dataset (capped for
            image folders).
        **options: the source's own options (image_size, num_points, root,
            ...); see data_pipelines/README.md.

    Returns:
        `tf.data.Dataset` of dicts of batched tensors, fixed batch dimension
        (`drop_remainder=True`).

    Raises:
        ValueError: unknown `name`, or fewer examples than one batch.
        TypeError: an option the source does not take.
    """
    if name not in _SOURCES:
        raise ValueError(
            f"Unknown dataset {name!r}; available: {list_datasets()}."
        )
    src = _SOURCES[name](split=split, seed=seed, **options)
    if shuffle is None:
        shuffle = split == "train"
    if shuffle_buffer is None:
        shuffle_buffer = src.shuffle_buffer
    return pipeline.finalize(
        src.dataset,
        batch_size=batch_size,
        seed=seed,
        shuffle=shuffle,
        repeat=repeat,
        input_context=input_context,
        shuffle_buffer=shuffle_buffer,
        element_fn=src.element_fn,
        num_examples=src.num_examples,
    )
