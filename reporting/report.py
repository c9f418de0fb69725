"""`twingan report`: the terminal summary, the HTML page (plots/report.html) and, on request, the picture."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console

from core.atomic import write_bytes_atomic
from core.params import LoadedParams
from reporting.page import render_page
from reporting.picture import draw_picture
from reporting.summary import Summary, summarize
from reporting.terminal import print_summary

log = logging.getLogger(__name__)
PAGE = Path("plots") / "report.html"


def report(loaded: LoadedParams, console: Console, page: Path | None = None, picture: Path | None = None) -> Summary:
    """Print the summary and write the page (by default plots/report.html beside params.yaml) and, if asked,
    the picture."""
    summary = summarize(loaded)
    page = page or loaded.root / PAGE
    html = render_page(summary, loaded.root, f"Twin-GAN pipeline: {loaded.file.name}")
    page.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(page, html.encode("utf-8"))
    log.debug("wrote %s (%d pictures, %d charts)", page, len(summary.pictures), len(summary.charts))
    print_summary(summary, console, _shown(page, loaded.root))
    if picture is not None:
        console.print(f"Picture: {_shown(draw_picture(loaded, picture), loaded.root)}", highlight=False)
    return summary


def _shown(path: Path | None, root: Path) -> Path | None:
    if path is None:
        return None
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path
