r"""Time and memory of attention kernels, one fresh subprocess per point.

    python -m official.attention.bench --lengths 1024 4096 16384 65536 \
        --kernels all --decode-context 2048 8192 32768 --budget 60 \
        --out runs/attention_bench

For each (kernel, length) a new Python process builds q, k, v of shape
(B, L, H, D) (default B=1, H=4, D=64, float32, self-attention), compiles the
kernel with `tf.function(jit_compile=True)`, runs `--warmup` calls, then times
`--reps` calls (median reported; `--budget S` cuts warm-up and timed calls of
long points to what fits in S seconds, at least one each). `--kernels all`
runs every registered kernel. Options a kernel needs come from
`--options` JSON, else `default_options` (`axial`: a near-square grid), and
kernels that own weights in `MultiHeadAttention` (`lowrank`, `performer`,
`linear_relu`, `ecoformer`, `lsh`) get them from their `params` builder,
as the layer does. Points that cannot run are reported, not timed
(`skip_reason`): `dense` / `split_k` where the (B, H, T, S) scores would not
fit in memory, and causal runs of the non-causal `lowrank`.

Memory is read from /proc/self/status: the
peak-RSS counter (VmHWM) is reset (`/proc/self/clear_refs` <- 5) once the
inputs exist, so "peak_mb" = peak RSS during compile + runs minus the RSS with
the inputs built, and "run_peak_mb" = the same for the timed runs alone (reset
again after warm-up). Where the reset is refused, ru_maxrss before/after is
used (it under-reports when the import peak is higher). Under TensorFlow's
BFC allocator (which `import official` makes the default) the timed calls
reuse the pool the first calls filled, so "run_peak_mb" is near 0 and
"peak_mb" is the figure to read; slopes and the plot use it.

The decode benchmark (`--decode-context N [N ...]`, 0 to skip) measures
tokens/s of generating one token against an N-token context: `split_k` (and
`--decode-kernels`) attend one query to the cached keys/values, whereas
"recompute" runs the full causal forward over all N tokens per new token (no
KV cache). It times the attention op only (no projections). With several
contexts, the log-log slope of time per token against the context is
reported.

If PyTorch is importable, `torch.nn.functional.scaled_dot_product_attention`
is timed on the same shapes ("torch_sdpa") and ratios are printed. Those
ratios divide two fresh-process medians taken minutes apart, so the machine's
drift enters them; for the `--paired` kernels (default `chunked`) the ratio is
also measured in `--paired-rounds` alternating rounds between a persistent
worker of the kernel and one of torch SDPA (`official.paired_timing`): the
median over rounds, with its range, is the figure to quote.

Outputs in `--out`: results.csv, decode.csv, paired.csv, results.md (tables,
log-log slopes of time and memory vs length), bench.png.
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

from official import paired_timing
from official.attention.bench_report import markdown
from official.attention.bench_report import plot
from official.attention.bench_report import slopes
from official.attention.bench_report import write_csv

_MARK = "BENCH_RESULT "


# --- measurement helpers (run inside the worker) ----------------------------


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class _PeakRSS:
    """Peak RSS (MB) beyond the RSS at `start()`."""

    def start(self):
        self.reset = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.reset = True
        except OSError:
            pass
        if self.reset:
            self.base_kb = _status_kb("VmRSS")
        else:
            import resource

            self.base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def peak_mb(self):
        if self.reset:
            peak = _status_kb("VmHWM")
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (peak - self.base_kb) / 1024.0


def _time_calls(fn, warmup, reps, rss, budget_s=None):
    """Compile call, `warmup` more calls, then `reps` timed calls (median).

    With `budget_s`, long points shrink: warm-up calls stop once the
    compile call plus warm-up exceed the budget, and the timed calls are
    cut to what fits in it (at least one of each)."""
    t0 = time.perf_counter()
    fn()
    compile_s = time.perf_counter() - t0
    call_s = compile_s
    for i in range(max(warmup - 1, 0)):
        if budget_s and i and time.perf_counter() - t0 > budget_s:
            break
        t1 = time.perf_counter()
        fn()
        call_s = time.perf_counter() - t1
    if budget_s:
        reps = max(1, min(reps, int(budget_s / max(call_s, 1e-9))))
    peak_mb = rss.peak_mb()
    rss.start()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return dict(
        compile_s=compile_s,
        time_ms=1e3 * times[len(times) // 2],
        time_min_ms=1e3 * times[0],
        reps_run=reps,
        peak_mb=peak_mb,
        run_peak_mb=rss.peak_mb(),
    )


def default_options(kernel, length):
    """Options a kernel needs that depend on the length (bench defaults):
    `axial` gets a near-square grid (-1, 2**ceil(log2(L)/2))."""
    if kernel == "axial":
        side = 2 ** math.ceil(math.log2(max(length, 1)) / 2)
        return {"spatial_shape": [-1, side]}
    return {}


def kernel_weights(kernel, batch, length, heads, dim, options):
    """Weights a kernel owns in `MultiHeadAttention` (Linformer's E/F,
    Performer's features, EcoFormer's hash functions, ...), created the way
    the layer creates them, on a bare Keras layer."""
    import keras

    from official.attention.interface import get_kernel_params

    build = get_kernel_params(kernel)
    if build is None:
        return {}
    holder = keras.layers.Layer(name=f"{kernel}_bench_weights")
    shape = (batch, length, heads * dim)
    return dict(build(holder, shape, shape, heads, heads, dim, dict(options)))


def query_length(cfg):
    """Queries of a point: 1 when decoding one token, else the length."""
    return 1 if cfg["mode"] == "decode" else cfg["length"]


def is_causal(cfg):
    """Decoding and recomputing run causally; forward points as asked."""
    return cfg["causal"] or cfg["mode"] in ("decode", "recompute")


def _tf_call(cfg):
    """The point's compiled TF kernel call (inputs built), as a closure."""
    import numpy as np
    import tensorflow as tf

    from official.attention import attention

    b, h, d = cfg["batch"], cfg["heads"], cfg["dim"]
    length = cfg["length"]
    t = query_length(cfg)
    rng = np.random.default_rng(0)
    q = tf.constant(rng.standard_normal((b, t, h, d)), tf.float32)
    kv = tf.constant(rng.standard_normal((b, length, h, d)), tf.float32)
    causal = is_causal(cfg)
    kernel = cfg["kernel"]
    opts = dict(default_options(kernel, length), **cfg.get("options", {}))
    opts.update(kernel_weights(kernel, b, length, h, d, opts))

    @tf.function(jit_compile=True)
    def step(q, k, v):
        return attention(q, k, v, kernel=kernel, causal=causal, **opts)

    return lambda: step(q, kv, kv).numpy()


def _torch_call(cfg):
    """torch SDPA on the point's shapes, as a closure."""
    import torch
    import torch.nn.functional as F

    b, h, d, length = cfg["batch"], cfg["heads"], cfg["dim"], cfg["length"]
    t = query_length(cfg)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(b, h, t, d, generator=gen)
    kv = torch.randn(b, h, length, d, generator=gen)
    causal = cfg["causal"] or cfg["mode"] == "recompute"

    def run():
        with torch.inference_mode():
            return F.scaled_dot_product_attention(q, kv, kv, is_causal=causal)

    return run


def _call(cfg):
    return (_torch_call if cfg["kernel"] == "torch_sdpa" else _tf_call)(cfg)


def _worker(cfg):
    fn = _call(cfg)
    rss = _PeakRSS()
    rss.start()
    result = _time_calls(
        fn, cfg["warmup"], cfg["reps"], rss, cfg.get("budget_s")
    )
    print(_MARK + json.dumps(dict(cfg, **result, status="ok")), flush=True)


def _serve(cfg):
    """A persistent paired-timing worker for one point."""
    paired_timing.serve(_call(cfg), warmup=cfg["warmup"])


# --- driver ------------------------------------------------------------------


def _worker_argv(flag, cfg):
    """`python -m official.attention.bench FLAG CFG_JSON` (FLAG: --worker
    for a one-shot point, --serve for a paired-timing worker)."""
    return paired_timing.python_argv(
        "official.attention.bench", flag, json.dumps(cfg)
    )


def _launch(cfg, timeout):
    return subprocess.Popen(
        _worker_argv("--worker", cfg),
        env=paired_timing.quiet_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ), time.monotonic() + timeout


def _collect(cfg, proc, deadline):
    try:
        out, err = proc.communicate(
            timeout=max(1.0, deadline - time.monotonic())
        )
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return dict(cfg, status="timeout")
    for line in out.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    tail = " | ".join(err.strip().splitlines()[-2:])[-300:]
    return dict(cfg, status=f"failed (rc={proc.returncode}): {tail}")


# Kernels that materialise the (B, H, T, S) scores (split_k: all pieces at
# once); "recompute" decoding runs the recompute kernel over the whole context.
QUADRATIC_KERNELS = ("dense", "split_k")
NON_CAUSAL_KERNELS = ("lowrank",)  # Linformer mixes future positions


def _available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def skip_reason(cfg, available=None):
    """Why a point is not run (None = run it): a quadratic kernel whose
    float32 scores, twice over (scores + probabilities), would not fit in
    80 % of the available memory; a causal run of a non-causal kernel."""
    kernel = cfg["kernel"]
    causal = is_causal(cfg)
    if causal and kernel in NON_CAUSAL_KERNELS:
        return "n/a (non-causal kernel)"
    t = query_length(cfg)
    if kernel in QUADRATIC_KERNELS:
        need = 2 * 4 * cfg["batch"] * cfg["heads"] * t * cfg["length"]
        available = _available_bytes() if available is None else available
        if available is not None and need > 0.8 * available:
            return (
                f"skipped: scores need {need / 2**30:.0f} GiB, "
                f"{available / 2**30:.0f} GiB available"
            )
    return None


def run_points(cfgs, jobs=1, timeout=900, log=print):
    """Runs each config in a fresh subprocess (`jobs` at a time; keep 1 for
    timings you report). Points with a `skip_reason` are not run."""
    results, pending, queue = [None] * len(cfgs), [], list(enumerate(cfgs))
    while queue or pending:
        while queue and len(pending) < jobs:
            i, cfg = queue.pop(0)
            reason = skip_reason(cfg)
            if reason:
                results[i] = dict(cfg, status=reason)
                log(
                    f"  {cfg['mode']:<9} {cfg['kernel']:<10} "
                    f"L={cfg['length']:<6} {reason}"
                )
                continue
            pending.append((i, cfg) + _launch(cfg, timeout))
        if not pending:
            continue
        i, cfg, proc, deadline = pending.pop(0)
        results[i] = _collect(cfg, proc, deadline)
        r = results[i]
        log(
            f"  {r['mode']:<9} {r['kernel']:<10} L={r['length']:<6} "
            + (
                f"{r['time_ms']:.2f} ms, peak {r['peak_mb']:.0f} MB, "
                f"run peak {r['run_peak_mb']:.0f} MB"
                if r["status"] == "ok"
                else r["status"]
            )
        )
    return results


def run_paired(
    cfgs, rounds, round_s, timeout=900, log=print, baseline="torch_sdpa"
):
    """Time / baseline time of each config, in alternating paired rounds.

    Each config and its `baseline` twin (torch SDPA by default; any kernel
    name works) run in two persistent workers whose
    timed rounds alternate (`official.paired_timing`), so every round's
    ratio is measured under the same machine conditions. Returns rows with
    the median ratio over rounds and its range; configs with a
    `skip_reason` are reported, not run."""
    rows = []
    for cfg in cfgs:
        reason = skip_reason(cfg)
        if reason:
            rows.append(dict(cfg, status=reason))
            continue
        twin = dict(cfg, kernel=baseline, options={})
        workers = []
        try:
            for c in (cfg, twin):
                workers.append(
                    paired_timing.Worker(
                        c["kernel"],
                        _worker_argv("--serve", c),
                        env=paired_timing.quiet_env(),
                        timeout=timeout,
                        wait=False,
                    )
                )
            for w in workers:
                w.wait_ready()
            seconds = paired_timing.alternate(workers, rounds, round_s)
            ratio = paired_timing.ratio_summary(
                seconds[cfg["kernel"]], seconds[baseline]
            )
            row = dict(
                cfg,
                status="ok",
                ratio=ratio["median"],
                ratio_min=ratio["min"],
                ratio_max=ratio["max"],
                rounds=len(ratio["rounds"]),
                time_ms=1e3 * min(seconds[cfg["kernel"]]),
                baseline=baseline,
                baseline_ms=1e3 * min(seconds[baseline]),
            )
        except RuntimeError as err:
            row = dict(cfg, status=f"failed: {str(err)[-300:]}")
        finally:
            for w in workers:
                w.close()
        rows.append(row)
        log(
            f"  paired    {cfg['kernel']:<10} L={cfg['length']:<6} "
            + (
                f"{row['ratio']:.2f}x {baseline} time (rounds "
                f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
                if row["status"] == "ok"
                else row["status"]
            )
        )
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    p.add_argument(
        "--kernels",
        nargs="+",
        default=["dense", "chunked", "split_k"],
        help="kernel names, or 'all' (every registered kernel)",
    )
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--causal", action="store_true")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds per point: long points run fewer warm-up / timed "
        "calls (at least one each)",
    )
    p.add_argument(
        "--options",
        default="{}",
        help="JSON {kernel: {option: value}}, e.g. "
        '\'{"split_k": {"num_splits": 8}}\'',
    )
    p.add_argument(
        "--decode-context",
        type=int,
        nargs="+",
        default=[2048],
        help="context length(s) of the decode benchmark; 0 skips it",
    )
    p.add_argument("--decode-kernels", nargs="+", default=["split_k", "dense"])
    p.add_argument("--recompute-kernel", default="dense")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument(
        "--paired",
        nargs="*",
        default=["chunked"],
        help="kernels whose time / torch SDPA time is also measured in "
        "alternating paired rounds (needs PyTorch; none: skip)",
    )
    p.add_argument("--paired-rounds", type=int, default=6)
    p.add_argument(
        "--paired-round-seconds",
        type=float,
        default=2.0,
        help="seconds per implementation per paired round (at least 1 call)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="concurrent workers (smoke tests only: >1 skews time)",
    )
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", default="runs/attention_bench")
    args = p.parse_args(argv)
    if args.worker:
        _worker(json.loads(args.worker))
        return 0
    if args.serve:
        _serve(json.loads(args.serve))
        return 0

    kernel_opts = json.loads(args.options)
    kernels = list(args.kernels)
    if "all" in kernels:
        from official.attention import list_kernels

        kernels = [k for k in kernels if k != "all"] + [
            k for k in list_kernels() if k not in kernels
        ]
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch and not args.no_torch and "torch_sdpa" not in kernels:
        kernels.append("torch_sdpa")
    if not has_torch:
        print("PyTorch not importable: torch SDPA baseline skipped.")
    common = dict(
        batch=args.batch,
        heads=args.heads,
        dim=args.dim,
        causal=args.causal,
        reps=args.reps,
        warmup=args.warmup,
        budget_s=args.budget,
    )
    def point(kernel, length, mode):
        return dict(
            common,
            kernel=kernel,
            length=length,
            mode=mode,
            options=kernel_opts.get(kernel, {}),
        )

    cfgs = [point(k, n, "forward") for k in kernels for n in args.lengths]
    print(
        f"forward: B={args.batch} H={args.heads} D={args.dim} "
        f"causal={args.causal}, {len(cfgs)} subprocesses"
    )
    results = run_points(cfgs, args.jobs, args.timeout)
    decode = []
    contexts = [n for n in args.decode_context if n > 0]
    if contexts:
        dcfgs = []
        for n in contexts:
            dcfgs += [point(k, n, "decode") for k in args.decode_kernels]
            dcfgs.append(point(args.recompute_kernel, n, "recompute"))
        print(f"decode: contexts {contexts}")
        decode = run_points(dcfgs, args.jobs, args.timeout)
    paired = []
    if has_torch and not args.no_torch and args.paired:
        print(
            f"paired with torch SDPA: {args.paired}, "
            f"{args.paired_rounds} rounds"
        )
        paired = run_paired(
            [
                point(k, n, "forward")
                for k in args.paired
                if k != "torch_sdpa"
                for n in args.lengths
            ],
            args.paired_rounds,
            args.paired_round_seconds,
            args.timeout,
        )

    os.makedirs(args.out, exist_ok=True)
    slope = slopes(results)
    header = (
        f"Attention bench: B={args.batch}, H={args.heads}, D={args.dim},"
        f" float32, causal={args.causal}, XLA (jit_compile=True), "
        f"median of {args.reps} after {args.warmup} warm-up; "
        f"{os.cpu_count()} CPU cores."
    )
    text = markdown(results, decode, slope, header, paired)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    write_csv(os.path.join(args.out, "results.csv"), results)
    if decode:
        write_csv(os.path.join(args.out, "decode.csv"), decode)
    if paired:
        write_csv(os.path.join(args.out, "paired.csv"), paired)
    if any(r["status"] == "ok" for r in results):
        plot(os.path.join(args.out, "bench.png"), results)
    print(text)
    everything = results + decode + paired
    failed = [r for r in everything if r["status"] != "ok"]
    return 1 if failed and len(failed) == len(everything) else 0


if __name__ == "__main__":
    sys.exit(main())
