"""The README's model table, generated from the registry.

    python -m garden.model_table            # print the table
    python -m garden.model_table --write    # rewrite it inside README.md

`tests/test_readme.py` fails when README.md's table differs from the
registry, so the front door stays true.
"""

import argparse
import os
import re

import garden
from official import taxonomy

BEGIN = "<!-- model-table:begin -->"
END = "<!-- model-table:end -->"
CATALOGUE_BEGIN = "<!-- catalogue:begin -->"
CATALOGUE_END = "<!-- catalogue:end -->"
README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "README.md")


def markdown_table():
    lines = [
        "| model | class | paper preset params | presets | domain / "
        "task / modality | results |",
        "|---|---|---:|---|---|---|",
    ]
    for name in garden.list_models():
        entry = garden.get_entry(name)
        params = entry.presets["paper"].get("params")
        slug = entry.cls.__module__.split(".")[1]
        tags = " / ".join(str(entry.tags.get(k, "-"))
                          for k in ("domain", "task", "modality"))
        lines.append(
            f"| `{name}` | `{entry.cls.__name__}` | "
            f"{params:,} | {', '.join(entry.presets)} | {tags} | "
            f"[garden/{slug}](garden/{slug}/README.md) |")
    return "\n".join(lines)


def catalogue_table():
    """Every paper of the taxonomy with its registered models."""
    by_paper = {}
    for name in garden.list_models():
        by_paper.setdefault(garden.get_entry(name).tags.get("paper"),
                            []).append(name)
    return taxonomy.catalogue_table(by_paper)


def current_readme_table(text, begin=BEGIN, end=END):
    match = re.search(re.escape(begin) + r"\n(.*?)\n" + re.escape(end), text,
                      re.S)
    return match.group(1) if match else None


def write_readme(path=README):
    text = open(path).read()
    for begin, end, table in ((BEGIN, END, markdown_table()),
                              (CATALOGUE_BEGIN, CATALOGUE_END,
                               catalogue_table())):
        new = f"{begin}\n{table}\n{end}"
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end),
                      lambda _: new, text, flags=re.S)
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    if parser.parse_args().write:
        write_readme()
    else:
        print(markdown_table())
        print()
        print(catalogue_table())
