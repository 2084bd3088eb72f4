"""The serving signature shared by every export format."""

import numpy as np
import tensorflow as tf


def as_named_inputs(inputs):
    """A dict of named NumPy arrays from a dict or a single array."""
    if isinstance(inputs, dict):
        return {k: np.asarray(v) for k, v in inputs.items()}
    return {"inputs": np.asarray(inputs)}


def flatten_outputs(outputs):
    """Model outputs as a flat dict of tensors, keys sorted."""
    if isinstance(outputs, dict):
        flat = {}
        for key in sorted(outputs):
            value = outputs[key]
            if isinstance(value, dict):
                for sub, tensor in flatten_outputs(value).items():
                    flat[f"{key}_{sub}"] = tensor
            else:
                flat[key] = value
        return flat
    if isinstance(outputs, (list, tuple)):
        return {f"output_{i}": o for i, o in enumerate(outputs)}
    return {"output": outputs}


def serving_function(model, example_inputs, dynamic_batch=False):
    """A concrete tf.function: named positional inputs -> flat output dict.

    The batch dimension is fixed to the example's unless `dynamic_batch`.
    """
    named = as_named_inputs(example_inputs)
    names = sorted(named)
    bare = not isinstance(example_inputs, dict)
    specs = []
    for name in names:
        shape = list(named[name].shape)
        if dynamic_batch:
            shape[0] = None
        specs.append(tf.TensorSpec(shape, tf.as_dtype(named[name].dtype),
                                   name=name))

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args):
        if bare:
            inputs = args[0]
        else:
            inputs = dict(zip(names, args))
        return flatten_outputs(model(inputs, training=False))

    return serve, names
