"""Draw the import direction between the project's packages as a Mermaid graph (GitHub renders it).

    python tools/import_graph.py            # print the graph
    python tools/import_graph.py --write    # rewrite it into docs/architecture.md

tests/test_dvc_yaml.py fails when an import runs up a floor, and tests/test_architecture_doc.py when the
picture in docs/architecture.md is not what this script draws from the code.
"""

from __future__ import annotations

import argparse
import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
# Floors, top to bottom, as tests/test_dvc_yaml.py enforces them.
FLOORS = [
    ("twingan",),
    ("flows",),
    ("inference", "evaluation", "reporting"),
    ("training", "scraping"),
    ("preprocessing",),
    ("core",),
]
PACKAGES = [package for floor in FLOORS for package in floor]
BEGIN, END = "<!-- import graph: begin (tools/import_graph.py --write) -->", "<!-- import graph: end -->"


def package_edges() -> dict[tuple[str, str], int]:
    """(importer, imported) package pairs and how many modules of the importer import the other package."""
    edges: collections.Counter[tuple[str, str]] = collections.Counter()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            targets = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    targets |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets.add(node.module.split(".")[0])
            for target in targets & set(PACKAGES) - {package}:
                edges[(package, target)] += 1
    return dict(sorted(edges.items()))


def mermaid() -> str:
    lines = ["```mermaid", "flowchart TD"]
    for number, floor in enumerate(FLOORS):
        lines.append(f'  subgraph floor{number}[" "]')
        lines += [f"    {package}[{package}/]" for package in floor]
        lines.append("  end")
    for (source, target), count in package_edges().items():
        lines.append(f"  {source} -->|{count}| {target}")
    lines.append("```")
    return "\n".join(lines)


def write() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + mermaid() + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the graph in {DOC.relative_to(ROOT)}")
    if parser.parse_args().write:
        write()
    else:
        print(mermaid())
