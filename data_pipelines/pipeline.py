"""The shared finalize step of every pipeline: shard, shuffle, batch, prefetch.

Every source in this package produces an *unbatched* `tf.data.Dataset` (plus,
for file readers, a per-element loading function) and hands it to `finalize`,
so all of them agree on:

- **Determinism.** The shuffle is seeded and `tf.data.Options.deterministic`
  is on, so two builds with the same seed yield identical batches, and
  per-element randomness (e.g. random point subsets) comes from stateless ops
  seeded by `(seed, position in the stream)`.
- **Sharding under `tf.distribute`.** With an `input_context`, the dataset is
  sharded *before* shuffling with
  `ds.shard(num_input_pipelines, input_pipeline_id)` (so the shards are
  disjoint whatever the seed), and `batch_size` is read as the global batch
  and turned into `input_context.get_per_replica_batch_size(batch_size)`.
  TF's own auto-sharding is switched off in that case so data is not sharded
  twice.
- **Fixed shapes.** `batch(..., drop_remainder=True)`, so XLA paths never see a
  ragged last batch (see STACK.md, "XLA").
"""

from typing import Callable
from typing import NamedTuple
from typing import Optional

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


class Source(NamedTuple):
    """What a source builder returns to `finalize`.

    Attributes:
        dataset: unbatched `tf.data.Dataset` in a fixed order.
        num_examples: int. Number of elements in `dataset`.
        element_fn: optional `fn(element, seed) -> element` (see `finalize`),
            e.g. reading and decoding a file named by the element.
        shuffle_buffer: optional int, the source's preferred shuffle buffer
            (for sources whose elements are large before `element_fn`).
    """

    dataset: tf.data.Dataset
    num_examples: int
    element_fn: Optional[Callable] = None
    shuffle_buffer: Optional[int] = None


def per_pipeline_batch_size(batch_size, input_context=None):
    """The batch size one input pipeline must produce.

    Args:
        batch_size: int. The global batch size.
        input_context: optional `tf.distribute.InputContext`.

    Returns:
        `batch_size` without a context, otherwise
        `input_context.get_per_replica_batch_size(batch_size)` (which raises
        if the global batch does not divide among the replicas).
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if input_context is None:
        return batch_size
    return int(input_context.get_per_replica_batch_size(batch_size))


def finalize(
    ds,
    *,
    batch_size,
    seed=0,
    shuffle=True,
    repeat=False,
    input_context=None,
    shuffle_buffer=None,
    element_fn=None,
    num_examples=None,
):
    """Shard, shuffle, (repeat), map, batch with fixed shapes and prefetch.

    Args:
        ds: unbatched `tf.data.Dataset` in a fixed order.
        batch_size: int. Global batch size (per pipeline if no context).
        seed: int. Seeds the shuffle and `element_fn`'s randomness.
        shuffle: bool. Shuffle the examples (reshuffled every epoch, still
            deterministic for the seed).
        repeat: bool or int. `True` repeats forever, an int that many epochs,
            `False` a single epoch.
        input_context: optional `tf.distribute.InputContext`.
        shuffle_buffer: int or None. Defaults to the whole (sharded) dataset
            when its size is known, else 10,000.
        element_fn: optional `fn(element, seed) -> element` run after
            shuffling (so shuffling moves file names, not decoded data);
            `seed` is an int64 tensor of shape (2,) unique to the element's
            position in this pipeline's stream, for `tf.random.stateless_*`.
        num_examples: int or None. Examples in `ds` before sharding, used to
            fail early when not a single full batch could be produced.

    Returns:
        A batched, prefetched `tf.data.Dataset`.
    """
    local_batch = per_pipeline_batch_size(batch_size, input_context)
    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        num_pipelines = int(input_context.num_input_pipelines)
        pipeline_id = int(input_context.input_pipeline_id)
        if num_pipelines > 1:
            ds = ds.shard(num_pipelines, pipeline_id)
    if num_examples is not None and not repeat:
        per_pipeline = len(range(pipeline_id, int(num_examples), num_pipelines))
        if per_pipeline < local_batch:
            raise ValueError(
                f"Only {per_pipeline} examples reach this input pipeline "
                f"({num_examples} in total, {num_pipelines} pipeline(s)), "
                f"fewer than one batch of {local_batch}; with "
                "drop_remainder=True the dataset would be empty. Use a "
                "smaller batch_size or repeat=True."
            )
    if shuffle:
        if shuffle_buffer is None:
            card = int(ds.cardinality())
            shuffle_buffer = card if card > 0 else 10_000
        ds = ds.shuffle(
            int(shuffle_buffer), seed=int(seed), reshuffle_each_iteration=True
        )
    if repeat is True:
        ds = ds.repeat()
    elif repeat:
        ds = ds.repeat(int(repeat))
    if element_fn is not None:
        ds = _map_with_seeds(ds, element_fn, seed, num_pipelines, pipeline_id)
    ds = ds.batch(
        local_batch,
        drop_remainder=True,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    if input_context is not None:
        policy = tf.data.experimental.AutoShardPolicy.OFF
        options.experimental_distribute.auto_shard_policy = policy
    return ds.with_options(options)


def _map_with_seeds(ds, element_fn, seed, num_pipelines, pipeline_id):
    """Maps `element_fn(x, (seed, global_position))` in parallel, in order."""
    seed = tf.constant(int(seed), tf.int64)

    def fn(position, element):
        stream_position = position * num_pipelines + pipeline_id
        return element_fn(element, tf.stack([seed, stream_position]))

    return ds.enumerate().map(
        fn, num_parallel_calls=AUTOTUNE, deterministic=True
    )


def split_seed(seed, split):
    """A NumPy seed for one split of a procedural source, derived from `seed`.

    Train and test of the same `seed` never share random draws, and the
    result does not depend on Python's hash randomisation.
    """
    entropy = [int(seed), *str(split).encode("utf-8")]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
