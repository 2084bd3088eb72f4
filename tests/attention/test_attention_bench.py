"""Smoke test of the bench CLI end to end (two tiny lengths, subprocesses).

Each point is a fresh Python process importing TensorFlow (~4 s each), so
this runs its 4 workers at once and is marked `large`; it checks plumbing
(files, table, slope, decode speed-up column), not speed.
"""

import csv
import os
import subprocess
import sys

import pytest

from official.attention import bench

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_loglog_slope():
    xs = [512, 1024, 2048]
    assert abs(bench.loglog_slope(xs, [x**2 for x in xs]) - 2.0) < 1e-9
    assert abs(bench.loglog_slope(xs, [3 * x for x in xs]) - 1.0) < 1e-9
    assert bench.loglog_slope(xs, [0.0, 0.0, 5.0]) is None
    assert bench.loglog_slope(xs, [1.0, 9.0, 20.0], floor=8.0) is not None


@pytest.mark.large  # ~25 s on an idle 2-core machine, ~2 min when shared
def test_bench_cli_end_to_end(tmp_path):
    out = tmp_path / "bench"
    cmd = [
        sys.executable,
        "-m",
        "official.attention.bench",
        "--lengths",
        "32",
        "64",
        "--kernels",
        "dense",
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
        "--decode-kernels",
        "split_k",
        "--no-torch",
        "--jobs",
        "4",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["kernel"], r["length"], r["status"]) for r in rows] == [
        ("dense", "32", "ok"),
        ("dense", "64", "ok"),
    ]
    assert all(float(r["time_ms"]) > 0 for r in rows)
    decode = list(csv.DictReader(open(out / "decode.csv")))
    assert [(r["mode"], r["kernel"], r["status"]) for r in decode] == [
        ("decode", "split_k", "ok"),
        ("recompute", "dense", "ok"),
    ]
    text = (out / "results.md").read_text()
    assert "log-log slope time" in text and "speed-up vs recompute" in text
    assert (out / "bench.png").stat().st_size > 1000
