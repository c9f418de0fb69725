"""Turn the workers' records into the manifest, the rejects and the metrics of `data/raw/<domain>/`.

Workers finish in any order and may store the same bytes twice; everything here depends only on the
set of records, so 1 worker and N workers give the same rows, and the same bytes on disk.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preprocessing.ingest.inspect import Record
from preprocessing.ingest.names import storable_text
from preprocessing.ingest.reasons import ALL_REASONS, Reason


@dataclass
class IngestResult:
    manifest: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        counts = Counter(row["reason"] for row in self.rejects)
        return {
            "seen": len(self.manifest) + len(self.rejects),
            "stored": len(self.manifest),
            "rejected": len(self.rejects),
            "bytes_stored": sum(row["byte_size"] for row in self.manifest),
            "rejects": {reason: counts.get(reason, 0) for reason in ALL_REASONS},
        }


def assemble(domain: str, source_uri: str, records: Iterable[Record]) -> IngestResult:
    """Rows sorted by id (manifest) and by member (rejects); exact duplicates keep the first member."""
    stored: dict[str, list[Record]] = {}
    result = IngestResult()
    for record in records:
        if record.reason is None:
            assert record.sha256 is not None
            stored.setdefault(record.sha256, []).append(record)
        else:
            result.rejects.append(_reject_row(source_uri, record, record.reason, record.detail))
    for sha in sorted(stored):
        first, *others = sorted(stored[sha], key=lambda r: r.member)
        result.manifest.append(
            {
                "id": sha,
                "domain": domain,
                "source_uri": source_uri,
                "member": storable_text(first.member),
                "path": first.path,
                "format": first.format,
                "mode": first.mode,
                "width": first.width,
                "height": first.height,
                "exif_orientation": first.exif_orientation,
                "byte_size": first.byte_size,
                "duplicates": len(others),
            }
        )
        for other in others:
            row = _reject_row(source_uri, other, Reason.DUPLICATE.value, f"same bytes as {first.member}")
            row["duplicate_of"] = sha
            result.rejects.append(row)
    result.rejects.sort(key=lambda row: (row["member"], row["reason"], row["detail"]))
    return result


def _reject_row(source_uri: str, record: Record, reason: str, detail: str) -> dict[str, Any]:
    return {
        "source_uri": source_uri,
        # Members are printable by construction (names.member_name); details quote paths and errors
        # (a symlink's target), which may hold surrogate escapes that Parquet refuses.
        "member": storable_text(record.member),
        "reason": reason,
        "detail": storable_text(detail),
        "byte_size": record.byte_size,
        "sha256": record.sha256,
        "duplicate_of": None,
    }


def prune_store(store: Path, manifest: list[dict[str, Any]], also_keep: Iterable[str] = ()) -> int:
    """Delete what a killed earlier run left in the staging folder and this run does not keep: images of
    items no longer in the source, half-written temp files, tables about to be rewritten. `also_keep`
    names other files (relative to `store`) still needed."""
    keep = {row["path"] for row in manifest} | set(also_keep)
    removed = 0
    for folder, _dirs, files in os.walk(store):
        for name in files:
            path = Path(folder) / name
            if path.relative_to(store).as_posix() not in keep:
                path.unlink()
                removed += 1
    return removed
