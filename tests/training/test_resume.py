"""Kill a real training run with SIGKILL mid-epoch, restart it, compare.

run_resumable.py trains 3 epochs x 10 steps with per-epoch shuffled data and a
checkpoint every 4 steps (and at epoch ends). Run B is SIGKILLed once `ckpt-12`
(epoch 1, batch 2 of 10) exists and then started again with the same command;
it resumes from step 12 (16 if the kill came late). Its final weights must
equal those of run A, which was never interrupted, and its step log must hold
steps 1..30 once each. A restart that replays the epoch from its first
batch (`--broken-resume`) must be detected.
"""

import csv
import os
import shutil
import signal
import subprocess
import time

import numpy as np

from tests.training import testlib

TIMEOUT = 300


def launch(out_dir, weights, *flags):
    return subprocess.Popen(
        testlib.script("run_resumable.py")
        + [str(out_dir), str(weights), *flags],
        env=testlib.script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc):
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out[-4000:]
    return out


def load(path):
    arrays = np.load(path)
    return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def test_sigkill_mid_epoch_then_restart_reaches_the_same_weights(tmp_path):
    straight = launch(tmp_path / "a", tmp_path / "a.npz")
    killed = launch(tmp_path / "b", tmp_path / "b.npz", "--sleep", "0.2")
    marker = tmp_path / "b" / "checkpoints" / "ckpt-12" / "state.json"
    deadline = time.time() + TIMEOUT
    try:
        while not marker.exists():
            assert killed.poll() is None, killed.communicate()[0][-4000:]
            assert time.time() < deadline, "no checkpoint at step 12"
            time.sleep(0.02)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "b" / "metrics.json").exists()  # really interrupted
    steps = sorted(
        int(n[5:])
        for n in os.listdir(tmp_path / "b" / "checkpoints")
        if n.startswith("ckpt-")
    )
    # Killed within a few steps of ckpt-12 (the next ones: 16, 20, ...).
    restart = steps[-1]
    assert 12 <= restart < 20 and restart % 10 != 0, steps  # mid-epoch
    shutil.copytree(tmp_path / "b", tmp_path / "broken")

    resumed = launch(tmp_path / "b", tmp_path / "b.npz")  # the same command
    broken = launch(
        tmp_path / "broken", tmp_path / "broken.npz", "--broken-resume"
    )
    assert "DONE 30 None" in finish(straight)
    assert f"DONE 30 {restart}" in finish(resumed)
    assert f"DONE 30 {restart}" in finish(broken)

    a, b = load(tmp_path / "a.npz"), load(tmp_path / "b.npz")
    diff = testlib.max_diff(a, b)
    broken_diff = testlib.max_diff(a, load(tmp_path / "broken.npz"))
    print(
        f"resumed vs uninterrupted {diff:.2e}; broken resume {broken_diff:.2e}"
    )
    assert diff < 1e-6
    assert broken_diff > 1e-4  # the comparison detects replayed batches

    with open(tmp_path / "b" / "logs" / "steps.csv") as f:
        logged = [int(r["step"]) for r in csv.DictReader(f)]
    assert logged == list(range(1, 31))  # no lost or repeated step
