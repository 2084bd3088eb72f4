"""`Trainer`: a custom training loop for every `tf.distribute` strategy.

Keras 3 `fit` fails under `MultiWorkerMirroredStrategy` (STACK.md), so this loop
uses `experimental_distribute_dataset` / `distribute_datasets_from_function`,
`strategy.run` and `strategy.reduce` (see `steps.py` for the step itself and the
loss scaling by the global batch).

Example:

```python
trainer = Trainer(
    model_fn=lambda: MyGardenModel(),
    optimizer_config=dict(learning_rate=1e-3, weight_decay=0.05,
                          warmup_steps=100, total_steps=1000),
    strategy=make_strategy("mirrored"),
    out_dir="/tmp/run",
    checkpoint_every=200,
)
metrics = trainer.fit(train_dataset, steps=1000, eval_data=val_dataset)
```

Running the same command again after a crash resumes from the newest
checkpoint in `out_dir/checkpoints` and finishes the same run: `steps` and
`epochs` are totals, not increments.
"""

import math
import time

import keras
import tensorflow as tf

from official.training import checkpointing
from official.training import data as data_lib
from official.training import optimizers
from official.training import steps as steps_lib
from official.training import strategy as strategy_lib
from official.training.logging import RunStats
from official.training.logging import TrainingLogger

MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")


class Trainer:
    """Trains a model that computes its own loss, under any strategy.

    Args:
        model_fn: callable returning the model (called under the strategy's
            scope and the dtype policy). A `GardenModel` computes its loss with
            `compute_loss`; for other models pass `loss_fn`.
        optimizer_config: dict of `build_optimizer` kwargs, or a callable
            returning a Keras optimizer (called under the strategy's scope).
            With a dict, the papers' no-weight-decay rule is applied.
        strategy: a `tf.distribute.Strategy`, a `make_strategy` kind, or None
            (the current strategy).
        out_dir: str or None. Checkpoints, logs and metrics go here.
        jit_compile: bool. XLA-compile the forward/backward pass.
        mixed_precision: None, "mixed_float16" (adds a LossScaleOptimizer) or
            "mixed_bfloat16".
        clip_norm: float or None. Clip the global gradient norm (of the
            gradient summed over replicas). Also taken from the optimizer's
            `global_clipnorm`.
        checkpoint_every: int or None. Save every this many steps (checkpoints
            are also saved at each epoch end and at the end of `fit`).
        keep_checkpoints: int. How many checkpoints to keep.
        log_every: int. Steps between CSV/TensorBoard rows.
        steps_per_execution: int. Steps per `tf.function` call (a `tf.range`
            loop on the device; fewer host round trips, useful on TPU).
        split_batch: callable `batch -> (x, y)`; default
            `data.default_split_batch` (`y = batch.pop("labels")`).
        loss_fn: callable `(model, x, y, y_pred) -> scalar` per-replica mean
            loss; default `model.compute_loss(...)`.
        verbose: progress bar verbosity ("auto": only on a TTY).
        run_eagerly: bool. No `tf.function` (debugging).
        seed: int or None. `keras.utils.set_random_seed(seed)` before
            `model_fn`.
    """

    def __init__(
        self,
        model_fn,
        optimizer_config,
        strategy=None,
        out_dir=None,
        jit_compile=False,
        mixed_precision=None,
        clip_norm=None,
        checkpoint_every=None,
        keep_checkpoints=3,
        log_every=10,
        steps_per_execution=1,
        split_batch=None,
        loss_fn=None,
        verbose="auto",
        run_eagerly=False,
        seed=None,
    ):
        if mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"Trainer: mixed_precision must be one of {MIXED_PRECISION}; "
                f"got {mixed_precision!r}."
            )
        if isinstance(optimizer_config, keras.optimizers.Optimizer):
            raise TypeError(
                "Trainer: pass optimizer_config as a dict of build_optimizer "
                "kwargs or a callable, not an optimizer instance: the "
                "optimizer must be created under the strategy's scope."
            )
        if steps_per_execution < 1 or log_every < 1:
            raise ValueError(
                "Trainer: steps_per_execution and log_every must be >= 1."
            )
        self.model_fn = model_fn
        self.optimizer_config = optimizer_config
        self.strategy = (
            tf.distribute.get_strategy()
            if strategy is None
            else strategy_lib.make_strategy(strategy)
        )
        self.out_dir = out_dir
        self.jit_compile = jit_compile
        self.mixed_precision = mixed_precision
        self.clip_norm = clip_norm
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.log_every = log_every
        self.steps_per_execution = steps_per_execution
        self.split_batch = split_batch or data_lib.default_split_batch
        self.loss_fn = loss_fn or steps_lib.default_loss_fn
        self.verbose = verbose
        self.run_eagerly = run_eagerly
        self.seed = seed
        self.chief = strategy_lib.is_chief(self.strategy)
        self.model = None
        self.optimizer = None
        self.step = 0
        self.resumed_from_step = None
        self._last_saved = None
        self._train_function = None
        self._eval_function = None
        self._eval_fn = None
        self._manager = None

    # ------------------------------------------------------------------ setup
    def _make_model(self):
        previous = keras.config.dtype_policy()
        if self.mixed_precision:
            keras.config.set_dtype_policy(self.mixed_precision)
        try:
            if self.seed is not None:
                keras.utils.set_random_seed(self.seed)
            return self.model_fn()
        finally:
            keras.config.set_dtype_policy(previous)

    def _make_optimizer(self, model):
        loss_scale = self.mixed_precision == "mixed_float16"
        if isinstance(self.optimizer_config, dict):
            optimizer = optimizers.build_optimizer(
                **self.optimizer_config, model=model, loss_scale=loss_scale
            )
        elif callable(self.optimizer_config):
            optimizer = self.optimizer_config()
            if loss_scale and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer
            ):
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        else:
            raise TypeError(
                "Trainer: optimizer_config must be a dict or a callable; got "
                f"{type(self.optimizer_config).__name__}."
            )
        self._take_over_clipping(optimizer)
        return optimizer

    def _take_over_clipping(self, optimizer):
        """Moves Keras' pre-all-reduce clipping into the step (see steps.py)."""
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if inner.global_clipnorm:
            if self.clip_norm and self.clip_norm != inner.global_clipnorm:
                raise ValueError(
                    f"Trainer: clip_norm={self.clip_norm} but the optimizer "
                    f"has global_clipnorm={inner.global_clipnorm}."
                )
            self.clip_norm = inner.global_clipnorm
            inner.global_clipnorm = None
        if (inner.clipnorm or inner.clipvalue) and (
            self.strategy.num_replicas_in_sync > 1
        ):
            raise ValueError(
                "Trainer: per-variable clipnorm/clipvalue would clip each "
                "replica's partial gradient; use clip_norm (global norm)."
            )

    def _setup(self, sample_batch):
        """Builds model and optimizer under the scope, restores a checkpoint."""
        if self.model is not None:
            return
        with self.strategy.scope():
            model = self._make_model()
            if not model.built:
                x, _ = self.split_batch(sample_batch)
                x = tf.nest.map_structure(lambda t: t[:1], x)
                model(x, training=False)
            optimizer = self._make_optimizer(model)
            optimizer.build(model.trainable_variables)
            self._step_variable = tf.Variable(
                0, dtype=tf.int64, trainable=False
            )
        self.model, self.optimizer = model, optimizer
        self._train_function = steps_lib.make_train_function(
            model,
            optimizer,
            self.strategy,
            self.split_batch,
            loss_fn=self.loss_fn,
            clip_norm=self.clip_norm,
            jit_compile=self.jit_compile,
            run_eagerly=self.run_eagerly,
        )
        if self.out_dir:
            checkpoint = tf.train.Checkpoint(
                model=model, optimizer=optimizer, step=self._step_variable
            )
            self._manager = checkpointing.CheckpointManager(
                f"{self.out_dir}/checkpoints",
                checkpoint,
                keep=self.keep_checkpoints,
                chief=self.chief,
                worker=strategy_lib.worker_id(self.strategy),
            )
            state = self._manager.restore()
            if state is not None:
                self.step = int(state["step"])
                self.resumed_from_step = self.step
                self._last_saved = self.step
                if int(self._step_variable.numpy()) != self.step:
                    raise ValueError(
                        "Checkpoint step counter and state.json disagree: "
                        f"{int(self._step_variable.numpy())} vs {self.step}."
                    )

    def save_checkpoint(self, steps_per_epoch=None):
        """Writes a checkpoint for the current step (every worker calls it)."""
        if self._manager is None:
            return None
        self._step_variable.assign(self.step)
        spe = steps_per_epoch or 0
        state = {
            "epoch": self.step // spe if spe else 0,
            "step_in_epoch": self.step % spe if spe else self.step,
            "steps_per_epoch": spe,
        }
        self._last_saved = self.step
        return self._manager.save(self.step, state)

    @property
    def learning_rate(self):
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    # -------------------------------------------------------------------- fit
    def _plan(self, source, epochs, steps, steps_per_epoch):
        if (epochs is None) == (steps is None):
            raise ValueError(
                "Trainer.fit: pass exactly one of epochs or steps."
            )
        steps_per_epoch = steps_per_epoch or source.steps_per_epoch()
        if epochs is not None:
            if not steps_per_epoch:
                raise ValueError(
                    "Trainer.fit: the dataset's length is unknown; pass "
                    "steps_per_epoch with epochs."
                )
            return steps_per_epoch, epochs * steps_per_epoch
        return steps_per_epoch or steps, steps

    def _next_boundary(self, epoch_end):
        candidates = [epoch_end, self.step + self.steps_per_execution]
        candidates.append((self.step // self.log_every + 1) * self.log_every)
        if self.checkpoint_every:
            every = self.checkpoint_every
            candidates.append((self.step // every + 1) * every)
        return min(candidates)

    def fit(
        self,
        data,
        *,
        epochs=None,
        steps=None,
        steps_per_epoch=None,
        eval_data=None,
        eval_fn=None,
        eval_steps=None,
    ):
        """Trains until `steps` (or `epochs * steps_per_epoch`) steps in total.

        Args:
            data: a `tf.data.Dataset` of global batches or a callable, see
                `official.training.data`.
            epochs / steps: the total length of the run (exactly one).
            steps_per_epoch: steps per epoch (default: the dataset's length).
            eval_data: optional evaluation data, evaluated after every epoch.
            eval_fn: optional `(model, x, y) -> dict` of per-batch means
                (default: the loss).
            eval_steps: optional number of evaluation batches.

        Returns:
            The metrics dict also written to `out_dir/metrics.json`. A run
            that is already complete trains nothing and returns the metrics
            file of the run that completed it.
        """
        source = data_lib.DataSource(data, self.strategy)
        self._setup(source.sample_batch())
        steps_per_epoch, total = self._plan(
            source, epochs, steps, steps_per_epoch
        )
        num_epochs = math.ceil(total / steps_per_epoch)
        logger = TrainingLogger(
            self.out_dir, chief=self.chief, verbose=self.verbose
        )
        if self.step >= total:
            logger.close()
            return dict(logger.read_metrics() or {}, steps_this_run=0)
        logger.resume(self.step)
        stats = RunStats(self.step)
        eval_metrics = None
        for epoch in range(self.step // steps_per_epoch, num_epochs):
            begin = epoch * steps_per_epoch
            end = min(begin + steps_per_epoch, total)
            iterator = source.iterator(epoch, self.step - begin, self.step)
            logger.start_epoch(
                epoch, num_epochs, end - begin, self.step - begin
            )
            stats.start_epoch()
            while self.step < end:
                n = self._next_boundary(end) - self.step
                self._run_steps(iterator, n, stats, epoch, steps_per_epoch)
                source.consumed(n)
                logger.progress(
                    self.step - begin, stats.last_loss, self.learning_rate
                )
                if self.step % self.log_every == 0 or self.step == total:
                    logger.log_step(stats.step_row(epoch, self.learning_rate))
                if self.checkpoint_every and not (
                    self.step % self.checkpoint_every
                ):
                    self.save_checkpoint(steps_per_epoch)
            row = stats.epoch_row(epoch)
            if eval_data is not None:
                eval_metrics = self.evaluate(eval_data, eval_fn, eval_steps)
                row.update({f"eval_{k}": v for k, v in eval_metrics.items()})
                logger.log_eval(eval_metrics, self.step)
            logger.log_epoch(row)
            if self._last_saved != self.step:
                self.save_checkpoint(steps_per_epoch)

        metrics = dict(
            stats.summary(),
            resumed_from_step=self.resumed_from_step,
            epochs=num_epochs,
            steps_per_epoch=steps_per_epoch,
            num_replicas=self.strategy.num_replicas_in_sync,
            strategy=strategy_lib.strategy_name(self.strategy),
            jit_compile=self.jit_compile,
            mixed_precision=self.mixed_precision,
            eval=eval_metrics,
        )
        logger.write_metrics(metrics)
        logger.close()
        return metrics

    def _run_steps(self, iterator, n, stats, epoch, steps_per_epoch):
        """Runs `n` steps in one call of the train function."""
        t0 = time.perf_counter()
        try:
            loss_sum, samples = self._train_function(
                iterator, tf.constant(n, tf.int32)
            )
            loss_sum, samples = float(loss_sum), float(samples)
        except tf.errors.OutOfRangeError as error:
            raise ValueError(
                "Trainer.fit: the data ran out before step "
                f"{self.step + n} (epoch {epoch}, {steps_per_epoch} steps per "
                "epoch); pass steps_per_epoch no larger than the batches per "
                "epoch, or repeat the dataset."
            ) from error
        self.step += n
        stats.add(self.step, n, loss_sum, samples, time.perf_counter() - t0)

    # --------------------------------------------------------------- evaluate
    def evaluate(self, data, eval_fn=None, steps=None):
        """Mean of `eval_fn`'s metrics over `data` (weighted by batch size)."""
        if self.model is None:
            self._setup(data_lib.sample_eval_batch(data))
        if self._eval_function is None or eval_fn is not self._eval_fn:
            loss_fn = self.loss_fn

            def default(model, x, y):
                return steps_lib.default_eval_fn(model, x, y, loss_fn)

            self._eval_fn = eval_fn
            self._eval_function = steps_lib.make_eval_function(
                self.model,
                self.strategy,
                self.split_batch,
                eval_fn or default,
                run_eagerly=self.run_eagerly,
            )
        totals, count = None, 0.0
        for i, batch in enumerate(
            data_lib.distribute_eval_data(data, self.strategy)
        ):
            if steps is not None and i >= steps:
                break
            sums, n = self._eval_function(batch)
            sums = {k: float(v) for k, v in sums.items()}
            totals = (
                sums
                if totals is None
                else {k: totals[k] + sums[k] for k in totals}
            )
            count += float(n)
        if not count:
            raise ValueError("Trainer.evaluate: the evaluation data is empty.")
        return {k: v / count for k, v in totals.items()}
