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

BEGIN = "<!-- model-table:begin -->"
END = "<!-- model-table:end -->"
README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "README.md")


def markdown_table():
    lines = [
        "| model | class | paper preset params | presets | domain / "
        "modality / task | results |",
        "|---|---|---:|---|---|---|",
    ]
    for name in garden.list_models():
        entry = garden.get_entry(name)
        params = entry.presets["paper"].get("params")
        slug = entry.cls.__module__.split(".")[1]
        tags = " / ".join(str(entry.tags.get(k, "-"))
                          for k in ("domain", "modality", "task"))
        lines.append(
            f"| `{name}` | `{entry.cls.__name__}` | "
            f"{params:,} | {', '.join(entry.presets)} | {tags} | "
            f"[garden/{slug}](garden/{slug}/README.md) |")
    return "\n".join(lines)


def current_readme_table(text):
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text,
                      re.S)
    return match.group(1) if match else None


def write_readme(path=README):
    text = open(path).read()
    new = f"{BEGIN}\n{markdown_table()}\n{END}"
    text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), new, text,
                  flags=re.S)
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    if parser.parse_args().write:
        write_readme()
    else:
        print(markdown_table())
