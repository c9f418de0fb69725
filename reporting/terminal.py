"""The summary as a person reads it in a terminal: a table of the data stages, a line each for the model's
training and index, its evaluation (metrics that share one reason for being absent share one line), and
the pictures to open."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reporting.summary import Measure, Summary


def grouped(measures: list[Measure]) -> list[str]:
    """Computed metrics one per line; the others one line per reason: 'reason: group key, key; group key'."""
    lines = [f"{m.group} {m.name}: {m.value}" for m in measures if not m.value.startswith("not ")]
    reasons: dict[str, dict[str, list[str]]] = {}
    for m in measures:
        if m.value.startswith("not "):
            reasons.setdefault(m.value, {}).setdefault(m.group, []).append(m.name)
    for reason, groups in reasons.items():
        lines.append(f"{reason}: " + "; ".join(f"{group} {', '.join(keys)}" for group, keys in groups.items()))
    return lines


def print_summary(summary: Summary, console: Console, page: Path | None) -> None:
    stages = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    stages.add_column("stage", no_wrap=True)
    stages.add_column("read", justify="right", no_wrap=True)
    stages.add_column("kept", justify="right", no_wrap=True)
    stages.add_column("dropped: why")
    stages.add_column("notes")
    for row in summary.rows:
        stages.add_row(*(escape(cell) for cell in (row.stage, row.read, row.kept, row.dropped, row.notes)))
    console.print(stages)

    for line in summary.model_lines:
        console.print(f"[bold]{line.name}[/bold]  {escape(line.value)}", highlight=False)
    console.print(f"[bold]{escape(summary.model_title)}[/bold]", highlight=False)
    for line in grouped(summary.model):
        console.print(f"  {escape(line)}", highlight=False)

    console.print("\n[bold]Pictures[/bold]", highlight=False)
    for picture in summary.pictures:
        console.print(f"  {escape(str(picture.path))}  [dim]{escape(picture.title)}[/dim]", highlight=False)
    for path in summary.missing_pictures:
        console.print(f"  {escape(str(path))}  [dim]not written yet[/dim]", highlight=False)
    if page is not None:
        console.print(
            f"All on one page with the tag charts and loss curves: [bold]{escape(str(page))}[/bold] (offline). "
            "`dvc plots show` draws DVC's page, dvc_plots/index.html, whose charts load Vega from the web.",
            highlight=False,
        )
