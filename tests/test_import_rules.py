"""The import arrows: garden -> official -> keras/tf, data_pipelines alone.

Parses every file's AST, so the rule holds without review.
"""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "official": {"garden", "tests", "colab"},
    "data_pipelines": {"garden", "official", "tests", "colab"},
    "garden": {"tests", "colab"},
}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.level == 0:
            yield node.lineno, node.module


def _files():
    for package in FORBIDDEN:
        for path in sorted((REPO / package).rglob("*.py")):
            yield package, path


@pytest.mark.parametrize("package,path", list(_files()),
                         ids=lambda v: str(v))
def test_no_upward_or_sideways_import(package, path):
    bad = []
    for lineno, module in _imports(path):
        top = module.split(".")[0]
        if top in FORBIDDEN[package]:
            bad.append(f"{path.relative_to(REPO)}:{lineno} imports {module}")
        if top in ("tf_keras",) or module.startswith("tensorflow.keras"):
            bad.append(f"{path.relative_to(REPO)}:{lineno} uses Keras 2 "
                       f"({module}); write `import keras`")
    assert not bad, "\n".join(bad)


def test_papers_do_not_import_each_others_internals():
    bad = []
    for path in sorted((REPO / "garden").rglob("*.py")):
        rel = path.relative_to(REPO / "garden")
        own = rel.parts[0] if len(rel.parts) > 1 else None
        for lineno, module in _imports(path):
            parts = module.split(".")
            if parts[0] == "garden" and len(parts) > 2 and own and \
                    parts[1] != own and parts[2].endswith("_layers"):
                bad.append(f"{path}:{lineno} imports {module}")
    assert not bad, "\n".join(bad)


def test_the_rule_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import garden\nfrom garden.mae import x\n")
    found = [m for _, m in _imports(bad)]
    assert found == ["garden", "garden.mae"]
