"""The Python snippets of official/attention/README.md run and are right."""

import os
import re

import numpy as np
from attention_reference import dense_reference

README = os.path.join(
    os.path.dirname(__file__), "..", "..", "official", "attention", "README.md"
)


def test_readme_snippet_runs():
    snippets = re.findall(r"```python\n(.*?)```", open(README).read(), re.S)
    assert snippets
    scope = {}
    for code in snippets:
        exec(code, scope)
    q, kv = scope["q"], scope["kv"]
    ref = dense_reference(q, kv, kv, causal=True)
    assert np.abs(np.asarray(scope["out"]) - ref).max() < 2e-5
    assert np.abs(np.asarray(scope["step"]) - ref[:, -1:]).max() < 2e-5
