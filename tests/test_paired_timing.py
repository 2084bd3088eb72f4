"""`official.paired_timing`: the worker protocol, alternation and ratios.

The workers here sleep for fixed times, so the measured ratio is known
(sleep is robust to CPU load: an oversleep only adds a little)."""

import io
import sys

import pytest

from official import paired_timing


def _sleeper_argv(seconds):
    code = (
        "import time\n"
        "from official import paired_timing\n"
        f"paired_timing.serve(lambda: time.sleep({seconds}), warmup=1,"
        f" info={{'sleep': {seconds}}})\n"
    )
    return [sys.executable, "-c", code]


def test_serve_answers_run_requests_and_stops_at_quit():
    calls = []
    out = io.StringIO()
    paired_timing.serve(lambda: calls.append(1), warmup=2, info={"k": 1},
                        stdin=io.StringIO("run 3\n\nrun 1\nquit\nrun 5\n"),
                        stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("PAIRED_READY ") and '"k": 1' in lines[0]
    assert len(lines) == 3  # ready + two results; nothing after quit
    assert '"calls": 3' in lines[1] and '"calls": 1' in lines[2]
    assert len(calls) == 2 + 3 + 1


def test_serve_rejects_an_unknown_command():
    with pytest.raises(ValueError, match="expected 'run N' or 'quit'"):
        paired_timing.serve(lambda: None, warmup=1,
                            stdin=io.StringIO("go 3\n"), stdout=io.StringIO())


class _FakeWorker:
    def __init__(self, name, log, call_s=0.5):
        self.name, self.log, self.info = name, log, {"call_s": call_s}

    def time_calls(self, calls):
        self.log.append((self.name, calls))
        return 1.0


def test_alternate_reverses_the_order_every_round():
    log = []
    workers = [_FakeWorker("a", log), _FakeWorker("b", log, call_s=2.0)]
    seconds = paired_timing.alternate(workers, rounds=4, round_s=2.0)
    assert [n for n, _ in log] == list("abbaabba")
    assert dict(log) == {"a": 4, "b": 1}  # calls fill ~round_s, at least 1
    assert seconds == {"a": [1.0] * 4, "b": [1.0] * 4}


def test_ratio_summary_is_per_round():
    r = paired_timing.ratio_summary([2.0, 3.0, 8.0], [1.0, 1.0, 2.0])
    assert r["rounds"] == [2.0, 3.0, 4.0]
    assert (r["median"], r["min"], r["max"]) == (3.0, 2.0, 4.0)
    with pytest.raises(ValueError, match="equally long"):
        paired_timing.ratio_summary([1.0], [1.0, 2.0])


def test_real_workers_measure_the_known_ratio():
    fast = paired_timing.Worker("fast", _sleeper_argv(0.02), wait=False)
    slow = paired_timing.Worker("slow", _sleeper_argv(0.06), wait=False)
    try:
        assert fast.wait_ready()["sleep"] == 0.02
        assert slow.wait_ready()["sleep"] == 0.06
        seconds = paired_timing.alternate([fast, slow], rounds=3,
                                          round_s=0.2)
    finally:
        fast.close()
        slow.close()
    ratio = paired_timing.ratio_summary(seconds["slow"], seconds["fast"])
    assert len(ratio["rounds"]) == 3
    assert 2.0 < ratio["median"] < 3.6, ratio


def test_a_failing_worker_raises_with_its_stderr():
    with pytest.raises(RuntimeError, match="(?s)'broken' exited.*boom"):
        paired_timing.Worker(
            "broken", [sys.executable, "-c", "raise SystemExit('boom')"])


def test_a_silent_worker_times_out():
    with pytest.raises(RuntimeError, match="no answer within"):
        paired_timing.Worker(
            "silent", [sys.executable, "-c", "import time; time.sleep(60)"],
            timeout=1.0)
