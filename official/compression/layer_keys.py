"""How the compression tools name layers in their dicts.

Keys are layer paths *without the model's own name* when the path starts
with it ("encoder/blocks_0/attn", not "mae_classifier_2/encoder/blocks_0/
attn"), so scores computed on one subclassed model apply to a twin built
from the same config (Keras numbers repeated model names:
`mae_classifier`, `mae_classifier_1`, ...). Layers of a functional model
have paths without the model name and keep them. Lookups also accept full
paths and layer objects.
"""


def layer_key(model, layer):
    """`layer.path` without a leading `model.name + "/"`."""
    prefix = model.name + "/"
    path = layer.path
    return path[len(prefix):] if path.startswith(prefix) else path


def index_layers(model, layers):
    """{key: layer} for `layers` of `model`."""
    return {layer_key(model, layer): layer for layer in layers}


def resolve(model, index, key):
    """The layer of `index` named by a key, a full path or a layer."""
    if not isinstance(key, str):
        key = layer_key(model, key)
    if key in index:
        return index[key]
    for layer in index.values():
        if layer.path == key:
            return layer
    raise KeyError(f"No layer '{key}'; known: {sorted(index)}.")
