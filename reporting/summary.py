"""The run's figures, read from the files the stages wrote (core/layout.py says where).

One row per stage (and per domain or crawl): what it read, what it kept, what it dropped and why. A stage
whose metrics file is missing is a row that says so, never an error: the report must work after a partial
run, which is when a person most needs it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.layout import SPLITS, Layout
from core.params import LoadedParams


@dataclass(frozen=True)
class Row:
    stage: str  # as dvc names it: "faces@human"
    read: str
    kept: str
    dropped: str  # how many and why
    notes: str = ""


@dataclass(frozen=True)
class Picture:
    path: Path  # relative to the project root
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Measure:
    """One model metric: a value, or why it was not computed."""

    name: str
    value: str
    group: str = ""  # evaluate's direction or domain: "human_to_anime"


@dataclass
class Summary:
    rows: list[Row] = field(default_factory=list)
    model_lines: list[Measure] = field(default_factory=list)  # train and index, one line each
    model: list[Measure] = field(default_factory=list)  # evaluate, one per metric
    model_title: str = "evaluate"
    pictures: list[Picture] = field(default_factory=list)
    missing_pictures: list[Path] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


class ReportError(UserError, ValueError):
    """A metrics or plot file that exists but cannot be read: named, so the user can re-run its stage."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: not readable JSON ({error}); run `dvc repro` to rewrite it") from error


def _count(number: int | float | None, unit: str = "") -> str:
    if number is None:
        return "-"
    text = f"{number:,}" if isinstance(number, int) else f"{number:g}"
    return f"{text} {unit}".strip()


def _why(counts: dict[str, int] | None) -> str:
    """'corrupt 1, duplicate 1': the non-zero reasons, largest first (ties by name)."""
    items = sorted(((k, v) for k, v in (counts or {}).items() if v), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in items)


def _dropped(total: int, reasons: dict[str, int] | None) -> str:
    why = _why(reasons)
    return f"{total:,}: {why}" if why else f"{total:,}"


def _top(tags: dict[str, int] | None, count: int = 3) -> str:
    ranked = sorted(((k, v) for k, v in (tags or {}).items() if v), key=lambda kv: (-kv[1], kv[0]))[:count]
    return ", ".join(f"{k} {v}" for k, v in ranked)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _missing(stage: str, path: Path, root: Path) -> Row:
    return Row(stage, "-", "-", "-", f"not run yet: no {path.relative_to(root)}")


# ------------------------------------------------------------------------------------------- stage rows


def scrape_row(stage: str, m: dict[str, Any]) -> Row:
    pages = m.get("pages_by_status", {})
    failed = sum(m.get("pages_failed_by_reason", {}).values())
    notes = f"listings gated {m.get('listings_gated', 0)}, failed {m.get('listings_failed', 0)}"
    errors = m.get("image_errors", {})
    return Row(
        stage,
        f"{m.get('pages', 0):,} pages, {m.get('portraits', 0):,} portraits",
        f"{m.get('images_stored', 0):,} images",
        _dropped(sum(errors.values()) + m.get("duplicates", 0), {**errors, "duplicate": m.get("duplicates", 0)}),
        f"pages {_why(pages)}; failed pages {failed}; {notes}",
    )


def ingest_row(stage: str, m: dict[str, Any]) -> Row:
    return Row(
        stage,
        _count(m.get("seen"), "files"),
        _count(m.get("stored"), "images"),
        _dropped(m.get("rejected", 0), m.get("rejects")),
        f"{m.get('bytes_stored', 0) / 2**20:.1f} MiB",
    )


def faces_row(stage: str, m: dict[str, Any]) -> Row:
    notes = [f"{_percent(m.get('fraction_with_face'))} of images have one"]
    if m.get("aligned_within_2pct") is not None:
        notes.append(f"eyes aligned {_percent(m['aligned_within_2pct'])}")
    return Row(
        stage,
        _count(m.get("images"), "images"),
        f"{m.get('faces_kept', 0):,} faces",
        _dropped(sum((m.get("rejects") or {}).values()), m.get("rejects")),
        "; ".join(notes),
    )


def tags_row(stage: str, m: dict[str, Any]) -> Row:
    untagged = m.get("untagged", 0)
    top = _top(m.get("tags"), 2)
    return Row(
        stage,
        _count(m.get("faces"), "faces"),
        f"{m.get('tagged', 0):,} tagged",
        _dropped(untagged, m.get("untagged_reasons")) + " untagged" if untagged else "0",
        f"{m.get('tagger', '?')}" + (f": {top}" if top else ""),
    )


def dataset_row(stage: str, m: dict[str, Any]) -> Row:
    rejects = dict(m.get("rejects") or {})
    if m.get("near_duplicates_removed"):
        rejects["near_duplicate"] = m["near_duplicates_removed"]
    splits = m.get("splits") or {}
    return Row(
        stage,
        _count(m.get("faces_in"), "faces"),
        f"{m.get('faces_kept', 0):,} faces",
        _dropped(sum(rejects.values()), rejects),
        ", ".join(f"{split} {splits.get(split, 0)}" for split in SPLITS),
    )


def train_line(m: dict[str, Any]) -> str:
    losses = ", ".join(f"{k} {m[k]:.3g}" for k in ("g/total", "d/total") if isinstance(m.get(k), int | float))
    parts = [f"step {m.get('step', '?')}, {m.get('images_seen', 0):,} images seen"]
    if "seconds" in m:
        parts[0] += f" in {m['seconds']:g} s"
    parts += [losses] if losses else []
    parts += [f"weights {str(m['weights_sha256'])[:12]}"] if m.get("weights_sha256") else []
    parts += [f"profile {m['profile']}"] if m.get("profile") else []
    return "; ".join(parts)


def index_line(m: dict[str, Any]) -> str:
    rows = ", ".join(f"{d} {n:,}" for d, n in sorted((m.get("rows") or {}).items()))
    cross = [
        f"{pair} overlap@{v.get('k')} {v.get('overlap_at_k', 0):.2f} (chance {v.get('chance', 0):.2f})"
        for pair, v in sorted((m.get("cross_domain") or {}).items())
        if v.get("samples")
    ]
    return "; ".join([f"rows {rows}", *cross])


def evaluate_measures(m: dict[str, Any]) -> list[Measure]:
    """Every metric of metrics/evaluate.json, grouped by direction or domain: the value or its status."""
    measures = []
    for group, values in sorted(m.items()):
        if not isinstance(values, dict):
            continue
        for key, value in sorted(values.items()):
            if key.endswith("_status") or key.endswith("_reals") or key.endswith("_translations") or key == "images":
                continue
            if value is None:
                shown = values.get(f"{key}_status", "not computed")
            elif isinstance(value, float) and ("rate" in key or key.endswith("agreement")):
                shown = _percent(value)
            elif isinstance(value, float):
                shown = f"{value:.3g}" + (" dB" if key.endswith("_db") else "°" if key.endswith("_degrees") else "")
            else:
                shown = str(value)
            measures.append(Measure(key, shown, group))
    return measures


# ---------------------------------------------------------------------------------------------- pictures


def pictures(loaded: LoadedParams) -> list[Picture]:
    """Every picture the stages write, in pipeline order (whether or not it exists yet)."""
    at = Layout(loaded.root)
    listed: list[tuple[Path, str]] = []
    for domain in loaded.params.domains:
        listed.append((at.plots("faces") / f"{domain}.png", f"faces@{domain}: the faces kept"))
    for domain in loaded.params.domains:
        for split in SPLITS:
            listed.append((at.plots("dataset", domain) / f"{split}.png", f"dataset@{domain}: {split} split"))
    listed.append((at.plots("train") / "samples.png", "train: per domain, inputs, translations, reconstructions"))
    listed.append(
        (at.plots("evaluate") / "samples.png", "evaluate: per direction, inputs, translations, reconstructions")
    )
    return [Picture(path.relative_to(loaded.root), title) for path, title in listed]


def _charts(loaded: LoadedParams) -> list[Chart]:
    at = Layout(loaded.root)
    charts = []
    for domain in loaded.params.domains:
        files = [(at.plots("tags") / f"{domain}.json", f"tags@{domain}: faces per tag")]
        files += [
            (at.plots("dataset", domain) / f"tags-{split}.json", f"dataset@{domain}: faces per tag, {split}")
            for split in SPLITS
        ]
        for path, title in files:
            bars = _read_json(path)
            try:
                if bars:
                    charts.append(Chart(title, tuple((str(b["tag"]), int(b["faces"])) for b in bars)))
            except (KeyError, TypeError, ValueError) as error:
                raise ReportError(f"{path}: not a list of {{tag, faces}} bars ({error!r})") from error
    return charts


def _losses(path: Path, columns: tuple[str, ...] = ("g/total", "d/total")) -> dict[str, list[tuple[int, float]]]:
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        return {c: [(int(r["step"]), float(r[c])) for r in rows if r.get(c)] for c in columns if rows and c in rows[0]}
    except (OSError, KeyError, ValueError) as error:
        raise ReportError(f"{path}: not a loss history with a step column ({error!r})") from error


# ------------------------------------------------------------------------------------------------ summary


def summarize(loaded: LoadedParams) -> Summary:
    at, root, params = Layout(loaded.root), loaded.root, loaded.params
    summary = Summary()
    per_item = [("scrape", name, scrape_row) for name in params.scrape]
    for stage, build in (("ingest", ingest_row), ("faces", faces_row), ("tags", tags_row), ("dataset", dataset_row)):
        per_item += [(stage, domain, build) for domain in params.domains]
    for stage, key, build in per_item:
        path = at.metrics(stage, key)
        metrics = _read_json(path)
        name = f"{stage}@{key}"
        summary.rows.append(_missing(name, path, root) if metrics is None else build(name, metrics))
    for stage, line in (("train", train_line), ("index", index_line)):
        path = at.metrics(stage)
        metrics = _read_json(path)
        summary.model_lines.append(
            Measure(stage, f"not run yet: no {path.relative_to(root)}" if metrics is None else line(metrics))
        )
    evaluation = _read_json(at.metrics("evaluate"))
    if evaluation is None:
        summary.model_title = f"evaluate: not run yet: no {at.metrics('evaluate').relative_to(root)}"
    else:
        summary.model_title = (
            f"evaluate: the model at step {evaluation.get('model_step', '?')}, "
            f"{evaluation.get('resolution', '?')} px, on the {evaluation.get('split', '?')} split"
        )
        summary.model = evaluate_measures(evaluation)
    for picture in pictures(loaded):
        if (root / picture.path).is_file():
            summary.pictures.append(picture)
        else:
            summary.missing_pictures.append(picture.path)
    summary.charts = _charts(loaded)
    summary.losses = _losses(at.plots("train") / "losses.csv")
    return summary
