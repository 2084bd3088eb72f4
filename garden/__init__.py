"""garden: transformer and autoencoder papers as verified Keras 3 models.

    import garden
    garden.list_models()
    model = garden.build("point_mae", preset="tiny")
    x = garden.example_inputs("point_mae", preset="tiny")
    outputs = model(x, training=False)

`import garden` imports every paper package, which registers every model and
layer class with Keras, so `keras.models.load_model` (or `garden.load`) finds
them.
"""

from garden import _papers  # noqa: F401  (registers every paper)
from official.loading import ModelLoadError  # noqa: F401
from official.loading import load_model as load  # noqa: F401
from official.registry import build  # noqa: F401
from official.registry import example_inputs  # noqa: F401
from official.registry import example_labels  # noqa: F401
from official.registry import get_entry  # noqa: F401
from official.registry import list_models  # noqa: F401
from official.registry import list_presets  # noqa: F401
from official.registry import preset_info  # noqa: F401

__version__ = "0.1.0"
