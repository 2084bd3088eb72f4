"""`GardenModel`: the base class of every garden model.

What it adds to `keras.Model`:

* input validation at the model boundary (`self.check_input`), raising a
  `ValueError` that names the model, the expected and the received shape;
* named inputs: a model reads a dict of standard names (`images`, `points`,
  `token_ids`, ...). A model with one required input also takes a bare tensor;
* the model computes its own loss: subclasses implement
  `task_loss(x, y, y_pred, sample_weight)`, which `compute_loss` (used by
  `fit` and by `official.training`) adds to any layer losses;
* `compile()` with working defaults (AdamW), so `fit()` just works;
* quantized and structurally pruned models reload from `.keras` (see
  "Quantization" and "Structural edits" below).

Quantization. Keras reloads a quantized *functional* model because each
layer's config carries its quantized dtype policy (`"int8_from_float32"`)
and `quantization_config`, so `build` creates the int8 variables before the
weights load. A garden model's constructor always builds float layers, so
`GardenModel` records the same per-layer facts itself: `get_build_config`
adds, only when some sub-layer is quantized, a list under
`QUANTIZATION_KEY` of {layer key (path without the model name), mode,
dtype policy name, serialized `quantization_config`}, read from the layers
at save time (so it is whatever `quantize(mode, filters=...)`, a direct
`layer.quantize` or static calibration actually left). `build_from_config`
builds the float model, then re-applies `layer.quantize(mode, config)` to
exactly those layers, before Keras loads the weights. Unquantized models
save exactly as before (no new key).

Structural edits. Tools that resize sub-layers of a built model in place
(`official.compression.prune_heads` / `prune_neurons`) leave `get_config`
describing the original widths. They call `record_structure_edit(op,
**args)`, where `op` names a registered function `fn(model, **args)` that
redoes the edit on a freshly built twin; `get_build_config` stores the list
under `STRUCTURE_KEY` (only when there is one) and `build_from_config`
replays it after building and before restoring the quantization (prune,
then quantize), so the file reloads with the sliced shapes.
"""

import json
import warnings

import keras
from keras import ops

# Build-config key of the per-layer quantization record (quantized models
# only; see the module docstring).
QUANTIZATION_KEY = "garden_quantization"
# Build-config key of the replayable structural edits (edited models only).
STRUCTURE_KEY = "garden_structure_edits"


class GardenModel(keras.Model):
    """Base class for garden models; see the module docstring."""

    # Standard input names the model reads; the first is the primary input.
    input_names = ()
    # Inputs that may be absent from the dict.
    optional_input_names = ()

    # ------------------------------------------------------------------ inputs
    def unpack_inputs(self, inputs):
        """Returns a dict of named inputs, validating that required ones exist."""
        if not isinstance(inputs, dict):
            required = [
                n for n in self.input_names if n not in self.optional_input_names
            ]
            if len(required) != 1:
                raise ValueError(
                    f"{self.model_label}: expected a dict with keys "
                    f"{list(self.input_names)}; received a "
                    f"{type(inputs).__name__}."
                )
            inputs = {required[0]: inputs}
        unknown = set(inputs) - set(self.input_names)
        if unknown:
            raise ValueError(
                f"{self.model_label}: unknown inputs {sorted(unknown)}; "
                f"expected keys {list(self.input_names)}."
            )
        for name in self.input_names:
            if name not in inputs and name not in self.optional_input_names:
                raise ValueError(
                    f"{self.model_label}: missing input '{name}'; "
                    f"received keys {sorted(inputs)}."
                )
        return dict(inputs)

    @property
    def model_label(self):
        registry_name = getattr(type(self), "registry_name", None)
        label = type(self).__name__
        if registry_name:
            label = f"{label} ('{registry_name}')"
        return label

    def check_input(self, name, tensor, expected_shape, dtype="float"):
        """Checks rank, static dims and dtype kind of one input.

        Args:
            name: str. The input name used in the error message.
            tensor: the input tensor (eager, symbolic or traced).
            expected_shape: tuple of ints or None (None = any size).
            dtype: "float", "int" or None (no check).
        """
        shape = tuple(tensor.shape)
        expected = tuple(expected_shape)
        shown = "(" + ", ".join("?" if d is None else str(d) for d in expected)
        shown += ")"
        if len(shape) != len(expected):
            raise ValueError(
                f"{self.model_label}: input '{name}' must have rank "
                f"{len(expected)} with shape {shown}; received shape {shape}."
            )
        for got, want in zip(shape, expected):
            if want is not None and got is not None and got != want:
                raise ValueError(
                    f"{self.model_label}: input '{name}' must have shape "
                    f"{shown}; received shape {shape}."
                )
        if dtype is not None:
            dt = keras.backend.standardize_dtype(tensor.dtype)
            is_float = "float" in dt
            is_int = "int" in dt
            if (dtype == "float" and not is_float) or (
                dtype == "int" and not is_int
            ):
                raise ValueError(
                    f"{self.model_label}: input '{name}' must have a {dtype} "
                    f"dtype; received {dt}."
                )
        return tensor

    # -------------------------------------------------------------------- loss
    def task_loss(self, x, y, y_pred, sample_weight=None):
        raise NotImplementedError(
            f"{type(self).__name__} must implement task_loss()."
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = self.task_loss(x, y, y_pred, sample_weight)
        if self.losses:
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="adamw", loss=None, **kwargs):
        if optimizer == "adamw":
            optimizer = keras.optimizers.AdamW(learning_rate=1e-3)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    # ------------------------------------------------------------ quantization
    def _keyed_layers(self):
        """[(key, layer)] for every sub-layer, in `_flatten_layers` order.

        The key is the layer path without this model's name (stable across
        Keras' renaming of twins: `mae_classifier_1`); a layer without a
        path (Keras sets it when a layer with weights is built) uses its
        name; a key shared by several layers gets `#<occurrence>` appended.
        """
        prefix = self.name + "/"
        keyed, seen = [], {}
        for layer in self._flatten_layers(include_self=False):
            path = layer.path or layer.name
            key = path[len(prefix):] if path.startswith(prefix) else path
            count = seen.get(key, 0)
            seen[key] = count + 1
            keyed.append((key if count == 0 else f"{key}#{count}", layer))
        return keyed

    def quantization_record(self):
        """The per-layer quantization of this model (empty list: float)."""
        record = []
        for key, layer in self._keyed_layers():
            mode = getattr(layer, "quantization_mode", None)
            if not mode:
                continue
            record.append({
                "layer": key,
                "class_name": type(layer).__name__,
                "mode": mode,
                "dtype_policy": layer.dtype_policy.name,
                "config": keras.saving.serialize_keras_object(
                    getattr(layer, "quantization_config", None)),
            })
        return record

    def get_build_config(self):
        config = super().get_build_config()
        edits = self.structure_edits()
        record = self.quantization_record()
        if edits or record:
            config = dict(config or {})
        if edits:
            config[STRUCTURE_KEY] = edits
        if record:
            config[QUANTIZATION_KEY] = record
        return config

    def build_from_config(self, config):
        config = dict(config or {})
        edits = config.pop(STRUCTURE_KEY, None)
        record = config.pop(QUANTIZATION_KEY, None)
        super().build_from_config(config)
        if edits:
            self.replay_structure_edits(edits)
        if record:
            self.restore_quantization(record)

    # ------------------------------------------------------ structural edits
    def structure_edits(self):
        """The recorded structural edits, oldest first (JSON-able dicts)."""
        return json.loads(getattr(self, "_structure_edits_json", "[]"))

    def record_structure_edit(self, op, **args):
        """Records an in-place resize of sub-layers for `.keras` reloads.

        Args:
            op: registered name (`keras.saving.get_registered_object`) of a
                function `fn(model, **args)` that redoes the edit on a
                freshly built model of the same config; `fn` must have the
                attribute `garden_structure_edit = True` (set by
                `official.compression.surgery.replayable_edit`), anything
                else is refused at load time.
            **args: JSON-serialisable arguments of `fn`.
        """
        edits = self.structure_edits()
        edits.append({"op": op, "args": args})
        self._structure_edits_json = json.dumps(edits)

    def replay_structure_edits(self, edits):
        """Redoes `edits` (from `structure_edits()`) on this built model."""
        # The garden's edit functions register when their package imports.
        import official.compression  # noqa: F401

        if not self.built:
            raise ValueError(
                f"{self.model_label}: cannot replay structural edits on an "
                "unbuilt model (its build config has no input shapes).")
        for edit in edits:
            fn = keras.saving.get_registered_object(edit["op"])
            if not getattr(fn, "garden_structure_edit", False):
                raise ValueError(
                    f"{self.model_label}: unknown structural edit "
                    f"'{edit['op']}' (not a registered replayable edit).")
            fn(self, **edit["args"])
        self._structure_edits_json = json.dumps(list(edits))

    def restore_quantization(self, record):
        """Quantizes the layers named in `record` as recorded.

        Weights are not restored: the float kernels are quantized as they
        are (random right after `build`) and the loader overwrites them.
        """
        # The garden's own activation quantizer (static calibration) must be
        # registered before a record that names it is deserialized.
        import official.compression.calibration  # noqa: F401

        if not self.built:
            raise ValueError(
                f"{self.model_label}: cannot restore the quantization of an "
                "unbuilt model (its build config has no input shapes).")
        layers = dict(self._keyed_layers())
        for entry in record:
            layer = layers.get(entry["layer"])
            if layer is None or type(layer).__name__ != entry["class_name"]:
                raise ValueError(
                    f"{self.model_label}: the saved quantization names layer "
                    f"'{entry['layer']}' ({entry['class_name']}); this model "
                    f"has {type(layer).__name__ if layer else 'no such layer'}"
                    ".")
            if getattr(layer, "quantization_mode", None) != entry["mode"]:
                config = keras.saving.deserialize_keras_object(
                    entry["config"])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    layer.quantize(entry["mode"], type_check=False,
                                   config=config)
            if layer.dtype_policy.name != entry["dtype_policy"]:
                raise ValueError(
                    f"{self.model_label}: layer '{entry['layer']}' restored "
                    f"with dtype policy '{layer.dtype_policy.name}'; saved "
                    f"'{entry['dtype_policy']}'.")
        self.train_function = None
        self.test_function = None
        self.predict_function = None
