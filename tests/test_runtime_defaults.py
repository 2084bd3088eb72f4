"""`import official` sets TensorFlow's CPU allocator to the BFC pool unless
the user chose otherwise (see official/__init__.py for why)."""

import os
import subprocess
import sys

CODE = ("import os, official; "
        "print(os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'))")


def _run(env_value):
    env = dict(os.environ)
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
    if env_value is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_import_defaults_to_the_bfc_cpu_allocator():
    assert _run(None) == "true"


def test_an_explicit_user_setting_wins():
    assert _run("false") == "false"
