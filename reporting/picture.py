"""The README's picture of what the pipeline made: for each domain a row of the faces it found (the first row
of the faces stage's contact sheet), beside the training sample grid. Drawn from the run's own outputs, so
`twingan report --picture docs/images/pipeline.png` redraws it after any run."""

from __future__ import annotations

import io
from pathlib import Path

from core.atomic import write_bytes_atomic
from core.layout import Layout
from core.params import LoadedParams
from reporting.summary import ReportError

CELL = 96  # preprocessing/plots.py contact_sheet's default cell
CAPTION = 18
GAP = 16


def _first_row(sheet_path: Path, cells: int) -> object:
    from PIL import Image

    with Image.open(sheet_path) as sheet:
        row = sheet.convert("RGB").crop((0, 0, min(sheet.width, cells * CELL), min(sheet.height, CELL)))
    used = 0
    for n in range(row.width // CELL):  # trailing cells of a short sheet are plain white
        tile = row.crop((n * CELL, 0, (n + 1) * CELL, row.height))
        if tile.getextrema() != ((255, 255), (255, 255), (255, 255)):
            used = n + 1
    return row.crop((0, 0, max(used, 1) * CELL, row.height))


def draw_picture(loaded: LoadedParams, target: Path, cells: int = 6) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    at = Layout(loaded.root)
    rows = []
    for domain in loaded.params.domains:
        sheet = at.plots("faces") / f"{domain}.png"
        if sheet.is_file():
            rows.append((f"{domain}: faces found and aligned (faces@{domain})", _first_row(sheet, cells)))
    samples_path = at.plots("train") / "samples.png"
    if not rows or not samples_path.is_file():
        missing = "plots/faces/<domain>.png" if not rows else str(samples_path.relative_to(loaded.root))
        raise ReportError(f"{target}: nothing to draw yet, {missing} is missing; run `dvc repro` first")
    with Image.open(samples_path) as grid:
        scale = max(1, (len(rows) * (CELL + CAPTION)) // grid.height)
        samples = grid.convert("RGB").resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)

    font = ImageFont.load_default()
    labels = _grid_labels(tuple(loaded.params.train.domains or loaded.params.domains), grid.height)
    left = max(row.width for _, row in rows)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max((int(measure.textlength(label, font=font)) for label in labels), default=0)
    width = left + GAP + samples.width + (6 + label_width if labels else 0)
    height = max(len(rows) * (CELL + CAPTION), samples.height + CAPTION)
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for n, (caption, row) in enumerate(rows):
        y = n * (CELL + CAPTION)
        draw.text((2, y + 3), caption, fill=(0, 0, 0), font=font)
        picture.paste(row, (0, y + CAPTION))
    draw.text((left + GAP, 3), f"the model at step {_step(loaded)} (train samples)", fill=(0, 0, 0), font=font)
    picture.paste(samples, (left + GAP, CAPTION))
    row_height = samples.height / max(len(labels), 1)
    for n, label in enumerate(labels):
        y = CAPTION + int((n + 0.5) * row_height) - 6
        draw.text((left + GAP + samples.width + 6, y), label, fill=(0, 0, 0), font=font)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", optimize=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, buffer.getvalue())
    return target


def _grid_labels(domains: tuple[str, ...], height: int) -> list[str]:
    """training/samples.py translation_grid's rows: per source domain its inputs, a translation to each
    other domain, its reconstruction; none if the grid does not have that many rows of square cells."""
    count = len(domains) * (len(domains) + 1)
    if count == 0 or (height - 2) % count or (height - 2) // count < 6:
        return []
    labels = []
    for source in domains:
        labels.append(f"{source} inputs")
        labels += [f"-> {target}" for target in domains if target != source]
        labels.append(f"-> {source} (reconstruction)")
    return labels


def _step(loaded: LoadedParams) -> str:
    import json

    try:
        return str(json.loads(Layout(loaded.root).metrics("train").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError):
        return "?"
