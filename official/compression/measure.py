"""Size and latency measurements shared by the compression tools.

Sizes are exact byte counts of the variables a model holds (element count x
item size of the variable's dtype), so an int8 kernel counts 1 byte per
element and its float32 scales 4 bytes each. `compressed_bytes` adds what a
sparse (pruned) model gains on disk: the zlib size of all variables, the
"gzip size" that tfmot reports for magnitude pruning.

Latency is the median wall time of repeated calls after warm-up. The CPU of
the development machines is shared, so report latency as ratios measured in
one run (same process, interleaved); never assert it in tests.
"""

import time
import zlib

import numpy as np
from keras import ops


def variable_bytes(variable):
    """Bytes of one variable: element count x dtype item size."""
    dtype = np.dtype(str(variable.dtype).replace("bfloat16", "float16"))
    return int(np.prod(variable.shape, dtype=np.int64)) * dtype.itemsize


def weight_bytes(model_or_layer):
    """Bytes of every variable (trainable or not) of a model or layer."""
    return sum(variable_bytes(v) for v in model_or_layer.weights)


def parameter_count(model_or_layer):
    """Number of scalars in all variables (int8 kernels included)."""
    return sum(int(np.prod(v.shape, dtype=np.int64))
               for v in model_or_layer.weights)


def compressed_bytes(model_or_layer, level=6):
    """zlib size of all variables concatenated (a sparse model's zeros
    compress; a dense float model barely does)."""
    blob = b"".join(np.ascontiguousarray(ops.convert_to_numpy(v)).tobytes()
                    for v in model_or_layer.weights)
    return len(zlib.compress(blob, level))


def zero_fraction(variables):
    """Fraction of exactly-zero entries over `variables`."""
    zeros = total = 0
    for v in variables:
        a = ops.convert_to_numpy(v)
        zeros += int(np.sum(a == 0))
        total += a.size
    return zeros / max(total, 1)


def median_ms(fn, *args, repeats=20, warmup=3):
    """Median wall time of `fn(*args)` in milliseconds."""
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))
