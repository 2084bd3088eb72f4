"""Train and eval step functions, written for every `tf.distribute` strategy.

Everything per-replica happens inside `strategy.run`; everything cross-replica
through `ReplicaContext.all_reduce` or `strategy.reduce`. There is no host-side
per-replica Python logic, so the same functions run under the default strategy,
`MirroredStrategy`, `MultiWorkerMirroredStrategy` and `TPUStrategy`.

Loss scaling across replicas: each replica computes the mean loss over its
local batch `L_r` (n_r examples) and differentiates `L_r * n_r / N`, N = sum of
n_r (one scalar all-reduce). The optimizer sums gradients over replicas, so the
applied gradient is that of the global-batch mean loss, sum_r n_r L_r / N, the
same as one device on the whole global batch. (With equal local batches the
weight is 1 / num_replicas_in_sync.)

Gradient clipping by global norm needs the norm of the *summed* gradient. Keras
clips before its cross-replica sum, so the step does it: it all-reduces the
gradients, computes the clip factor c = clip / max(norm, clip) from the sum
(the same on every replica) and hands c * g_r to the optimizer, which sums
them: c * sum_r g_r. This costs a second all-reduce of the gradients, only when
clipping is on.

Mixed float16: Keras' `LossScaleOptimizer` decides to skip a step from the
first local replica's gradients only. The step first all-reduces a non-finite
flag and, if any replica (or worker) saw inf/NaN, makes every replica's
gradients NaN, so all replicas and workers skip the step together.

XLA (`jit_compile=True`): the forward and backward pass (`grads_fn`) is
compiled; the all-reduces and the optimizer update stay outside, because
`MirroredStrategy` on CPU needs `merge_call`, which XLA cannot compile.
"""

import keras
import tensorflow as tf

from official.training.data import batch_size

SUM = tf.distribute.ReduceOp.SUM


def replica_loss_weight(local_batch, global_batch):
    """The weight of a replica's mean loss: local batch / global batch."""
    return local_batch / global_batch


def default_loss_fn(model, x, y, y_pred):
    """`GardenModel.compute_loss` (per-replica mean over the local batch)."""
    return model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)


def _dense(grad):
    if isinstance(grad, tf.IndexedSlices):
        return tf.convert_to_tensor(grad)
    return grad


def _all_replicas_finite(ctx, grads):
    """Grads unchanged if finite on every replica, else NaN on every replica."""
    present = [_dense(g) for g in grads if g is not None]
    local_ok = tf.reduce_all(
        [tf.reduce_all(tf.math.is_finite(g)) for g in present]
    )
    bad = ctx.all_reduce(SUM, 1.0 - tf.cast(local_ok, tf.float32))
    poison = tf.where(bad > 0.0, float("nan"), 0.0)
    return [
        None if g is None else _dense(g) + tf.cast(poison, g.dtype)
        for g in grads
    ]


def _clip_summed_gradient(ctx, grads, clip_norm, loss_scale):
    """Scales grads so that their cross-replica sum has norm <= clip_norm."""
    present = [_dense(g) for g in grads if g is not None]
    summed = ctx.all_reduce(SUM, present)
    norm = tf.linalg.global_norm(summed) / loss_scale
    factor = clip_norm / tf.maximum(norm, clip_norm)
    return [
        None if g is None else _dense(g) * tf.cast(factor, g.dtype)
        for g in grads
    ]


def make_train_function(
    model,
    optimizer,
    strategy,
    split_batch,
    loss_fn=default_loss_fn,
    clip_norm=None,
    jit_compile=False,
    run_eagerly=False,
):
    """Returns `train(iterator, num_steps) -> (loss_sum, samples)`.

    `loss_sum` is the sum over the `num_steps` steps of the global-batch mean
    loss, `samples` the number of examples consumed.
    """
    variables = list(model.trainable_variables)
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def grads_fn(x, y, weight):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = tf.cast(loss_fn(model, x, y, y_pred), tf.float32)
            objective = loss * weight
            if loss_scaled:
                objective = optimizer.scale_loss(objective)
        return loss, tape.gradient(objective, variables)

    if not run_eagerly:
        grads_fn = tf.function(grads_fn, jit_compile=jit_compile)

    def replica_step(batch):
        ctx = tf.distribute.get_replica_context()
        x, y = split_batch(batch)
        local_n = batch_size(x)
        global_n = ctx.all_reduce(SUM, local_n)
        weight = replica_loss_weight(local_n, global_n)
        loss, grads = grads_fn(x, y, weight)
        grads = list(grads)
        if loss_scaled:
            grads = _all_replicas_finite(ctx, grads)
        if clip_norm:
            scale = optimizer.dynamic_scale if loss_scaled else 1.0
            grads = _clip_summed_gradient(ctx, grads, clip_norm, scale)
        optimizer.apply_gradients(zip(grads, variables))
        return loss * weight, local_n

    def train(iterator, num_steps):
        loss_sum = tf.constant(0.0, tf.float32)
        samples = tf.constant(0.0, tf.float32)
        for _ in tf.range(num_steps):
            weighted, local_n = strategy.run(
                replica_step, args=(next(iterator),)
            )
            loss_sum += strategy.reduce(SUM, weighted, axis=None)
            samples += strategy.reduce(SUM, local_n, axis=None)
        return loss_sum, samples

    return train if run_eagerly else tf.function(train)


def default_eval_fn(model, x, y, loss_fn=default_loss_fn):
    y_pred = model(x, training=False)
    return {"loss": loss_fn(model, x, y, y_pred)}


def make_eval_function(
    model, strategy, split_batch, eval_fn, run_eagerly=False
):
    """Returns `evaluate_batch(batch) -> (weighted sums dict, examples)`.

    `eval_fn(model, x, y)` returns a dict of per-replica means over the local
    batch; they are weighted by the local batch size and summed over replicas
    (an empty local batch, possible in the last multi-worker batch, adds 0).
    """

    def replica_eval(batch):
        x, y = split_batch(batch)
        local_n = batch_size(x)
        values = eval_fn(model, x, y)
        sums = {
            name: tf.math.multiply_no_nan(tf.cast(value, tf.float32), local_n)
            for name, value in values.items()
        }
        return sums, local_n

    def evaluate_batch(batch):
        sums, local_n = strategy.run(replica_eval, args=(batch,))
        sums = {k: strategy.reduce(SUM, v, axis=None) for k, v in sums.items()}
        return sums, strategy.reduce(SUM, local_n, axis=None)

    return evaluate_batch if run_eagerly else tf.function(evaluate_batch)
