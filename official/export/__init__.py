"""Export garden models to SavedModel, LiteRT (TFLite) and ONNX, and run them.

    from official import export
    export.export_model(model, "m.tflite", example_inputs, format="tflite")
    outputs = export.run_exported("m.tflite", example_inputs)

Every format goes through one serving `tf.function` whose arguments are the
model's named inputs (sorted) and whose outputs are the model's outputs
flattened to a dict (a bare tensor becomes {"output": ...}). So the three
formats share one signature and parity checks compare like with like.
"""

from official.export.exporter import FORMATS  # noqa: F401
from official.export.exporter import export_model  # noqa: F401
from official.export.exporter import ExportError  # noqa: F401
from official.export.signature import serving_function  # noqa: F401
from official.export.parity import check_parity  # noqa: F401
from official.export.runners import run_exported  # noqa: F401
