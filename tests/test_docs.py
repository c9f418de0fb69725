"""README.md and docs/*.md point at things that exist: every relative link (and its #anchor) and every
backticked project path, and the README's set-up block is the one CI runs (.ci/run ends with `make test`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.builders.repo import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: Backticked text starting with one of these is a path of this repository.
PROJECT_FOLDERS = (
    "core/",
    "flows/",
    "training/",
    "inference/",
    "evaluation/",
    "preprocessing/",
    "scraping/",
    "twingan/",
    "benchmarks/",
    "tests/",
    "tools/",
    "docs/",
)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _name(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def _prose(text: str) -> str:
    """The text outside fenced code blocks (links and headings in code are not links and headings)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    heading = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(_prose(path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[str]:
    """Link targets in the prose of a Markdown file (not in code blocks or code spans)."""
    prose = INLINE_CODE.sub("", _prose(path.read_text(encoding="utf-8")))
    return LINK.findall(prose)


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {_name(linked)}")
    return broken


def project_paths(path: Path) -> list[str]:
    """Backticked project paths (`core/params.py`, `flows/train.py:12`), without patterns or placeholders."""
    found = []
    for _, code in INLINE_CODE.findall(_prose(path.read_text(encoding="utf-8"))):
        words = code.split()
        if not words or not words[0].startswith(PROJECT_FOLDERS) or any(c in words[0] for c in "<*{$"):
            continue  # `benchmarks/ingest.py --memory` names benchmarks/ingest.py
        found.append(re.sub(r"(:\d+(-\d+)?)?:?$", "", words[0]))  # `flows/train.py:12`, `core/params.py:`
    return found


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_relative_link_points_to_an_existing_file_and_heading(doc: Path) -> None:
    assert broken_links(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_backticked_project_path_exists(doc: Path) -> None:
    missing = [mention for mention in project_paths(doc) if not (REPO / mention).exists()]
    assert missing == [], f"{_name(doc)} names files that do not exist: rewrite the text"


def test_the_docs_are_all_linked_from_the_readme() -> None:
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links(REPO / "README.md")}
    unlinked = [_name(doc) for doc in DOCS[1:] if doc.resolve() not in linked]
    assert unlinked == []


def test_the_readme_has_one_setup_block_and_ci_runs_its_test_command() -> None:
    blocks = [m.group(0) for m in FENCE.finditer((REPO / "README.md").read_text(encoding="utf-8"))]
    setup = [block for block in blocks if "make demo" in block and "make test" in block]
    assert len(setup) == 1, "README.md should have exactly one code block with `make demo` and `make test`"
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert commands[-1] == "make test"


def test_the_checks_find_what_is_broken(tmp_path: Path) -> None:
    """The helpers above do flag a missing file, a missing heading and a missing backticked path."""
    (tmp_path / "other.md").write_text("# Other\n\n## A `code` heading: with punctuation\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n[ok](other.md) [ok](other.md#a-code-heading-with-punctuation) [ok](#doc) [web](https://x.org/y)\n"
        "[gone](missing.md) [gone](other.md#nowhere) [gone](#nowhere)\n\n"
        "```\n[in code](not-a-link.md)\n```\n"
        "`core/params.py` `core/no_such_module.py:12` `flows/<stage>.py` `core/*.py` `twingan train`\n"
        "`benchmarks/ingest.py --memory`\n",
        encoding="utf-8",
    )
    assert [line.split(":")[0] for line in broken_links(doc)] == ["missing.md", "other.md#nowhere", "#nowhere"]
    assert project_paths(doc) == ["core/params.py", "core/no_such_module.py", "benchmarks/ingest.py"]
