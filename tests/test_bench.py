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
    _, params = bench.torch_vitmae_throughput(config["config"], 2, 1, 0)
    assert params == config["params"]
