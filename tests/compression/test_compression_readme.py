"""The Python snippets of official/compression/README.md run, and the
docstring example of `Distiller` runs."""

import doctest
import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "official",
                      "compression", "README.md")


def _snippets():
    return re.findall(r"```python\n(.*?)```", open(README).read(), re.S)


def test_readme_has_snippets():
    assert len(_snippets()) >= 1


@pytest.mark.parametrize("index", range(len(_snippets())))
def test_readme_snippet_runs(index):
    exec(compile(_snippets()[index], f"README snippet {index}", "exec"), {})


def test_distiller_docstring_example():
    from official.compression import distillation

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(distillation.Distiller, "Distiller"):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0
