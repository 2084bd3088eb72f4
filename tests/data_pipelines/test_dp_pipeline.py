"""The shared finalize step: determinism, fixed batches, sharding, options."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import data_pipelines
from data_pipelines import pipeline

SMALL = dict(num_samples=40, num_points=16)


def _batches(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def _same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x
    )


def _context(pipeline_id, num_pipelines=2):
    return tf.distribute.InputContext(
        num_input_pipelines=num_pipelines,
        input_pipeline_id=pipeline_id,
        num_replicas_in_sync=num_pipelines,
    )


def test_list_datasets_and_unknown_name():
    assert data_pipelines.list_datasets() == [
        "digits",
        "image_folder",
        "modelnet40",
        "multichannel",
        "shapenet55",
        "shapes3d",
    ]
    with pytest.raises(ValueError, match="nope"):
        data_pipelines.get_dataset("nope")


def test_same_seed_same_batches_across_epochs_other_seed_differs():
    def build(seed):
        return _batches(
            data_pipelines.get_dataset(
                "shapes3d", batch_size=8, seed=seed, repeat=2, **SMALL
            )
        )

    first, second, other = build(3), build(3), build(4)
    assert len(first) == 10  # 2 epochs x 40 // 8
    assert _same(first, second)
    assert not _same(first, other)
    # Reshuffled every epoch: epoch 2's label order differs from epoch 1's.
    labels = np.concatenate([b["labels"] for b in first])
    assert not np.array_equal(labels[:40], labels[40:])
    assert sorted(labels[:40]) == sorted(labels[40:])


def test_fixed_batch_shapes_drop_remainder():
    ds = data_pipelines.get_dataset("shapes3d", batch_size=16, **SMALL)
    spec = ds.element_spec
    assert spec["points"].shape == (16, 16, 3)
    assert spec["labels"].shape == (16,)
    batches = _batches(ds)
    assert len(batches) == 2  # 40 // 16: the remainder of 8 is dropped
    assert all(b["points"].shape == (16, 16, 3) for b in batches)


def test_shuffle_option_and_default():
    """shuffle=False keeps the source order; the default shuffles train."""
    points, _ = data_pipelines.shapes3d.generate(
        40, 16, pipeline.split_seed(0, "train")
    )
    plain = data_pipelines.get_dataset(
        "shapes3d", batch_size=40, shuffle=False, **SMALL
    )
    np.testing.assert_array_equal(_batches(plain)[0]["points"], points)
    default = data_pipelines.get_dataset("shapes3d", batch_size=40, **SMALL)
    got = _batches(default)[0]["points"]
    assert not np.array_equal(got, points)
    key = lambda a: sorted(x.tobytes() for x in a)  # noqa: E731
    assert key(got) == key(points)


def test_repeat_forever():
    ds = data_pipelines.get_dataset(
        "shapes3d", batch_size=16, repeat=True, **SMALL
    )
    assert int(ds.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    assert len(list(ds.take(7))) == 7


@pytest.mark.parametrize("shuffle", [False, True])
def test_two_input_pipelines_get_disjoint_halves(shuffle):
    """InputContext(2 pipelines): per-replica batches, disjoint shards."""
    shards = []
    for pipeline_id in (0, 1):
        ds = data_pipelines.get_dataset(
            "shapes3d",
            batch_size=8,
            shuffle=shuffle,
            input_context=_context(pipeline_id),
            **SMALL,
        )
        assert ds.element_spec["points"].shape == (4, 16, 3)  # 8 // 2
        batches = _batches(ds)
        assert len(batches) == 5  # 20 examples per shard, batches of 4
        shards.append({p.tobytes() for b in batches for p in b["points"]})
    assert len(shards[0]) == len(shards[1]) == 20
    assert not shards[0] & shards[1]
    everything = data_pipelines.get_dataset(
        "shapes3d", batch_size=40, shuffle=False, **SMALL
    )
    all_points = {p.tobytes() for p in _batches(everything)[0]["points"]}
    assert shards[0] | shards[1] == all_points


def test_too_few_examples_for_one_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one batch"):
        data_pipelines.get_dataset("shapes3d", batch_size=64, **SMALL)


def test_unknown_option_is_rejected():
    with pytest.raises(TypeError, match="image_size"):
        data_pipelines.get_dataset("shapes3d", image_size=32)


def test_element_fn_seeds_are_deterministic_and_unique():
    """finalize passes (seed, stream position) to element_fn."""
    ds = tf.data.Dataset.range(6)
    out = pipeline.finalize(
        ds,
        batch_size=6,
        seed=7,
        shuffle=False,
        repeat=2,
        element_fn=lambda x, seed: {"x": x, "seed": seed},
    )
    seeds = np.concatenate([b["seed"].numpy() for b in out])
    np.testing.assert_array_equal(seeds[:, 0], 7)
    np.testing.assert_array_equal(seeds[:, 1], np.arange(12))


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import data_pipelines
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    contexts = []
    def dataset_fn(ctx):
        contexts.append(ctx)
        return data_pipelines.get_dataset(
            "shapes3d", batch_size=8, num_samples=40, num_points=16,
            input_context=ctx)
    dist = strategy.distribute_datasets_from_function(dataset_fn)
    batch = next(iter(dist))
    parts = strategy.experimental_local_results(batch["points"])
    assert len(parts) == 2, len(parts)
    assert all(p.shape == (4, 16, 3) for p in parts), [p.shape for p in parts]
    assert not np.array_equal(parts[0].numpy(), parts[1].numpy())
    assert contexts[0].num_replicas_in_sync == 2
    print("OK")
    """
)


@pytest.mark.large  # a fresh TF process: ~6-16 s depending on CPU load
def test_mirrored_strategy_gets_per_replica_batches():
    """Under MirroredStrategy on 2 logical CPUs (in a fresh process, since
    logical devices must be set before TF initialises them)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
