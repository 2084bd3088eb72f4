"""The docstring example of the decoder runs and prints what it says."""

import doctest
import importlib


def test_docstring_examples_run():
    module = importlib.import_module(
        "garden.lean_attention.lean_attention_decoder")
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
