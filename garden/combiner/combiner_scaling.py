r"""Time scaling of the Combiner kernels against dense attention (a script,
not a test; results in garden/combiner/README.md "Kernel time scaling").

    python -m garden.combiner.combiner_scaling --causal \
        --lengths 1024 2048 4096 8192 16384 65536 \
        --out runs/combiner_bench/scaling_causal.json

All (kernel, L) functions are compiled once (`tf.function(jit_compile=True)`,
inputs (1, L, 4, 64) float32, default kernel options) in ONE process, then
`--rounds` rounds call each of them in turn. Reported per point: the min
wall time and the median process CPU time of a call; the CPU time is less
sensitive than wall time to other jobs on a shared machine. Slopes are
least-squares fits of log(time) on log(L) (`official.attention.bench_report`).
Memory is not measured here (one process holds everything); use
`python -m official.attention.bench --kernels combiner_fixed ...` for peak
RSS in fresh processes.
"""

import argparse
import json
import statistics
import time

import numpy as np
import tensorflow as tf

from official.attention import attention
from official.attention.bench_report import loglog_slope

KERNELS = ("dense", "combiner_fixed", "combiner_logsparse", "combiner_axial",
           "combiner_mixture")


def compile_all(lengths, kernels, causal, dense_max, log=print):
    rng = np.random.default_rng(0)
    fns, inputs = {}, {}
    for length in lengths:
        inputs[length] = tf.constant(
            rng.standard_normal((1, length, 4, 64)), tf.float32)
        for kernel in kernels:
            if kernel == "dense" and length > dense_max:
                continue

            def fn(x, kernel=kernel):
                return attention(x, x, x, kernel=kernel, causal=causal)

            fn = tf.function(fn, jit_compile=True)
            t0 = time.perf_counter()
            fn(inputs[length]).numpy()
            log(f"compiled {kernel} L={length} "
                f"({time.perf_counter() - t0:.1f} s)")
            fn(inputs[length]).numpy()  # warm-up
            fns[(kernel, length)] = fn
    return fns, inputs


def measure(fns, inputs, rounds):
    wall = {key: [] for key in fns}
    cpu = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            x = inputs[key[1]]
            t0, c0 = time.perf_counter(), time.process_time()
            fn(x).numpy()
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    return {key: dict(wall_min_ms=1e3 * min(wall[key]),
                      cpu_median_ms=1e3 * statistics.median(cpu[key]))
            for key in fns}


def report(results, kernels):
    lines = ["| kernel | L | min wall (ms) | median CPU (ms) |",
             "| --- | ---: | ---: | ---: |"]
    slopes = {}
    for kernel in kernels:
        lengths = sorted(length for k, length in results if k == kernel)
        for length in lengths:
            r = results[(kernel, length)]
            lines.append(f"| `{kernel}` | {length} | {r['wall_min_ms']:.1f} "
                         f"| {r['cpu_median_ms']:.1f} |")
        slopes[kernel] = dict(
            wall=loglog_slope(lengths, [results[(kernel, n)]["wall_min_ms"]
                                        for n in lengths]),
            cpu=loglog_slope(lengths, [results[(kernel, n)]["cpu_median_ms"]
                                       for n in lengths]))
    lines.append("")
    for kernel, s in slopes.items():
        if s["cpu"] is not None:
            lines.append(f"- `{kernel}` log-log slope: CPU {s['cpu']:.2f}, "
                         f"wall {s['wall']:.2f}")
    return "\n".join(lines), slopes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+",
                   default=[1024, 2048, 4096])
    p.add_argument("--kernels", nargs="+", default=list(KERNELS))
    p.add_argument("--dense-max", type=int, default=8192,
                   help="skip dense above this length")
    p.add_argument("--causal", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    fns, inputs = compile_all(args.lengths, args.kernels, args.causal,
                              args.dense_max)
    results = measure(fns, inputs, args.rounds)
    table, slopes = report(results, args.kernels)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"causal": args.causal, "slopes": slopes,
                       "points": {f"{k}|{n}": r
                                  for (k, n), r in results.items()}},
                      f, indent=1)


if __name__ == "__main__":
    main()
