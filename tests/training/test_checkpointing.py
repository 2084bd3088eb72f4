"""Atomic checkpoints: temp dir + rename, keep the last k, leftovers removed."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.training import CheckpointManager


def make_state():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    return (
        model,
        optimizer,
        step,
        tf.train.Checkpoint(model=model, optimizer=optimizer, step=step),
    )


def train_once(model, optimizer):
    x = np.ones((4, 3), "float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


def test_round_trip_restores_weights_optimizer_step_and_position(tmp_path):
    model, optimizer, step, ckpt = make_state()
    train_once(model, optimizer)
    step.assign(7)
    manager = CheckpointManager(str(tmp_path), ckpt)
    path = manager.save(7, {"epoch": 1, "step_in_epoch": 2})
    assert os.path.basename(path) == "ckpt-7"

    model2, optimizer2, step2, ckpt2 = make_state()
    state = CheckpointManager(str(tmp_path), ckpt2).restore()
    assert state == {"epoch": 1, "step_in_epoch": 2, "step": 7}
    assert int(step2.numpy()) == 7 and int(optimizer2.iterations.numpy()) == 1
    for a, b in zip(
        model.weights + optimizer.variables,
        model2.weights + optimizer2.variables,
    ):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_keeps_the_last_k(tmp_path):
    *_, ckpt = make_state()
    manager = CheckpointManager(str(tmp_path), ckpt, keep=2)
    for s in (3, 6, 9, 12):
        manager.save(s, {})
    assert [s for s, _ in manager.checkpoints()] == [9, 12]
    assert sorted(os.listdir(tmp_path)) == ["ckpt-12", "ckpt-9"]


@pytest.mark.parametrize("crash_at", ["directory", "state"])
def test_a_crash_while_saving_leaves_the_previous_checkpoint(
    tmp_path, monkeypatch, crash_at
):
    """Killed before the directory rename, or before the state.json rename."""
    *_, ckpt = make_state()
    manager = CheckpointManager(str(tmp_path), ckpt)
    manager.save(4, {"epoch": 0})
    rename = tf.io.gfile.rename

    def crash(src, dst, *args, **kwargs):
        if crash_at == "directory" or dst.endswith("state.json"):
            raise KeyboardInterrupt("killed while saving")
        return rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(tf.io.gfile, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        manager.save(8, {"epoch": 0})
    monkeypatch.undo()
    names = os.listdir(tmp_path)
    if crash_at == "directory":  # fully written, but only in a hidden dir
        assert "ckpt-8" not in names
        assert any(n.startswith(".tmp-ckpt-8-") for n in names)
    else:  # renamed, but without its completeness marker
        assert "ckpt-8" in names
        assert not (tmp_path / "ckpt-8" / "state.json").exists()
    assert manager.latest().endswith("ckpt-4")
    assert [s for s, _ in manager.checkpoints()] == [4]
    # The next run removes the leftovers.
    CheckpointManager(str(tmp_path), ckpt)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-4"]


def test_non_chief_writes_nothing_permanent(tmp_path):
    *_, ckpt = make_state()
    worker = CheckpointManager(
        str(tmp_path), ckpt, chief=False, worker="worker1"
    )
    worker.save(5, {})
    assert os.listdir(tmp_path) == []
