"""Feeding data to the loop: batch splitting and resumable distributed input.

The `Trainer` accepts three kinds of training data (`DataSource`):

* a `tf.data.Dataset` of **global** batches (one epoch, or infinite). The loop
  reads it as one stream, `dataset.repeat()`, so a seeded
  `shuffle(..., reshuffle_each_iteration=True)` gives every epoch its own
  deterministic order. Resuming at step `s` rebuilds the stream and skips `s`
  batches: exact, but the skipped batches are produced again (cost O(s)).
* a callable `fn(epoch) -> Dataset` of global batches for that epoch (seed its
  shuffle with the epoch). Resuming skips only the batches already consumed
  in the current epoch.
* a callable `fn(epoch, input_context) -> Dataset` of **per-replica** batches,
  for `strategy.distribute_datasets_from_function` (one pipeline per worker or
  TPU host; shard with `input_context.input_pipeline_id` and batch with
  `input_context.get_per_replica_batch_size(global_batch)`).

Global batches are split across replicas by `experimental_distribute_dataset`
(also across workers: each worker reads its slice of every global batch), so
one device and N replicas see the same global batch sequence.

Use fixed-size batches (`drop_remainder=True`): every replica needs a
non-empty batch, and XLA recompiles for every new shape.
"""

import inspect

import tensorflow as tf


def default_split_batch(batch):
    """`{"images": x, "labels": y}` -> `({"images": x}, y)`.

    Dicts: `y = batch.pop("labels")` if present (else None), `x` = the rest.
    Tuples/lists of two: `(x, y)`. Anything else: `(batch, None)`.
    """
    if isinstance(batch, dict):
        batch = dict(batch)
        labels = batch.pop("labels", None)
        return batch, labels
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def batch_size(x):
    """The leading dimension of the first tensor of `x`, as float32."""
    first = tf.nest.flatten(x)[0]
    return tf.cast(tf.shape(first)[0], tf.float32)


def _takes_input_context(fn):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "input_context" in params


def _known_cardinality(dataset):
    value = int(dataset.cardinality())
    return value if value >= 0 else None


def _local_replicas(input_context):
    return (
        input_context.num_replicas_in_sync // input_context.num_input_pipelines
    )


class DataSource:
    """Distributed iterators over the training data, resumable by position.

    Args:
        data: a `tf.data.Dataset` of global batches, or a callable (see the
            module docstring).
        strategy: the `tf.distribute.Strategy`.
    """

    def __init__(self, data, strategy):
        self.strategy = strategy
        self.data = data
        if isinstance(data, tf.data.Dataset):
            self.mode = "stream"
        elif callable(data):
            self.mode = "per_replica" if _takes_input_context(data) else "epoch"
        else:
            raise TypeError(
                "Training data must be a tf.data.Dataset or a callable "
                f"fn(epoch[, input_context]); received {type(data).__name__}."
            )
        self._stream = None
        self._stream_position = None

    def _epoch_dataset(self, epoch):
        if self.mode == "stream":
            return self.data
        if self.mode == "epoch":
            return self.data(epoch)
        return self.data(epoch, input_context=tf.distribute.InputContext())

    def sample_batch(self):
        """The first batch (to build the model before restoring weights)."""
        return next(iter(self._epoch_dataset(0).take(1)))

    def steps_per_epoch(self):
        """Batches per epoch if tf.data knows it, else None."""
        if self.mode == "per_replica":
            return None  # per-worker pipelines: the caller must say
        return _known_cardinality(self._epoch_dataset(0))

    def iterator(self, epoch, step_in_epoch, global_step):
        """A distributed iterator positioned at the next batch to train on."""
        if self.mode == "stream":
            if self._stream is None or self._stream_position != global_step:
                dataset = self.data.repeat().skip(global_step)
                self._stream = iter(
                    self.strategy.experimental_distribute_dataset(dataset)
                )
                self._stream_position = global_step
            return self._stream
        if self.mode == "epoch":
            dataset = self.data(epoch).skip(step_in_epoch)
            return iter(self.strategy.experimental_distribute_dataset(dataset))

        def dataset_fn(input_context):
            skip = step_in_epoch * _local_replicas(input_context)
            return self.data(epoch, input_context=input_context).skip(skip)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def consumed(self, steps):
        """Records that the loop consumed `steps` global batches."""
        if self._stream_position is not None:
            self._stream_position += steps


def distribute_eval_data(data, strategy):
    """A distributed dataset for evaluation (one pass)."""
    if isinstance(data, tf.data.Dataset):
        return strategy.experimental_distribute_dataset(data)
    if callable(data) and _takes_input_context(data):
        return strategy.distribute_datasets_from_function(
            lambda ctx: data(input_context=ctx)
        )
    if callable(data):
        return strategy.experimental_distribute_dataset(data())
    raise TypeError(
        "Evaluation data must be a tf.data.Dataset or a callable; received "
        f"{type(data).__name__}."
    )


def sample_eval_batch(data):
    if isinstance(data, tf.data.Dataset):
        dataset = data
    elif _takes_input_context(data):
        dataset = data(input_context=tf.distribute.InputContext())
    else:
        dataset = data()
    return next(iter(dataset.take(1)))
