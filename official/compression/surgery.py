"""Replace a built layer's sub-layer by a smaller one (physical slicing).

Keras locks a layer's state once it is built; Keras itself unlocks it to
swap kernels in `quantize` and `enable_lora`. Structured pruning does the
same with the layer's tracker (a private Keras API, exercised by the
compression tests so a Keras upgrade that changes it fails loudly): the old
sub-layer is replaced in the tracked-layer list and the attribute, so
`weights`, `trainable_variables` and `save_weights` see only the new one.

A sliced model's `get_config()` still describes the unpruned architecture
(constructor arguments such as `num_heads` are per model, not per layer).
A garden model (`GardenModel`) therefore records each edit
(`record_edit`): the registered name of the pruning function and its
arguments, which its `.keras` build config stores and `load_model` replays
on the freshly built model before the weights load. Other models (plain
functional or subclassed Keras models) still do not reload from `.keras`
after slicing: keep their weights with `save_weights` and re-apply the same
pruning to a fresh model before `load_weights`.
"""

import contextlib

import keras


def resized_copy(layer, input_shape, weights, **config_overrides):
    """A new layer of `layer`'s class and config (with overrides), built on
    `input_shape` under the original's name scope, holding `weights`."""
    if getattr(layer, "quantization_mode", None):
        raise ValueError(f"'{layer.path}' is quantized; prune before "
                         "quantizing.")
    config = layer.get_config()
    config.update(config_overrides)
    new = type(layer).from_config(config)
    with contextlib.ExitStack() as stack:
        for part in layer.path.split("/")[:-1]:
            stack.enter_context(keras.name_scope(part))
        new.build(input_shape)
    new.set_weights(weights)
    return new


def replace_sublayer(parent, attribute, new_layer):
    """`parent.<attribute> = new_layer` on a built (locked) layer."""
    old = getattr(parent, attribute)
    tracker = parent._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        tracker.replace_tracked_value("layers", old, new_layer)
        setattr(parent, attribute, new_layer)
    finally:
        if locked:
            tracker.lock()
    return old


def reset_compiled_functions(model):
    """Forget traced train/test/predict functions (shapes changed)."""
    model.train_function = None
    model.test_function = None
    model.predict_function = None


def replayable_edit(name):
    """Registers `fn(model, **args)` as `garden>{name}`, marked as an edit
    `GardenModel` may replay when it loads a `.keras` file (it refuses any
    other registered object)."""
    def decorate(fn):
        fn.garden_structure_edit = True
        return keras.saving.register_keras_serializable(
            package="garden", name=name)(fn)
    return decorate


def record_edit(model, op, **args):
    """Records a replayable edit on a `GardenModel` (no-op for others).

    `op` is the registered name of a function `fn(model, **args)`; see
    `GardenModel.record_structure_edit`.
    """
    record = getattr(model, "record_structure_edit", None)
    if record is not None:
        record(op, **args)
