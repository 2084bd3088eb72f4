"""`garden bench`: the throughput harness runs and reports ratios.

Timing values are not asserted (absolute times on a shared machine are
noise); the bench's job is to print ratios measured in one run.
"""

import importlib.util

import pytest

import garden  # noqa: F401
from garden import bench


def test_bench_reports_positive_throughput(capsys):
    rows = bench.run("mae", preset="tiny", batch_size=4, steps=1, warmup=1,
                     modes=("graph",))
    assert rows[0]["samples_per_s"] > 0
    assert "samples/s" in capsys.readouterr().out


def test_compare_torch_is_only_defined_for_mae():
    with pytest.raises(ValueError, match="only defined for 'mae'"):
        bench.run("point_mae", preset="tiny", batch_size=2, steps=1,
                  warmup=0, modes=(), compare_torch=True)


@pytest.mark.large
@pytest.mark.skipif(importlib.util.find_spec("torch") is None or
                    importlib.util.find_spec("transformers") is None,
                    reason="optional bench extra (torch, transformers) not "
                    "installed: pip install -e '.[bench]'")
def test_torch_baseline_has_the_same_parameter_count():
    # The HF ViTMAE built from our bench preset must be the same model size:
    # otherwise the speed ratio compares different models.
    config = garden.preset_info("mae", "bench")
    params = bench.torch_vitmae_params(config["config"])
    assert params == config["params"]


_HAS_BENCH_EXTRA = (importlib.util.find_spec("torch") is not None and
                    importlib.util.find_spec("transformers") is not None)


@pytest.mark.skipif(_HAS_BENCH_EXTRA, reason="checks the message shown "
                    "when the bench extra is missing")
def test_compare_torch_without_the_bench_extra_says_how_to_install():
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[bench\]'"):
        bench.run("mae", preset="bench", batch_size=2, warmup=1,
                  modes=(), compare_torch=True, rounds=1, round_s=0.1)


@pytest.mark.large
@pytest.mark.skipif(not _HAS_BENCH_EXTRA, reason="optional bench extra "
                    "(torch, transformers) not installed: "
                    "pip install -e '.[bench]'")
def test_paired_comparison_reports_per_round_ratios(capsys):
    rows = bench.run("mae", preset="bench", batch_size=2, warmup=1,
                     modes=("xla",), compare_torch=True, rounds=2,
                     round_s=0.2)
    ours, torch_row = rows
    assert ours["impl"] == "garden (xla)" and len(ours["ratio_rounds"]) == 2
    lo, hi = ours["ratio_range"]
    assert 0 < lo <= ours["ratio_vs_torch"] <= hi
    assert torch_row["samples_per_s"] > 0
    assert "alternating rounds" in capsys.readouterr().out
