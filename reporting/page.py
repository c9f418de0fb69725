"""The summary as one self-contained HTML page: every picture embedded, the tag charts as HTML bars and the
loss curves as inline SVG, so it opens offline and can be mailed or archived as one file. Same outputs, same
bytes: nothing in it depends on the time, the machine or the order files were found in."""

from __future__ import annotations

import base64
import html
from dataclasses import astuple
from pathlib import Path

from reporting.summary import Chart, Summary

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222 }
table { border-collapse: collapse; margin: 0.5em 0 1.5em } td, th { padding: 0.2em 0.8em; text-align: left;
vertical-align: top; border-bottom: 1px solid #ddd } th { background: #f4f4f4 } figure { margin: 0 0 1.5em }
figure img { image-rendering: pixelated; max-width: 100%; border: 1px solid #ddd } figcaption { color: #555 }
.bars td { border: 0; padding: 0.05em 0.5em } .bar { background: #4a7fb5; height: 0.9em; display: inline-block }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em } code { background: #f4f4f4; padding: 0 0.2em }
"""
COLOURS = ("#4a7fb5", "#d0703c", "#5a9e4b", "#9b59b6")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(header: tuple[str, ...] | None, rows: list[tuple[str, ...]]) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _bars(chart: Chart) -> str:
    bars = sorted(chart.bars, key=lambda bar: (-bar[1], bar[0]))
    top = max((count for _, count in bars), default=0) or 1
    rows = "".join(
        f'<tr><td>{_e(tag)}</td><td><span class="bar" style="width:{12 * count / top:.2f}em"></span> {count}</td></tr>'
        for tag, count in bars
    )
    return f'<div><b>{_e(chart.title)}</b><table class="bars">{rows}</table></div>'


def _curves(losses: dict[str, list[tuple[int, float]]], width: int = 640, height: int = 240) -> str:
    points = [p for series in losses.values() for p in series]
    if not points:
        return "<p>No loss history yet (plots/train/losses.csv).</p>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    sx = (width - 60) / ((x1 - x0) or 1)
    sy = (height - 40) / ((y1 - y0) or 1)
    lines, legend = [], []
    for n, (name, series) in enumerate(sorted(losses.items())):
        colour = COLOURS[n % len(COLOURS)]
        path = " ".join(f"{50 + (x - x0) * sx:.1f},{height - 25 - (y - y0) * sy:.1f}" for x, y in series)
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        legend.append(f'<text x="{60 + 120 * n}" y="14" fill="{colour}">{_e(name)}</text>')
    axes = (
        f'<line x1="50" y1="{height - 25}" x2="{width - 10}" y2="{height - 25}" stroke="#999"/>'
        f'<line x1="50" y1="15" x2="50" y2="{height - 25}" stroke="#999"/>'
        f'<text x="50" y="{height - 8}">step {x0}</text><text x="{width - 90}" y="{height - 8}">step {x1}</text>'
        f'<text x="2" y="{height - 25}">{y0:.3g}</text><text x="2" y="24">{y1:.3g}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">'
        f"{axes}{''.join(lines)}{''.join(legend)}</svg>"
    )


def render_page(summary: Summary, root: Path, title: str) -> str:
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{STYLE}</style></head><body>',
        f"<h1>{_e(title)}</h1>",
        "<p>Written by <code>twingan report</code> from the files the stages wrote; rerun it after any "
        "<code>dvc repro</code>.</p>",
        "<h2>Stages</h2>",
        _table(("stage", "read", "kept", "dropped: why", "notes"), [astuple(row) for row in summary.rows]),
        "<h2>Model</h2>",
        _table(None, [(m.name, m.value) for m in summary.model_lines]),
        f"<h3>{_e(summary.model_title)}</h3>",
        _table(("", "metric", "value"), [(m.group, m.name, m.value) for m in summary.model]),
        "<h2>Training losses</h2>",
        _curves(summary.losses),
        "<h2>Pictures</h2>",
    ]
    for picture in summary.pictures:
        data = base64.b64encode((root / picture.path).read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(picture.title)}">'
            f"<figcaption><code>{_e(picture.path)}</code>: {_e(picture.title)}</figcaption></figure>"
        )
    if summary.missing_pictures:
        missing = ", ".join(f"<code>{_e(path)}</code>" for path in summary.missing_pictures)
        parts.append(f"<p>Not written yet: {missing}</p>")
    parts.append("<h2>Tags</h2>")
    parts.append('<div class="charts">' + "".join(_bars(chart) for chart in summary.charts) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
