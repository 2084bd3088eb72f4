"""Decode throughput: cached `split_k` decoding vs full recomputation.

    python -m garden.lean_attention.lean_attention_bench \
        --contexts 256 512 1024 2048 4096 --out runs/lean_attention_bench

For each context length N: a prompt of N - steps - 2 random tokens is
prefilled into the KV cache, then 2 warm-up and `--steps` timed single-token
decode steps run (one query per block against the growing cache, contexts up
to N, through the `split_k` kernel); the baseline
recomputes the causal forward over all N tokens for one new token (what
generation without a cache does per step). Both run eagerly on the same
model and weights (B = 1), as graphs (`lean_attention_graph`; `--eager`
runs both eagerly). Reported: median ms / token, tokens / s, the
speed-up, and log-log slopes of the per-token time against N (least squares
over the contexts). Garden spec `lean_attention.md` Sec. 4.3; project goal:
>= 10x the tokens/s of recomputation at 2k context, cached slope <= 1.1.
"""

import argparse
import json
import os
import time

import keras
import numpy as np

from garden.lean_attention.lean_attention_graph import compiled_forward
from garden.lean_attention.lean_attention_graph import (
    compiled_forward_with_cache,
)
from official import registry


def _seconds(fn, reps, warmup):
    """(median, min) wall time of `reps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def loglog_slope(xs, ys):
    """Least-squares slope of log(y) against log(x)."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def decode_benchmark(preset="bench", contexts=(256, 512, 1024, 2048),
                     steps=16, recompute_reps=3, prefill_chunk=512,
                     compiled=True, recompute_max=None, seed=0,
                     **overrides):
    """Rows of {context, cached_ms, recompute_ms, speedup} (B = 1); medians
    (and `*_min_ms` minima). Recomputation is skipped above `recompute_max`.

    `compiled`: both methods run as graphs (`lean_attention_graph`, one
    trace for all lengths, traced during warm-up); else both eagerly.
    """
    keras.utils.set_random_seed(seed)
    model = registry.build("lean_attention", preset=preset, **overrides)
    model.build()
    step_fn = compiled_forward_with_cache(model) if compiled \
        else model.forward_with_cache
    full_fn = compiled_forward(model) if compiled else model
    rng = np.random.default_rng(seed)
    rows = []
    for n in contexts:
        prompt = rng.integers(0, model.vocab_size, (1, n)).astype("int32")
        # The timed steps run at contexts N - steps - 2 .. N - 1.
        past = max(n - steps - 2, 1)
        _, cache = model.prefill(prompt[:, :past], prefill_chunk,
                                 compiled=compiled)
        token = prompt[:, -1:]
        state = {"cache": cache}

        def step():
            logits, state["cache"] = step_fn(token, state["cache"])
            keras.ops.convert_to_numpy(logits[:, -1])

        cached, cached_min = _seconds(step, steps, warmup=2)
        row = {"context": n, "cached_ms": 1e3 * cached,
               "cached_min_ms": 1e3 * cached_min,
               "cached_tokens_per_s": 1.0 / cached}
        if recompute_max is None or n <= recompute_max:

            def recompute():
                keras.ops.convert_to_numpy(full_fn(prompt)[:, -1])

            full, full_min = _seconds(recompute, recompute_reps, warmup=1)
            row.update(recompute_ms=1e3 * full, recompute_min_ms=1e3 * full_min,
                       recompute_tokens_per_s=1.0 / full,
                       speedup=full / cached)
        rows.append(row)
    return rows


def summarize(rows):
    ns = [r["context"] for r in rows]
    full = [r for r in rows if "recompute_ms" in r]
    out = {
        "cached_slope": loglog_slope(ns, [r["cached_ms"] for r in rows]),
        "cached_min_slope": loglog_slope(
            ns, [r["cached_min_ms"] for r in rows]),
        "recompute_slope": loglog_slope(
            [r["context"] for r in full], [r["recompute_ms"] for r in full]),
    }
    if len(rows) >= 3:
        tail = rows[-3:]
        out["cached_slope_last3"] = loglog_slope(
            [r["context"] for r in tail], [r["cached_ms"] for r in tail])
    return out


def to_markdown(rows, summary):
    lines = [
        "| context N | cached split_k ms/token (min) | tokens/s | recompute "
        "ms/token (min) | tokens/s | speed-up |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "recompute_ms" in r:
            full = (f"{r['recompute_ms']:.1f} ({r['recompute_min_ms']:.1f}) | "
                    f"{r['recompute_tokens_per_s']:.2f} | "
                    f"{r['speedup']:.1f}x")
        else:
            full = "not run | – | –"
        lines.append(
            f"| {r['context']} | {r['cached_ms']:.2f} "
            f"({r['cached_min_ms']:.2f}) | "
            f"{r['cached_tokens_per_s']:.1f} | {full} |")
    lines.append("")
    lines.append("Log-log slope of ms/token vs N: cached median "
                 f"{summary['cached_slope']:.2f}, min "
                 f"{summary['cached_min_slope']:.2f}"
                 + (f" (median, last three points "
                    f"{summary['cached_slope_last3']:.2f})"
                    if "cached_slope_last3" in summary else "")
                 + f"; recompute {summary['recompute_slope']:.2f}.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="bench")
    parser.add_argument("--contexts", type=int, nargs="+",
                        default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--recompute-reps", type=int, default=3)
    parser.add_argument("--prefill-chunk", type=int, default=512)
    parser.add_argument("--recompute-max", type=int, default=None,
                        help="skip recomputation above this context")
    parser.add_argument("--num-splits", type=int, default=None)
    parser.add_argument("--eager", action="store_true",
                        help="run both methods eagerly (no graph)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    overrides = {}
    if args.num_splits:
        overrides["num_splits"] = args.num_splits
    rows = decode_benchmark(args.preset, args.contexts, args.steps,
                            args.recompute_reps, args.prefill_chunk,
                            compiled=not args.eager,
                            recompute_max=args.recompute_max, **overrides)
    summary = summarize(rows)
    table = to_markdown(rows, summary)
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "decode.json"), "w") as f:
            json.dump({"rows": rows, "summary": summary,
                       "preset": args.preset, "eager": args.eager}, f,
                      indent=1)
        with open(os.path.join(args.out, "decode.md"), "w") as f:
            f.write(table + "\n")
    return rows, summary


if __name__ == "__main__":
    main()
