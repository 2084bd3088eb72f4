"""The one registration decorator, and the model / preset registry.

A garden model class is registered once with `register_model(...)`. The
decorator

* registers the class with `keras.saving.register_keras_serializable(
  package="garden")`, so `keras.models.load_model` finds it after
  `import garden`;
* records the model name, its presets (plain dicts: config, expected
  parameter count and its source), the function that builds example inputs
  for a config, the registry taxonomy tags and the export formats the model
  cannot support (with the reason, so the sweep can assert the failure).

Layers use `register_layer()`, which only does the Keras registration.
"""

import copy
import dataclasses
from typing import Any
from typing import Callable

import keras

PACKAGE = "garden"

EXPORT_FORMATS = ("saved_model", "tflite", "onnx")


@dataclasses.dataclass
class ModelEntry:
    """Everything the registry knows about one model name."""

    name: str
    cls: type
    presets: dict
    example_inputs: Callable[..., Any]
    example_labels: Callable[..., Any] | None = None
    tags: dict = dataclasses.field(default_factory=dict)
    export_unsupported: dict = dataclasses.field(default_factory=dict)
    description: str = ""


_MODELS: dict[str, ModelEntry] = {}


def register_layer(name=None):
    """Registers a layer (or any Keras object) under the `garden` package."""
    return keras.saving.register_keras_serializable(package=PACKAGE, name=name)


def register_model(
    name,
    *,
    presets,
    example_inputs,
    example_labels=None,
    tags=None,
    export_unsupported=None,
    description="",
):
    """Class decorator that registers a garden model.

    Args:
        name: str. The registry name (`garden.build(name)`).
        presets: dict. Preset name -> dict with keys `config` (constructor
            kwargs), `params` (expected trainable parameter count or None),
            `source` (where `params` comes from) and `description`. Must
            contain `tiny` and `paper`.
        example_inputs: callable `(config, batch_size, seed) -> inputs` that
            `model(inputs)` accepts.
        example_labels: optional callable `(config, batch_size, seed) -> y`
            for supervised models; None for self-supervised ones.
        tags: dict of taxonomy tags (`domain`, `modality`, `task`, `paper`).
        export_unsupported: dict format -> reason, for export formats the
            model cannot support. The sweep asserts that export really fails.
        description: one line for `garden list`.
    """
    for required in ("tiny", "paper"):
        if required not in presets:
            raise ValueError(
                f"Model '{name}' must define a '{required}' preset; "
                f"got presets {sorted(presets)}."
            )
    for preset_name, preset in presets.items():
        if "config" not in preset:
            raise ValueError(
                f"Preset '{preset_name}' of model '{name}' has no 'config'."
            )
    unknown = set(export_unsupported or {}) - set(EXPORT_FORMATS)
    if unknown:
        raise ValueError(
            f"Model '{name}': unknown export formats {sorted(unknown)}; "
            f"expected a subset of {EXPORT_FORMATS}."
        )

    def decorator(cls):
        if name in _MODELS and _MODELS[name].cls is not cls:
            raise ValueError(f"Model name '{name}' is already registered.")
        cls = keras.saving.register_keras_serializable(package=PACKAGE)(cls)
        cls.registry_name = name
        _MODELS[name] = ModelEntry(
            name=name,
            cls=cls,
            presets=presets,
            example_inputs=example_inputs,
            example_labels=example_labels,
            tags=dict(tags or {}),
            export_unsupported=dict(export_unsupported or {}),
            description=description,
        )
        return cls

    return decorator


def get_entry(name):
    if name not in _MODELS:
        raise ValueError(
            f"Unknown model '{name}'. Registered models: {sorted(_MODELS)}."
        )
    return _MODELS[name]


def list_models(**tags):
    """Registered model names, optionally filtered by taxonomy tags."""
    names = []
    for name, entry in sorted(_MODELS.items()):
        if all(_tag_matches(entry.tags.get(k), v) for k, v in tags.items()):
            names.append(name)
    return names


def _tag_matches(value, wanted):
    if wanted is None:
        return True
    if isinstance(value, (list, tuple)):
        return wanted in value
    return value == wanted


def list_presets(name):
    return list(get_entry(name).presets)


def preset_info(name, preset):
    entry = get_entry(name)
    if preset not in entry.presets:
        raise ValueError(
            f"Model '{name}' has no preset '{preset}'. "
            f"Available presets: {sorted(entry.presets)}."
        )
    return copy.deepcopy(entry.presets[preset])


def preset_config(name, preset, **overrides):
    config = preset_info(name, preset)["config"]
    config.update(overrides)
    return config


def build(name, preset="tiny", **overrides):
    """Builds a registered model from a preset, with keyword overrides."""
    entry = get_entry(name)
    config = preset_config(name, preset, **overrides)
    return entry.cls(**config)


def example_inputs(name, preset="tiny", batch_size=2, seed=0, **overrides):
    entry = get_entry(name)
    config = preset_config(name, preset, **overrides)
    return entry.example_inputs(config, batch_size, seed)


def example_labels(name, preset="tiny", batch_size=2, seed=0, **overrides):
    entry = get_entry(name)
    if entry.example_labels is None:
        return None
    config = preset_config(name, preset, **overrides)
    return entry.example_labels(config, batch_size, seed)
