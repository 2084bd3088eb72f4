"""One device vs two replicas (MirroredStrategy on 2 logical CPUs).

Usage: run_replicas.py RESULT.json

Must run in its own process: the logical devices are configured before
TensorFlow touches a device. Trains the same model on the same global batch
sequence under the default strategy (one device) and under MirroredStrategy,
for several configurations, and writes the max weight differences:

  sgd            SGD + momentum (a gradient scale error shows directly)
  sgd_unscaled   deliberately broken: per-replica loss not divided by the
                 global batch (gradients doubled) -> must differ
  adamw_clip     AdamW, cosine warm-up, weight decay, global-norm clipping
  keras_clip     deliberately broken: Keras' own global_clipnorm, which clips
                 each replica's gradient before the sum -> must differ
  xla            jit_compile=True under MirroredStrategy vs one device
  mixed_float16  LossScaleOptimizer under MirroredStrategy (runs, finite)
  per_replica_resumed  per-replica pipelines (distribute_datasets_from_function)
                 under MirroredStrategy, stopped at step 13 and resumed, vs an
                 uninterrupted one-device run on per-epoch global batches
"""

import json
import os
import sys
import time

sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ),
)

import tensorflow as tf  # noqa: E402

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from official.training import Trainer  # noqa: E402
from official.training import loop as loop_lib  # noqa: E402
from official.training import make_strategy  # noqa: E402
from official.training import steps as steps_lib  # noqa: E402
from tests.training import testlib  # noqa: E402

STEPS = 8


def train(strategy, optimizer_config, **kwargs):
    trainer = Trainer(
        testlib.TinyRegressor,
        optimizer_config,
        strategy=strategy,
        seed=0,
        verbose=0,
        **kwargs,
    )
    metrics = trainer.fit(testlib.dataset(), steps=STEPS)
    return testlib.weights(trainer.model), metrics


def compare(name, optimizer_config, reference=None, **kwargs):
    """Trains on one device (or reuses `reference`) and on two replicas."""
    t0 = time.perf_counter()
    if reference is None:
        single[name], _ = train(
            make_strategy("default"), optimizer_config, **kwargs
        )
        reference = name
    two, metrics = train(mirrored, optimizer_config, **kwargs)
    results[name] = {
        "max_diff": testlib.max_diff(single[reference], two),
        "max_change": testlib.max_diff(single[reference], initial),
        "replicas": metrics["num_replicas"],
        "final_loss": metrics["final_loss"],
        "seconds": time.perf_counter() - t0,
    }


results, single = {}, {}
mirrored = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync
# Without devices, make_strategy uses every logical CPU when there is no GPU.
assert make_strategy("mirrored").num_replicas_in_sync == 2
keras.utils.set_random_seed(0)
initial_model = testlib.TinyRegressor()
initial_model({"features": np.zeros((1, testlib.FEATURES), "float32")})
initial = testlib.weights(initial_model)

sgd = testlib.sgd_config(learning_rate=0.1, momentum=0.9)
compare("sgd", sgd)
compare("xla", sgd, reference="sgd", jit_compile=True)

weight = steps_lib.replica_loss_weight
steps_lib.replica_loss_weight = lambda local, global_: 1.0  # no division
compare("sgd_unscaled", sgd, reference="sgd")
steps_lib.replica_loss_weight = weight

compare("adamw_clip", testlib.adamw_config(clip_norm=0.05))
sgd_clip = testlib.sgd_config(learning_rate=0.1, clip_norm=0.05)
compare("sgd_clip", sgd_clip)
take_over = loop_lib.Trainer._take_over_clipping
loop_lib.Trainer._take_over_clipping = lambda self, optimizer: None
compare("keras_clip", sgd_clip, reference="sgd_clip")
loop_lib.Trainer._take_over_clipping = take_over

compare("mixed_float16", sgd, mixed_precision="mixed_float16")


def per_replica_fn(epoch, input_context):
    """Per-replica batches (4 each on 2 replicas), as on a TPU host."""
    return testlib.dataset(
        batch=input_context.get_per_replica_batch_size(8),
        shuffle_seed=1000 + epoch,
    ).shard(input_context.num_input_pipelines, input_context.input_pipeline_id)


def per_replica_resumed(out_dir):
    """distribute_datasets_from_function, stopped at step 13 and resumed."""
    t0 = time.perf_counter()
    kwargs = dict(strategy=mirrored, seed=0, verbose=0, out_dir=out_dir)
    Trainer(testlib.TinyRegressor, sgd, **kwargs).fit(
        per_replica_fn, steps=13, steps_per_epoch=10
    )
    second = Trainer(testlib.TinyRegressor, sgd, **kwargs)
    metrics = second.fit(per_replica_fn, epochs=2, steps_per_epoch=10)
    assert metrics["resumed_from_step"] == 13, metrics
    one = Trainer(testlib.TinyRegressor, sgd, seed=0, verbose=0)
    one.fit(testlib.epoch_dataset_fn(), epochs=2)
    results["per_replica_resumed"] = {
        "max_diff": testlib.max_diff(
            testlib.weights(one.model), testlib.weights(second.model)
        ),
        "max_change": testlib.max_diff(testlib.weights(one.model), initial),
        "replicas": metrics["num_replicas"],
        "final_loss": metrics["final_loss"],
        "seconds": time.perf_counter() - t0,
    }


per_replica_resumed(
    os.path.join(os.path.dirname(sys.argv[1]), "per_replica_run")
)

with open(sys.argv[1], "w") as f:
    json.dump(results, f, indent=1)
print(json.dumps(results, indent=1))
