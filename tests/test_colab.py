"""Tutorials in colab/ run end to end (fast mode)."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((REPO / "colab").glob("*.py"))


def test_there_are_tutorials():
    assert TUTORIALS


@pytest.mark.large
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs(path, tmp_path):
    env = dict(os.environ, GARDEN_FAST="1", GARDEN_OUT=str(tmp_path),
               TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(path)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "linear probe accuracy" in proc.stdout
    assert (tmp_path / "reconstruction.png").exists()
