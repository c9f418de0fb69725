"""Pictures a person looks at rather than reads: contact sheets of crops (`dvc plots show` lists them)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from core.atomic import write_with


def contact_sheet(crops: list[bytes], target: Path, columns: int = 8, cell: int = 96) -> None:
    """A grid of crops a person can look at (`dvc plots show` lists it)."""
    from PIL import Image

    rows = max(1, math.ceil(len(crops) / columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for position, data in enumerate(crops):
        with Image.open(io.BytesIO(data)) as crop:
            tile = crop.convert("RGB").resize((cell, cell), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((position % columns) * cell, (position // columns) * cell))

    def _save(tmp: Path) -> None:
        sheet.save(tmp, "PNG")

    target.parent.mkdir(parents=True, exist_ok=True)
    write_with(target, _save)
