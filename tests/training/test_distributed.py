"""One device vs MirroredStrategy (2 logical CPUs) vs two real workers.

Logical devices and TF_CONFIG must be set before TensorFlow starts, so the
distributed runs are helper scripts in subprocesses (run_replicas.py,
run_worker.py); the single-device reference of the multi-worker test runs here.
"""

import json
import os
import re
import socket
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from official.training import Trainer
from official.training import is_chief
from official.training import make_strategy
from tests.training import testlib

TIMEOUT = 300


def _output(proc):
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out[-4000:]
    return out


def test_two_replicas_match_one_device(tmp_path):
    result = tmp_path / "replicas.json"
    proc = subprocess.Popen(
        testlib.script("run_replicas.py") + [str(result)],
        env=testlib.script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _output(proc)
    diffs = json.loads(result.read_text())
    for name, entry in diffs.items():
        print(
            f"{name}: max |w_1dev - w_2rep| = {entry['max_diff']:.2e} "
            f"(weights moved {entry['max_change']:.2e}, "
            f"{entry['seconds']:.1f}s)"
        )
        assert entry["replicas"] == 2
    # Correct runs agree (measured ~3e-8 to 9e-8; weights move 2e-2 to 0.4).
    for name in ("sgd", "xla", "adamw_clip", "sgd_clip", "per_replica_resumed"):
        assert diffs[name]["max_diff"] < 1e-5, name
    # float16 compute: different batch splits round differently (~2e-4).
    assert diffs["mixed_float16"]["max_diff"] < 2e-3
    assert np.isfinite(diffs["mixed_float16"]["final_loss"])
    # Deliberately broken variants must differ (measured 0.27 and 1.2e-2).
    assert diffs["sgd_unscaled"]["max_diff"] > 1e-2
    assert diffs["keras_clip"]["max_diff"] > 1e-3


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_matches_one_device(tmp_path):
    ports = ",".join(map(str, _free_ports(2)))
    out_dir = tmp_path / "run"
    procs = [
        subprocess.Popen(
            testlib.script("run_worker.py")
            + [str(i), ports, str(out_dir), str(tmp_path / f"w{i}.npz")],
            env=testlib.script_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    # The single-device reference, here while the workers run.
    reference = Trainer(
        testlib.TinyRegressor,
        testlib.sgd_config(learning_rate=0.1, momentum=0.9),
        seed=0,
        verbose=0,
        log_every=2,
    )
    ref_metrics = reference.fit(
        testlib.dataset(),
        steps=8,
        eval_data=testlib.dataset(n=40, shuffle_seed=None),
    )
    try:
        outputs = [_output(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = [
        json.loads(re.search(r"RESULT (.*)", o).group(1)) for o in outputs
    ]
    assert [r["chief"] for r in results] == [True, False]
    assert all(r["replicas"] == 2 for r in results)
    w0, w1 = (
        [
            v
            for _, v in sorted(
                np.load(tmp_path / f"w{i}.npz").items(),
                key=lambda kv: int(kv[0][4:]),
            )
        ]
        for i in range(2)
    )
    workers_diff = testlib.max_diff(w0, w1)
    ref_diff = testlib.max_diff(w0, testlib.weights(reference.model))
    print(
        f"worker0 vs worker1 {workers_diff:.2e}, "
        f"workers vs one device {ref_diff:.2e}"
    )
    assert workers_diff == 0.0
    assert ref_diff < 1e-5
    for r in results:
        assert r["eval"]["loss"] == pytest.approx(
            ref_metrics["eval"]["loss"], rel=1e-5
        )
        assert r["final_loss"] == pytest.approx(
            ref_metrics["final_loss"], rel=1e-5
        )
    # Only the chief's checkpoints and logs exist; no worker leftovers.
    assert sorted(os.listdir(out_dir / "checkpoints")) == ["ckpt-4", "ckpt-8"]
    assert (out_dir / "metrics.json").exists() and (
        out_dir / "logs" / "steps.csv"
    ).exists()


def test_make_strategy():
    default = make_strategy("default")
    assert default is tf.distribute.get_strategy() and is_chief(default)
    assert make_strategy(default) is default
    with pytest.raises(ValueError, match="unknown kind"):
        make_strategy("horovod")
    with pytest.raises(RuntimeError, match="could not reach a TPU"):
        make_strategy("tpu")
