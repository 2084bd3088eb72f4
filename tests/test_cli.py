"""The `garden` command line, end to end on tiny models and offline data."""

import json
import os
import subprocess
import sys

import pytest

from garden import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _json_out(capsys):
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_list_and_filter(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mae", "mae_classifier", "point_mae",
                 "point_mae_classifier"):
        assert name in out
    assert cli.main(["list", "--modality", "point_cloud"]) == 0
    names = [line.split()[0] for line in
             capsys.readouterr().out.splitlines()[1:]]
    assert names == ["point_mae", "point_mae_classifier"]


def test_info(capsys):
    assert cli.main(["info", "point_mae", "--preset", "paper"]) == 0
    info = _json_out(capsys)
    assert info["params"] == 29_006_432 and info["config"]["num_groups"] == 64


def test_unknown_model_is_a_clear_error(capsys):
    assert cli.main(["info", "no_such_model"]) == 2
    assert "Unknown model 'no_such_model'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli") / "run")
    code = cli.main(["train", "point_mae_classifier", "--preset", "tiny",
                     "--data", "shapes3d", "--steps", "4", "--batch-size",
                     "8", "--out", out])
    assert code == 0
    return out


def test_train_writes_model_logs_and_metrics(trained):
    for name in ("model.keras", "metrics.json"):
        assert os.path.exists(os.path.join(trained, name)), name
    metrics = json.load(open(os.path.join(trained, "metrics.json")))
    assert metrics["steps"] == 4
    assert 0.0 <= metrics["eval"]["accuracy"] <= 1.0


def test_eval(trained, capsys):
    capsys.readouterr()
    assert cli.main(["eval", os.path.join(trained, "model.keras"),
                     "--data", "shapes3d", "--batch-size", "16"]) == 0
    metrics = _json_out(capsys)
    assert metrics["examples"] > 0 and "accuracy" in metrics


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_export_float(trained, fmt, capsys):
    capsys.readouterr()
    assert cli.main(["export", os.path.join(trained, "model.keras"),
                     "--format", fmt]) == 0
    report = _json_out(capsys)
    assert os.path.exists(report["path"])
    assert report["max_abs_diff"] <= 1e-4


def test_export_int8_reports_size_and_agreement(trained, capsys):
    capsys.readouterr()
    assert cli.main(["export", os.path.join(trained, "model.keras"),
                     "--format", "tflite", "--quantize", "int8", "--data",
                     "shapes3d", "--samples", "16"]) == 0
    report = _json_out(capsys)
    assert report["size_ratio"] > 2.0, report
    assert 0.0 <= report["top1_agreement"] <= 1.0


def test_python_dash_m_garden():
    proc = subprocess.run([sys.executable, "-m", "garden", "list"],
                          capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "point_mae" in proc.stdout


@pytest.mark.large
def test_demo_fast_runs_end_to_end(tmp_path):
    from garden import demo

    summary = demo.run(str(tmp_path), steps=20, num_train=128, num_test=64)
    assert os.path.exists(summary["plot"])
    assert summary["tflite_max_abs_diff"] <= 1e-4
    assert summary["onnx_max_abs_diff"] <= 1e-4
    assert summary["reload_max_abs_diff"] == 0.0
