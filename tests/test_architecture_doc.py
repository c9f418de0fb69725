"""docs/architecture.md shows the import direction the code has: its graph is what tools/import_graph.py draws."""

from __future__ import annotations

from tools.import_graph import BEGIN, DOC, END, mermaid


def test_the_import_graph_in_the_docs_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert shown == mermaid(), "the import graph changed: run `python tools/import_graph.py --write`"
