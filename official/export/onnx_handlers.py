"""tf2onnx handlers for ops it cannot convert by itself.

Exact GELU (`activation="gelu"`, the papers' nn.GELU) lowers to `Erfc`, which
tf2onnx 1.17 cannot convert: it logs an error and writes an invalid file
(../shared/STACK.md). Erfc(x) = 1 - Erf(x) is exact and ONNX has Erf.
"""

import numpy as np

_REGISTERED = False


def register_onnx_handlers():
    global _REGISTERED
    if _REGISTERED:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:  # noqa: F841 - registered by the decorator
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(
                utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype)
            )
            erf = ctx.make_node("Erf", [node.input[0]])
            node.type = "Sub"
            ctx.replace_inputs(node, [one.output[0], erf.output[0]])

    _REGISTERED = True
