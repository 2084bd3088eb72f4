"""Smoke test of the bench CLI end to end (two tiny lengths, subprocesses).

Each point is a fresh Python process importing TensorFlow (~4 s each), so
this runs its 4 workers at once and is marked `large`; it checks plumbing
(files, table, slope, decode speed-up column), not speed.
"""

import csv
import importlib.util
import os
import subprocess
import sys

import pytest

from official.attention import bench
from official.attention import bench_report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_loglog_slope():
    xs = [512, 1024, 2048]
    assert abs(bench_report.loglog_slope(xs, [x**2 for x in xs]) - 2.0) < 1e-9
    assert abs(bench_report.loglog_slope(xs, [3 * x for x in xs]) - 1.0) < 1e-9
    assert bench_report.loglog_slope(xs, [0.0, 0.0, 5.0]) is None
    assert bench_report.loglog_slope(xs, [1.0, 9.0, 20.0], floor=8.0) is not None


def test_skip_reason():
    cfg = dict(kernel="dense", mode="forward", causal=False, batch=1, heads=4)
    gib = 2**30
    # (1, 4, 64k, 64k) float32 scores twice = 128 GiB: skipped.
    assert "skipped" in bench.skip_reason(dict(cfg, length=65536), 23 * gib)
    assert bench.skip_reason(dict(cfg, length=4096), 23 * gib) is None
    # A 1-query decode step is linear in the context.
    assert (
        bench.skip_reason(dict(cfg, length=65536, mode="decode"), 23 * gib)
        is None
    )
    assert bench.skip_reason(dict(cfg, length=65536, kernel="chunked"), 1) is None
    assert "non-causal" in bench.skip_reason(
        dict(cfg, length=64, kernel="lowrank", causal=True), 23 * gib
    )


def test_default_options_and_weights():
    assert bench.default_options("axial", 4096) == {"spatial_shape": [-1, 64]}
    assert bench.default_options("axial", 2048) == {"spatial_shape": [-1, 64]}
    assert bench.default_options("dense", 4096) == {}
    w = bench.kernel_weights("lowrank", 1, 128, 2, 8, {"k": 16})
    assert w and all(v.shape[-2:] == (16, 128) for v in w.values())
    assert bench.kernel_weights("dense", 1, 128, 2, 8, {}) == {}


def test_decode_slopes():
    rows = [
        dict(mode="decode", kernel="split_k", length=n, status="ok", time_ms=n)
        for n in (256, 1024, 4096)
    ]
    slope = bench_report.decode_slopes(rows)[("decode", "split_k")]
    assert abs(slope - 1.0) < 1e-9


def test_every_kernel_runs_with_the_bench_options_and_weights():
    # In process and eager: every registered kernel with the options and
    # weights the bench gives it (the end-to-end run below covers a subset).
    import numpy as np

    from official.attention import attention
    from official.attention import list_kernels

    q = np.random.default_rng(0).standard_normal((1, 64, 2, 16))
    q = q.astype("float32")
    for kernel in list_kernels():
        opts = bench.default_options(kernel, 64)
        opts.update(bench.kernel_weights(kernel, 1, 64, 2, 16, opts))
        out = np.asarray(attention(q, q, q, kernel=kernel, **opts))
        assert out.shape == q.shape and np.isfinite(out).all(), kernel


# One kernel per bench code path: the defaults, default_options (axial),
# kernel-owned weights (lowrank, lsh), a structured kernel (combiner_fixed).
E2E_KERNELS = ["dense", "chunked", "split_k", "axial", "lowrank", "lsh",
               "combiner_fixed"]


@pytest.mark.large  # ~1-2 min on 2 cores (a fresh process per point)
def test_bench_cli_end_to_end(tmp_path):
    out = tmp_path / "bench"
    cmd = [
        sys.executable,
        "-m",
        "official.attention.bench",
        "--lengths",
        "64",
        "256",
        "--kernels",
        *E2E_KERNELS,
        "--heads",
        "2",
        "--dim",
        "16",
        "--reps",
        "2",
        "--warmup",
        "1",
        "--decode-context",
        "64",
        "256",
        "--decode-kernels",
        "split_k",
        "--no-torch",
        "--jobs",
        "2",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    expected = [(k, n) for k in E2E_KERNELS for n in ("64", "256")]
    assert [(r["kernel"], r["length"]) for r in rows] == expected
    failed = [(r["kernel"], r["length"], r["status"]) for r in rows
              if r["status"] != "ok"]
    assert not failed, failed
    assert all(float(r["time_ms"]) > 0 for r in rows)
    decode = list(csv.DictReader(open(out / "decode.csv")))
    assert [(r["mode"], r["kernel"], r["length"], r["status"])
            for r in decode] == [
        ("decode", "split_k", "64", "ok"),
        ("recompute", "dense", "64", "ok"),
        ("decode", "split_k", "256", "ok"),
        ("recompute", "dense", "256", "ok"),
    ]
    text = (out / "results.md").read_text()
    assert "log-log slope time" in text and "speed-up vs recompute" in text
    assert "slope of time / token vs context" in text
    assert (out / "bench.png").stat().st_size > 1000


def test_run_paired_alternates_a_kernel_with_its_baseline():
    # The paired driver's glue (workers, rounds, ratio rows) without PyTorch:
    # `dense` is the baseline here. Both are exact kernels on the same
    # shapes, so the ratio is of order 1 (generous bounds: timing is noise).
    cfg = dict(batch=1, heads=2, dim=16, causal=False, reps=1, warmup=1,
               budget_s=None, kernel="chunked", length=128, mode="forward",
               options={"chunk_size": 32})
    skipped = dict(cfg, kernel="lowrank", causal=True)
    rows = bench.run_paired([cfg, skipped], rounds=2, round_s=0.05,
                            timeout=300, baseline="dense", log=lambda _: None)
    assert rows[0]["status"] == "ok", rows[0]
    assert rows[0]["rounds"] == 2 and rows[0]["baseline"] == "dense"
    assert rows[0]["ratio_min"] <= rows[0]["ratio"] <= rows[0]["ratio_max"]
    assert 0.05 < rows[0]["ratio"] < 50
    assert rows[1]["status"].startswith("n/a")
    text = bench_report.markdown([], [], {}, "header", paired=rows)
    assert "paired (median over rounds)" in text
    assert "| chunked | 128 |" in text and "| lowrank | 128 | n/a" in text


@pytest.mark.large
@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="optional: PyTorch (bench extra) not installed")
def test_bench_cli_paired_with_torch(tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "official.attention.bench", "--lengths",
           "256", "--kernels", "chunked", "--heads", "2", "--dim", "16",
           "--reps", "1", "--warmup", "1", "--decode-context", "0",
           "--paired", "chunked", "--paired-rounds", "2",
           "--paired-round-seconds", "0.1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = list(csv.DictReader(open(out / "paired.csv")))
    assert [(r["kernel"], r["length"], r["status"]) for r in rows] == [
        ("chunked", "256", "ok")]
    assert float(rows[0]["ratio"]) > 0 and rows[0]["rounds"] == "2"
    assert "paired (median over rounds)" in (out / "results.md").read_text()
