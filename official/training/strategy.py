"""Creating a `tf.distribute.Strategy` by name, and asking who is chief.

`make_strategy` knows four kinds:

* `"default"`: TensorFlow's default strategy (one device, no distribution).
* `"mirrored"`: `MirroredStrategy` over all GPUs, or over all logical CPU
  devices when there is no GPU (so tests can split one CPU into two
  replicas with `tf.config.set_logical_device_configuration`).
* `"multi_worker"`: `MultiWorkerMirroredStrategy`; the cluster comes from
  the `TF_CONFIG` environment variable (one process per worker).
* `"tpu"`: `TPUStrategy` after connecting to and initializing the TPU system.

Only the chief writes logs and the real checkpoint; every worker runs the same
collective ops (see `checkpointing.py`).
"""

import tensorflow as tf

STRATEGY_KINDS = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(kind="default", devices=None, tpu=None):
    """Returns a `tf.distribute.Strategy`.

    Args:
        kind: str, one of `STRATEGY_KINDS`, or a `tf.distribute.Strategy`
            instance, which is returned unchanged.
        devices: optional list of device strings for `"mirrored"`.
        tpu: optional TPU name or address for `"tpu"` (None: the resolver's
            default, e.g. a Cloud TPU VM's local TPU).
    """
    if isinstance(kind, tf.distribute.Strategy):
        return kind
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            pool = gpus or tf.config.list_logical_devices("CPU")
            devices = [d.name for d in pool]
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=tpu
            )
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise RuntimeError(
                f"make_strategy('tpu'): could not reach a TPU (tpu={tpu!r}): "
                f"{error}"
            ) from error
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"make_strategy: unknown kind {kind!r}; expected one of "
        f"{list(STRATEGY_KINDS)} or a tf.distribute.Strategy."
    )


def _cluster(strategy):
    """Returns (task_type, task_id, cluster dict) or (None, None, {})."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return None, None, {}  # one Python client drives every TPU host
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, None, {}
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type, resolver.task_id, cluster


def is_chief(strategy):
    """True for the one process that writes logs and the real checkpoint."""
    task_type, task_id, cluster = _cluster(strategy)
    if not cluster or task_type is None:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_id(strategy):
    """A short name for this process, unique within the cluster."""
    task_type, task_id, cluster = _cluster(strategy)
    if not cluster or task_type is None:
        return "chief"
    return f"{task_type}{task_id}"


def strategy_name(strategy):
    return type(strategy).__name__
