r"""Time of the `ecoformer` kernel vs sequence length (log-log slope).

    python -m garden.ecoformer.ecoformer_bench --lengths 1024 2048 4096 \
        8192 16384 --dense-max 4096

Self-attention on random (B, L, H, D) float32 inputs (default B=1, H=4,
D=64, b=16 bits, m=25 anchors as the paper), shared Q == K as EcoFormer's
`to_qk`, compiled with XLA (`tf.function(jit_compile=True)` on the
TensorFlow backend, `jax.jit` with KERAS_BACKEND=jax), one warm-up call,
the fastest of `--reps` timed calls (robust to other jobs on a shared
machine), all lengths in one process (time only; the attention bench
`official.attention.bench` measures memory in fresh processes but cannot
pass the hash-function tensors). `dense` runs up to `--dense-max` as
the quadratic reference. Prints a table and the least-squares log-log
slopes (time ~ L^slope).
"""

import argparse
import time

import numpy as np


def _compile(fn):
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn), lambda out: out.block_until_ready()
    import tensorflow as tf

    return tf.function(fn, jit_compile=True), lambda out: out.numpy()


def time_kernel(kernel, length, args, tensors, **static):
    """Fastest call time (s) and compile time; `tensors` (hash weights) are
    traced arguments, `static` options (normalize) are closed over."""
    from keras import ops

    from official.attention import attention

    rng = np.random.default_rng(0)
    shape = (args.batch, length, args.heads, args.dim)
    qk = ops.convert_to_tensor(rng.standard_normal(shape).astype("float32"))
    v = ops.convert_to_tensor(rng.standard_normal(shape).astype("float32"))

    def fn(qk, v, tensors):
        return attention(qk, qk, v, kernel=kernel, **tensors, **static)

    step, sync = _compile(fn)
    start = time.perf_counter()
    sync(step(qk, v, tensors))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        sync(step(qk, v, tensors))
        times.append(time.perf_counter() - start)
    return float(np.min(times)), compile_s


def hash_tensors(args):
    from keras import ops

    rng = np.random.default_rng(1)
    h, b, m, d = args.heads, args.bits, args.anchors, args.dim
    as_tensor = lambda x: ops.convert_to_tensor(x.astype("float32"))  # noqa
    return dict(
        hash_weights=as_tensor(rng.standard_normal((h, b, m))),
        anchors=as_tensor(rng.standard_normal((h, m, d)) / np.sqrt(d)),
        feature_mean=as_tensor(np.zeros((h, m))))


def main(argv=None):
    from official.attention.bench_report import loglog_slope

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+",
                   default=[1024, 2048, 4096, 8192, 16384])
    p.add_argument("--dense-max", type=int, default=4096)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--bits", type=int, default=16)
    p.add_argument("--anchors", type=int, default=25)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)

    runs = {"ecoformer (kernel_smoother)": ("ecoformer", "kernel_smoother"),
            "ecoformer (official)": ("ecoformer", "official"),
            "dense": ("dense", None)}
    print("| kernel | L | ms / call | compile s |\n|---|---:|---:|---:|")
    for label, (kernel, normalize) in runs.items():
        lengths = [n for n in args.lengths
                   if kernel != "dense" or n <= args.dense_max]
        ms = []
        for n in lengths:
            if kernel == "dense":
                t, c = time_kernel(kernel, n, args, {})
            else:
                t, c = time_kernel(kernel, n, args, hash_tensors(args),
                                   normalize=normalize)
            ms.append(1e3 * t)
            print(f"| {label} | {n} | {1e3 * t:.1f} | {c:.1f} |", flush=True)
        if len(lengths) > 1:
            print(f"slope {label}: {loglog_slope(lengths, ms):.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
