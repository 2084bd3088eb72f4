"""Paired timing: the speed ratio of implementations that run in separate
processes, measured by alternating them under the same machine conditions.

On a shared machine a process's throughput drifts by 15-40 % over minutes
(other tenants, frequency changes). Timing implementation A, then B, puts
that drift into the ratio A/B: the attention bench measured chunked / torch
SDPA at 4k as 2.08, 1.38, 1.87 and 1.48 in four such runs. Here every
implementation lives in its own persistent worker process (TensorFlow and
PyTorch cannot share one), all are warmed up first, and then rounds of timed
calls alternate between them in the order A B B A A B ... (so a linear drift
cancels over two rounds); while one worker runs, the others block on a pipe
read and use no CPU. Each round gives one ratio measured within a few
seconds; the median over rounds is the figure, its range the noise.

Worker side::

    from official import paired_timing
    paired_timing.serve(fn, warmup=2, info={"params": n})

Parent side::

    workers = [paired_timing.Worker("ours", argv_a),
               paired_timing.Worker("torch", argv_b)]
    seconds = paired_timing.alternate(workers, rounds=6, round_s=2.0)
    summary = paired_timing.ratio_summary(seconds["torch"], seconds["ours"])

`ratio_summary(a, b)` is the per-round a / b, i.e. with seconds per call,
how many times faster b is than a.
"""

import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

_READY = "PAIRED_READY "
_RESULT = "PAIRED_RESULT "


# --- worker side ---------------------------------------------------------


def serve(fn, warmup=2, info=None, stdin=None, stdout=None):
    """Runs `fn` `warmup` times, reports ready, then times `fn` on request.

    Protocol (one line each): the worker prints `PAIRED_READY {json}` with
    `info` plus "call_s" (the last warm-up call's seconds); the parent
    writes `run N`, the worker answers `PAIRED_RESULT {"seconds": total,
    "calls": N}`; `quit` (or end of input) ends it.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    call_s = None
    for _ in range(max(int(warmup), 1)):
        start = time.perf_counter()
        fn()
        call_s = time.perf_counter() - start
    stdout.write(_READY + json.dumps(dict(info or {}, call_s=call_s)) + "\n")
    stdout.flush()
    for line in stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] != "run" or len(words) != 2 or not words[1].isdigit():
            raise ValueError(
                f"paired_timing worker: expected 'run N' or 'quit'; "
                f"received {line.strip()!r}."
            )
        calls = int(words[1])
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        seconds = time.perf_counter() - start
        stdout.write(
            _RESULT + json.dumps({"seconds": seconds, "calls": calls}) + "\n"
        )
        stdout.flush()


# --- parent side ---------------------------------------------------------


class Worker:
    """A persistent worker process started from `argv` that calls `serve`.

    With `wait=True` the constructor blocks until the worker is warmed up
    (`info` holds its ready message); with `wait=False` call `wait_ready()`
    later, so that several workers start (import, compile) concurrently.
    Its stderr goes to a temporary file, quoted when it fails.
    """

    def __init__(self, name, argv, env=None, timeout=900.0, wait=True):
        self.name = name
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env=env,
        )
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read_all, daemon=True)
        self._reader.start()
        self.info = None
        if wait:
            self.wait_ready()

    def wait_ready(self):
        """Blocks until the worker has warmed up; returns its info."""
        if self.info is None:
            self.info = self._expect(_READY)
        return self.info

    def _read_all(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _stderr_tail(self, lines=6):
        self._stderr.seek(0)
        text = self._stderr.read().strip().splitlines()
        return "\n".join(text[-lines:])

    def _expect(self, mark):
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.0))
            except queue.Empty:
                self.close(kill=True)
                raise RuntimeError(
                    f"paired worker {self.name!r}: no answer within "
                    f"{self.timeout:.0f} s."
                ) from None
            if line is None:
                self.proc.wait()
                raise RuntimeError(
                    f"paired worker {self.name!r} exited (rc="
                    f"{self.proc.returncode}):\n{self._stderr_tail()}"
                )
            if line.startswith(mark):
                return json.loads(line[len(mark):])

    def time_calls(self, calls):
        """Seconds per call over `calls` back-to-back calls."""
        self.proc.stdin.write(f"run {int(calls)}\n")
        self.proc.stdin.flush()
        result = self._expect(_RESULT)
        return result["seconds"] / result["calls"]

    def close(self, kill=False):
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                try:
                    self.proc.stdin.write("quit\n")
                    self.proc.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def calls_per_round(worker, round_s):
    """Calls that fill about `round_s` seconds (at least one)."""
    call_s = worker.info.get("call_s") or round_s
    return max(1, int(round(round_s / max(call_s, 1e-9))))


def alternate(workers, rounds, round_s=2.0):
    """Times every worker once per round, alternating the order.

    Returns {name: [seconds per call, one per round]}. Even rounds run the
    workers in the given order, odd rounds in reverse.
    """
    if rounds < 1:
        raise ValueError(f"paired_timing: rounds must be >= 1; got {rounds}.")
    calls = {w.name: calls_per_round(w, round_s) for w in workers}
    seconds = {w.name: [] for w in workers}
    for r in range(rounds):
        order = workers if r % 2 == 0 else list(reversed(workers))
        for w in order:
            seconds[w.name].append(w.time_calls(calls[w.name]))
    return seconds


def ratio_summary(numerator, denominator):
    """Per-round numerator / denominator: median, min, max and all rounds."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(
            "paired_timing: ratio_summary needs two equally long, non-empty "
            f"lists; got {len(numerator)} and {len(denominator)}."
        )
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "rounds": ratios,
    }


def python_argv(module, *args):
    """argv that runs `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def quiet_env(**extra):
    """The environment for a worker: this one, TensorFlow's C++ logs off."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
