"""The docstring examples of the FIT modules run and print what they say."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["fit_backbone", "fit_classifier"])
def test_docstring_examples_run(name):
    module = importlib.import_module(f"garden.fit.{name}")
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests, module.__name__
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
