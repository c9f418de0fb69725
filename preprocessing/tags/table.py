"""Reading the tags stage's table back (the dataset stage, the tests): rows and the vocabulary they follow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.parquet import SchemaMismatchError, read_params, read_table, schema_id
from core.schemas import TAGS


def read_tags(path: Path) -> tuple[Any, list[str]]:
    """A tags table and the vocabulary its probability columns follow (checked against the rows)."""
    table = read_table(path, TAGS)
    vocabulary = read_params(path).get("vocabulary")
    if not isinstance(vocabulary, list):
        raise SchemaMismatchError(f"{path}: {schema_id(TAGS)} without its vocabulary in the metadata")
    lengths = {len(p) for p in table["probabilities"].to_pylist() if p is not None}
    if lengths - {len(vocabulary)}:
        raise SchemaMismatchError(f"{path}: probabilities of length {sorted(lengths)} for {len(vocabulary)} tags")
    return table, vocabulary
