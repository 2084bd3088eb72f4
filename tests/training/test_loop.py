"""The training loop under the default strategy (in process).

Distributed runs, which need their own processes, are in test_distributed.py
and test_resume.py.
"""

import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.training import Trainer
from official.training import data as data_lib
from official.training import default_split_batch
from tests.training import testlib


def trainer(**kwargs):
    config = kwargs.pop(
        "optimizer_config", testlib.adamw_config(total_steps=20)
    )
    return Trainer(testlib.TinyRegressor, config, seed=0, verbose=0, **kwargs)


def test_fit_writes_logs_checkpoints_and_metrics(tmp_path):
    run = trainer(out_dir=str(tmp_path), log_every=5, checkpoint_every=7)
    metrics = run.fit(
        testlib.dataset(),
        epochs=2,
        eval_data=testlib.dataset(n=40, shuffle_seed=None),
    )
    assert metrics["steps"] == 20 and metrics["steps_per_epoch"] == 10
    assert metrics["samples_per_sec"] > 0 and metrics["wall_time_s"] > 0
    assert metrics["eval"]["loss"] == pytest.approx(
        run.evaluate(testlib.dataset(n=40, shuffle_seed=None))["loss"]
    )
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics

    with open(tmp_path / "logs" / "steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < 0.7 * losses[0]  # it learns
    assert float(rows[-1]["loss"]) == pytest.approx(metrics["final_loss"])
    with open(tmp_path / "logs" / "epochs.csv") as f:
        epochs = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in epochs] == [0, 1]
    assert float(epochs[-1]["eval_loss"]) == pytest.approx(
        metrics["eval"]["loss"]
    )

    # every 7 steps and at each epoch end; the last 3 are kept
    assert sorted(int(n[5:]) for n in os.listdir(tmp_path / "checkpoints")) == [
        10,
        14,
        20,
    ]

    events = [str(p) for p in (tmp_path / "tensorboard").iterdir()]
    tags = set()
    for record in tf.data.TFRecordDataset(events):
        event = tf.compat.v1.Event.FromString(record.numpy())
        tags |= {v.tag for v in event.summary.value}
    assert {
        "train/loss",
        "train/learning_rate",
        "epoch/loss",
        "eval/loss",
    } <= tags


def test_evaluate_with_a_custom_metric_matches_numpy():
    run = trainer()
    data = testlib.dataset(n=40, batch=8, shuffle_seed=None)

    def mae(model, x, y):
        return {"mae": keras.ops.mean(keras.ops.abs(model(x) - y))}

    result = run.evaluate(data, eval_fn=mae)
    x, y = testlib.arrays(40)
    expected = np.mean(
        np.abs(run.model.predict({"features": x}, verbose=0) - y)
    )
    assert result["mae"] == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_compiled_and_eager_steps_agree_with_graph(mode):
    """Same weights after 6 steps: tf.function graph vs eager vs XLA."""
    graph = trainer()
    graph.fit(testlib.dataset(), steps=6)
    other = trainer(run_eagerly=mode == "eager", jit_compile=mode == "xla")
    other.fit(testlib.dataset(), steps=6)
    start = trainer()
    start._setup(next(iter(testlib.dataset())))
    moved = testlib.max_diff(
        testlib.weights(graph.model), testlib.weights(start.model)
    )
    diff = testlib.max_diff(
        testlib.weights(graph.model), testlib.weights(other.model)
    )
    print(
        f"{mode}: max |w_graph - w_{mode}| = {diff:.2e} "
        f"(weights moved {moved:.2e})"
    )
    assert moved > 1e-2  # the comparison is not trivial
    assert diff < 1e-5


def test_steps_per_execution_gives_the_same_run():
    one = trainer()
    one.fit(testlib.dataset(), steps=9)
    four = trainer(steps_per_execution=4)
    four.fit(testlib.dataset(), steps=9)
    assert (
        testlib.max_diff(
            testlib.weights(one.model), testlib.weights(four.model)
        )
        < 1e-6
    )


def test_resume_from_a_mid_epoch_checkpoint_in_process(tmp_path, monkeypatch):
    """Stream mode (a Dataset): stop at step 13, restart, compare with 0->20."""
    straight = trainer(out_dir=str(tmp_path / "straight"))
    straight.fit(testlib.dataset(), epochs=2)
    first = trainer(out_dir=str(tmp_path / "resumed"))
    first.fit(testlib.dataset(), steps=13)  # epoch 1, 3 batches in
    second = trainer(out_dir=str(tmp_path / "resumed"))
    metrics = second.fit(testlib.dataset(), epochs=2)
    assert metrics["resumed_from_step"] == 13 and metrics["steps_this_run"] == 7
    diff = testlib.max_diff(
        testlib.weights(straight.model), testlib.weights(second.model)
    )
    assert diff < 1e-6

    # Broken variant: restarting the stream from its beginning differs.
    iterator = data_lib.DataSource.iterator
    monkeypatch.setattr(
        data_lib.DataSource,
        "iterator",
        lambda self, epoch, in_epoch, step: iterator(self, epoch, in_epoch, 0),
    )
    broken_first = trainer(out_dir=str(tmp_path / "broken"))
    broken_first.fit(testlib.dataset(), steps=13)
    broken = trainer(out_dir=str(tmp_path / "broken"))
    broken.fit(testlib.dataset(), epochs=2)
    broken_diff = testlib.max_diff(
        testlib.weights(straight.model), testlib.weights(broken.model)
    )
    print(f"resume diff {diff:.2e}, broken resume diff {broken_diff:.2e}")
    assert broken_diff > 1e-4

    # Fitting a finished run again trains nothing and keeps its metrics.
    again = trainer(out_dir=str(tmp_path / "straight"))
    repeated = again.fit(testlib.dataset(), epochs=2)
    assert repeated["steps_this_run"] == 0 and repeated["steps"] == 20
    assert testlib.weights(again.model)[0] == pytest.approx(
        testlib.weights(straight.model)[0]
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    run = trainer(mixed_precision=policy)
    metrics = run.fit(testlib.dataset(), steps=10)
    assert np.isfinite(metrics["final_loss"])
    assert run.model.dense_1.compute_dtype == policy.split("_")[1]
    assert run.model.dense_1.kernel.dtype == "float32"
    is_scaled = isinstance(run.optimizer, keras.optimizers.LossScaleOptimizer)
    assert is_scaled == (policy == "mixed_float16")
    assert keras.config.dtype_policy().name == "float32"  # restored


def test_clip_norm_clips_the_update():
    """SGD without momentum: the first update is -lr * clipped gradient."""
    config = testlib.sgd_config(learning_rate=1.0)
    free = trainer(optimizer_config=config)
    free.fit(testlib.dataset(shuffle_seed=None), steps=1)
    clipped = trainer(optimizer_config=config, clip_norm=1e-3)
    clipped.fit(testlib.dataset(shuffle_seed=None), steps=1)
    start = trainer(optimizer_config=config)
    start._setup(next(iter(testlib.dataset())))
    w0 = testlib.weights(start.model)
    free_update = [a - b for a, b in zip(testlib.weights(free.model), w0)]
    clip_update = [a - b for a, b in zip(testlib.weights(clipped.model), w0)]
    norm = np.sqrt(sum(np.sum(u**2) for u in free_update))
    assert norm > 1e-2
    np.testing.assert_allclose(
        np.sqrt(sum(np.sum(u**2) for u in clip_update)), 1e-3, rtol=1e-3
    )
    for f, c in zip(free_update, clip_update):  # same direction
        np.testing.assert_allclose(c, f * 1e-3 / norm, atol=1e-7)


def test_default_split_batch():
    x, y = default_split_batch({"images": 1, "labels": 2})
    assert x == {"images": 1} and y == 2
    batch = {"points": 3}
    assert default_split_batch(batch) == ({"points": 3}, None)
    assert batch == {"points": 3}  # not mutated
    assert default_split_batch((4, 5)) == (4, 5)


def test_argument_errors():
    with pytest.raises(TypeError, match="strategy's scope"):
        Trainer(testlib.TinyRegressor, keras.optimizers.Adam())
    with pytest.raises(ValueError, match="mixed_precision"):
        Trainer(testlib.TinyRegressor, {}, mixed_precision="float16")
    run = trainer()
    with pytest.raises(ValueError, match="exactly one"):
        run.fit(testlib.dataset(), epochs=1, steps=3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        run.fit(testlib.dataset().filter(lambda b: True), epochs=1)
    with pytest.raises(ValueError, match="data ran out"):
        run.fit(testlib.epoch_dataset_fn(), epochs=1, steps_per_epoch=12)
