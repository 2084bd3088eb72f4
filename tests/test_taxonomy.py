"""The registry's taxonomy (official/taxonomy.py): every model is tagged
validly, the catalogue is consistent, and the module stays import-light."""

import subprocess
import sys

import pytest

import garden
from garden import model_table
from official import taxonomy


@pytest.mark.parametrize("name", garden.list_models())
def test_every_registered_model_has_valid_taxonomy_tags(name):
    tags = garden.get_entry(name).tags
    taxonomy.validate_tags(name, tags)
    assert tags["family"] == taxonomy.CATALOGUE[tags["paper"]]["family"]


def test_validate_tags_rejects_bad_tags_with_the_model_name():
    good = {"domain": "vision", "task": "image-classification",
            "modality": "image", "family": "vision-ssl", "paper": "mae"}
    taxonomy.validate_tags("m", good)
    bad_cases = [
        ({k: v for k, v in good.items() if k != "task"}, "missing"),
        ({**good, "domain": "vision-ssl"}, "domain"),
        ({**good, "task": "language-modeling"}, "task"),
        ({**good, "modality": "smell"}, "modality"),
        ({**good, "family": "misc"}, "family"),
        ({**good, "paper": "nope"}, "paper"),
    ]
    for tags, word in bad_cases:
        with pytest.raises(ValueError, match=f"'m'.*{word}|{word}.*'m'"):
            taxonomy.validate_tags("m", tags)


def test_catalogue_covers_the_survey_domains_and_every_paper_spec():
    assert set(taxonomy.DOMAINS) == {"nlp", "vision", "multimodal", "audio",
                                     "signal"}
    assert len(taxonomy.CATALOGUE) == 39  # the 38 specs + MAE
    for slug, entry in taxonomy.CATALOGUE.items():
        assert entry["task"] in taxonomy.DOMAINS[entry["domain"]]["tasks"], (
            slug)
        assert entry["family"] in taxonomy.FAMILIES, slug
    # Every paper package of the garden is catalogued.
    from garden import _papers
    assert set(_papers.PAPERS) <= set(taxonomy.CATALOGUE)


def test_list_filters_by_domain_and_task():
    vision = garden.list_models(domain="vision")
    assert {"mae", "point_mae"} <= set(vision)
    assert garden.list_models(domain="vision",
                              task="masked-image-modeling") == ["mae"]
    assert garden.list_models(domain="audio", task="no-such-task") == []


def test_readme_catalogue_is_generated_from_the_taxonomy():
    text = open(model_table.README).read()
    table = model_table.current_readme_table(
        text, model_table.CATALOGUE_BEGIN, model_table.CATALOGUE_END)
    assert table == model_table.catalogue_table(), (
        "README.md's catalogue is stale: run "
        "`python -m garden.model_table --write`")


def test_taxonomy_module_imports_no_tensorflow():
    code = ("import sys, official.taxonomy; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "False"], out
