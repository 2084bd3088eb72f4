"""`garden.ecoformer.ecoformer_bench` (the README's time-scaling script)
runs end to end at small lengths and prints its slopes."""

from garden.ecoformer import ecoformer_bench


def test_bench_script_runs(capsys):
    assert ecoformer_bench.main([
        "--lengths", "64", "128", "--dense-max", "128", "--reps", "1",
        "--heads", "2", "--dim", "16",
    ]) == 0
    printed = capsys.readouterr().out
    for label in ("ecoformer (kernel_smoother)", "ecoformer (official)",
                  "dense"):
        assert f"| {label} | 128 |" in printed
        assert f"slope {label}:" in printed
