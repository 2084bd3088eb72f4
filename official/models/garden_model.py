"""`GardenModel`: the base class of every garden model.

What it adds to `keras.Model`:

* input validation at the model boundary (`self.check_input`), raising a
  `ValueError` that names the model, the expected and the received shape;
* named inputs: a model reads a dict of standard names (`images`, `points`,
  `token_ids`, ...). A model with one required input also takes a bare tensor;
* the model computes its own loss: subclasses implement
  `task_loss(x, y, y_pred, sample_weight)`, which `compute_loss` (used by
  `fit` and by `official.training`) adds to any layer losses;
* `compile()` with working defaults (AdamW), so `fit()` just works.
"""

import keras
from keras import ops


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
