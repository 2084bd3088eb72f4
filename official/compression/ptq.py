"""Post-training quantization with Keras' native `Model.quantize` plus a
report of what was quantized (survey T1/T3; spec 2.1, 2.2).

`model.quantize("int8")` replaces the float kernel of every plain `Dense`,
`EinsumDense` and `Embedding` by an int8 kernel with one float32 scale per
output channel (abs-max, grid [-127, 127]) and quantizes the inputs of
Dense/EinsumDense per row at run time (dynamic activations). Subclasses of
those layers and every other layer are left in float and only announced by
a warning; `quantize_model` catches those warnings and returns a
`QuantizationReport`: for each leaf layer with weights, its status
(quantized / skipped and why) and its bytes before and after (exact
counts, `official.compression.measure.variable_bytes`). `"int4"` (packed
weight-only) goes through the same call ("expose, don't reimplement").

The garden's attention projections are plain `EinsumDense` layers and its
MLPs plain `Dense`, so they are covered automatically.

Saving: a quantized *functional* model reloads from `.keras` (its layer
configs carry the `int8_from_float32` dtype policy). A garden model
(`GardenModel`) rebuilds float layers from its constructor arguments, so it
records each quantized layer's mode, dtype policy and `quantization_config`
in its build config and re-quantizes exactly those layers before the
weights load (official/models/garden_model.py): its `.keras` file reloads
too. Other subclassed Keras models do not; for them, rebuild the model,
call `quantize` with the same mode, then `load_weights`
(`reload_quantized`).
"""

import dataclasses
import re
import warnings

from official.compression.measure import variable_bytes


@dataclasses.dataclass
class LayerQuantization:
    """One leaf layer with weights: its status and bytes."""

    path: str
    layer_class: str
    status: str  # "quantized" or "skipped"
    mode: str | None
    bytes_before: int
    bytes_after: int
    reason: str = ""


@dataclasses.dataclass
class QuantizationReport:
    """What `quantize_model` did, layer by layer.

    `other_bytes` counts variables owned directly by non-leaf layers (e.g. a
    cls token or a position table); they are never quantized.
    """

    mode: str
    layers: list
    other_bytes: int

    @property
    def quantized(self):
        return [r for r in self.layers if r.status == "quantized"]

    @property
    def skipped(self):
        return [r for r in self.layers if r.status == "skipped"]

    @property
    def bytes_before(self):
        return sum(r.bytes_before for r in self.layers) + self.other_bytes

    @property
    def bytes_after(self):
        return sum(r.bytes_after for r in self.layers) + self.other_bytes

    def quantized_bytes(self):
        """(float bytes, quantized bytes) of the quantized layers only."""
        rows = self.quantized
        return (sum(r.bytes_before for r in rows),
                sum(r.bytes_after for r in rows))

    def to_markdown(self):
        lines = ["| layer | class | status | bytes before | bytes after |",
                 "|---|---|---|---:|---:|"]
        for r in self.layers:
            status = r.status if not r.reason else f"{r.status}: {r.reason}"
            lines.append(f"| {r.path} | {r.layer_class} | {status} | "
                         f"{r.bytes_before} | {r.bytes_after} |")
        lines.append(f"| (other variables) | | float | {self.other_bytes} | "
                     f"{self.other_bytes} |")
        lines.append(f"| **total** | | | {self.bytes_before} | "
                     f"{self.bytes_after} |")
        return "\n".join(lines)


def leaf_layers_with_weights(model):
    """Leaf layers (no sub-layers) that own variables, in model order."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if layer.weights and len(list(layer._flatten_layers())) == 1]


def _layer_bytes(layer):
    return sum(variable_bytes(v) for v in layer.weights)


def _skip_reason(layer, messages):
    for message in messages:
        if f"Layer {type(layer).__name__} " in message:
            return message.split(". ")[0]
    return "no quantize method"


def quantize_model(model, mode="int8", filters=None, config=None):
    """`model.quantize(mode)` plus a `QuantizationReport`.

    Args:
        model: a built Keras model (call it once first).
        mode: "int8" (weights and dynamic activations) or "int4" (weights).
        filters: as `Model.quantize`: a regex or list of regexes searched
            in the layer *name*, or a callable on the layer; only matching
            layers are quantized (the others are reported "skipped: filtered
            out").
        config: optional `keras.quantizers.QuantizationConfig`.

    Returns:
        QuantizationReport.
    """
    if not model.built:
        raise ValueError("quantize_model: build or call the model first.")
    leaves = leaf_layers_with_weights(model)
    before = {id(layer): _layer_bytes(layer) for layer in leaves}
    leaf_vars = {id(v) for layer in leaves for v in layer.weights}
    other = sum(variable_bytes(v) for v in model.weights
                if id(v) not in leaf_vars)
    def selected(layer):
        # Keras' `quantize` raises on any unbuilt leaf, even one without
        # weights: a DropPath / Dropout is never built by `load_model`'s
        # symbolic build, so a freshly loaded model would not quantize.
        if not layer.built and not layer.weights:
            return False
        return filters is None or _matches(layer, filters)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if config is not None:
            model.quantize(config=config, filters=selected)
        else:
            model.quantize(mode, filters=selected)
    messages = [str(w.message) for w in caught
                if "quantize" in str(w.message)]
    rows = []
    for layer in leaves:
        layer_mode = getattr(layer, "quantization_mode", None)
        if layer_mode:
            status, reason = "quantized", ""
        elif filters is not None and not _matches(layer, filters):
            status, reason = "skipped", "filtered out"
        else:
            status, reason = "skipped", _skip_reason(layer, messages)
        rows.append(LayerQuantization(
            path=layer.path, layer_class=type(layer).__name__,
            status=status, mode=layer_mode,
            bytes_before=before[id(layer)], bytes_after=_layer_bytes(layer),
            reason=reason))
    return QuantizationReport(mode=mode if config is None else config.mode,
                              layers=rows, other_bytes=other)


def _matches(layer, filters):
    if callable(filters):
        return bool(filters(layer))
    if isinstance(filters, str):
        filters = [filters]
    return any(re.search(f, layer.name) for f in filters)


def reload_quantized(fresh_model, weights_path, mode="int8"):
    """Loads `model.save_weights(weights_path)` of a quantized model into a
    freshly built copy of the float model (quantized here with `mode`).

    The workaround for subclassed models that are not garden models, whose
    `.keras` file does not reload quantized (see module docstring).
    Returns `fresh_model`.
    """
    if not fresh_model.built:
        raise ValueError("reload_quantized: build or call the model first.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh_model.quantize(mode)
    fresh_model.load_weights(weights_path)
    return fresh_model

