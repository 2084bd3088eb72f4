"""The README stays true: its model table is the registry's."""

import os

from garden import model_table


def test_readme_model_table_matches_registry():
    text = open(model_table.README).read()
    assert "make demo" in text and "make test" in text
    table = model_table.current_readme_table(text)
    assert table is not None, "README.md lacks the model-table markers"
    assert table == model_table.markdown_table(), (
        "README.md's model table is stale: run "
        "`python -m garden.model_table --write`")


def test_every_model_readme_exists():
    import garden

    for name in garden.list_models():
        slug = garden.get_entry(name).cls.__module__.split(".")[1]
        path = os.path.join(os.path.dirname(model_table.README), "garden",
                            slug, "README.md")
        assert os.path.exists(path), path
