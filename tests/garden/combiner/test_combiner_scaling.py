"""`garden.combiner.combiner_scaling` (the README's kernel-scaling script)
runs end to end at small lengths and writes its slopes. (At L = 64 and 256
with one round the times are noise, so the slopes are only required to be
numbers: a clean-clone run measured a wall slope of -0.11.)"""

import json
import math

from garden.combiner import combiner_scaling


def test_scaling_script_runs(tmp_path, capsys):
    out = tmp_path / "scaling.json"
    combiner_scaling.main([
        "--lengths", "64", "256", "--kernels", "dense", "combiner_fixed",
        "--rounds", "1", "--causal", "--out", str(out),
    ])
    printed = capsys.readouterr().out
    assert "| `combiner_fixed` | 256 |" in printed
    result = json.loads(out.read_text())
    assert result["causal"] is True
    assert set(result["points"]) == {
        "dense|64", "dense|256", "combiner_fixed|64", "combiner_fixed|256"}
    for kernel in ("dense", "combiner_fixed"):
        assert math.isfinite(result["slopes"][kernel]["cpu"])
        assert math.isfinite(result["slopes"][kernel]["wall"])
