"""`garden train` / `garden eval`: a registered model on an offline dataset.

Wires the three layers together without either knowing the other: the model
preset gives plain values (image size, channels, number of points), the
pipeline takes them, and `official.training.Trainer` runs the custom loop
under the chosen `tf.distribute` strategy. A classifier is evaluated with
accuracy and loss, a self-supervised model with its own loss.
"""

import inspect
import os

from keras import ops

import data_pipelines
import garden
from official import training

# Model config key -> dataset option, for the options a source accepts.
_OPTION_KEYS = {
    "image_size": "image_size",
    "num_channels": "channels",
    "num_points": "num_points",
}


def data_options(config, data):
    """Pipeline options read from a model config (only those `data` takes)."""
    source = data_pipelines.datasets._SOURCES.get(data)
    if source is None:
        raise ValueError(f"Unknown dataset '{data}'; available: "
                         f"{data_pipelines.list_datasets()}.")
    accepted = inspect.signature(source).parameters
    options = {}
    for key, option in _OPTION_KEYS.items():
        if key in config and option in accepted:
            options[option] = config[key]
    return options


def dataset_for_model(model_or_config, data, split, batch_size, seed=0,
                      shuffle=None, data_dir=None, input_context=None):
    config = model_or_config
    if not isinstance(config, dict):
        config = model_or_config.get_config()
    options = data_options(config, data)
    if data_dir is not None:
        options["root"] = data_dir
    return data_pipelines.get_dataset(
        data, split=split, batch_size=batch_size, seed=seed, shuffle=shuffle,
        input_context=input_context, **options)


def accuracy_eval_fn(model, x, y):
    logits = model(x, training=False)
    loss = model.compute_loss(x=x, y=y, y_pred=logits, training=False)
    pred = ops.cast(ops.argmax(logits, axis=-1), "int32")
    acc = ops.mean(ops.cast(ops.equal(pred, ops.cast(y, "int32")),
                            "float32"))
    return {"loss": loss, "accuracy": acc}


def _is_classifier(name):
    return garden.get_entry(name).example_labels is not None


def train(name, preset="tiny", data="digits", out_dir="runs/train",
          steps=None, epochs=None, batch_size=32, strategy="default",
          learning_rate=None, weight_decay=0.05, warmup_fraction=0.05,
          jit_compile=False, seed=0, data_dir=None, config_overrides=None,
          verbose="auto"):
    """Trains `name` and saves `out_dir/model.keras`; returns the metrics."""
    if (steps is None) == (epochs is None):
        steps = 200 if epochs is None else None
    config = garden.preset_info(name, preset)["config"]
    config.update(config_overrides or {})
    entry = garden.get_entry(name)
    train_ds = dataset_for_model(config, data, "train", batch_size, seed,
                                 shuffle=True, data_dir=data_dir)
    eval_ds = dataset_for_model(config, data, "test", batch_size, seed,
                                shuffle=False, data_dir=data_dir)
    steps_per_epoch = int(train_ds.cardinality())
    total = steps if steps is not None else epochs * steps_per_epoch
    lr = learning_rate if learning_rate is not None else 1e-3
    trainer = training.Trainer(
        model_fn=lambda: entry.cls(**config),
        optimizer_config=dict(
            name="adamw", learning_rate=lr, weight_decay=weight_decay,
            warmup_steps=int(warmup_fraction * total), total_steps=total),
        strategy=strategy, out_dir=out_dir, jit_compile=jit_compile,
        checkpoint_every=max(total // 4, 1), seed=seed, verbose=verbose)
    eval_fn = accuracy_eval_fn if _is_classifier(name) else None
    metrics = trainer.fit(train_ds, steps=total,
                          steps_per_epoch=min(steps_per_epoch, total),
                          eval_data=eval_ds, eval_fn=eval_fn)
    if training.is_chief(trainer.strategy):
        path = os.path.join(out_dir, "model.keras")
        trainer.model.save(path)
        metrics["model_path"] = path
    return metrics


def evaluate(path, data, split="test", batch_size=32, data_dir=None):
    """Loads a `.keras` model and evaluates it on `data`."""
    model = garden.load(path)
    name = type(model).registry_name
    ds = dataset_for_model(model, data, split, batch_size, shuffle=False,
                           data_dir=data_dir)
    totals, count = {}, 0
    for batch in ds:
        batch = dict(batch)
        y = batch.pop("labels", None)
        if _is_classifier(name):
            values = accuracy_eval_fn(model, batch, y)
        else:
            y_pred = model(batch, training=False)
            values = {"loss": model.compute_loss(x=batch, y=y, y_pred=y_pred,
                                                 training=False)}
        n = int(ops.shape(next(iter(batch.values())))[0])
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + float(v) * n
        count += n
    if not count:
        raise ValueError(f"Dataset '{data}' split '{split}' is empty.")
    return {"model": name, "data": data, "split": split, "examples": count,
            **{k: v / count for k, v in totals.items()}}


