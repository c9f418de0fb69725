"""Parquet tables with declared schemas, checked on write and on read.

Every table the pipeline produces has one `pyarrow.Schema` declared in code (see
`core/schemas.py`), tagged with a name and version in its metadata. Writing checks the rows
against it (types and non-null columns) and writes with fixed options, so equal rows give equal
bytes. Reading checks the file against the schema the reader expects, so a manifest written by an
older version fails with the file's name instead of feeding a wrong column to a later stage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.atomic import write_with
from core.errors import MissingFile, UserError

SCHEMA_KEY = b"twingan.schema"
PARAMS_KEY = b"twingan.params"  # the metadata key every table of the pipeline writes: never rename it


class SchemaMismatchError(UserError, ValueError):
    """A Parquet file does not hold what its reader expects."""


def declare(name: str, version: int, fields: Sequence[pa.Field]) -> pa.Schema:
    return pa.schema(list(fields), metadata={SCHEMA_KEY: f"{name}/{version}".encode()})


def schema_id(schema: pa.Schema) -> str:
    return (schema.metadata or {}).get(SCHEMA_KEY, b"<untagged>").decode()


def table_from_rows(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table, failing on a wrong type or a null in a non-null column (pyarrow alone allows it)."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaMismatchError(f"{schema_id(schema)}: column {field.name!r} may not hold nulls")
    return table


def write_table(
    table: pa.Table,
    path: Path,
    schema: pa.Schema,
    params: Mapping[str, Any] | None = None,
    *,
    row_group_size: int = 64 * 1024,
    compression: str = "zstd",
) -> None:
    """Write atomically, with the schema tag and (optionally) the parameters that produced the table.
    Row groups are the unit a reader can fetch alone (the training loader's unit of work)."""
    if not table.schema.equals(schema, check_metadata=False):
        raise SchemaMismatchError(
            f"{path}: refusing to write: columns differ from {schema_id(schema)}\n"
            f"  expected: {schema.to_string(show_schema_metadata=False)}\n"
            f"  got:      {table.schema.to_string(show_schema_metadata=False)}"
        )
    metadata = dict(schema.metadata or {})
    if params is not None:
        metadata[PARAMS_KEY] = json.dumps(params, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(metadata)

    def _write(tmp: Path) -> None:
        pq.write_table(
            table,
            tmp,
            compression=compression,
            compression_level=3 if compression == "zstd" else None,
            use_dictionary=True,
            write_statistics=True,
            row_group_size=row_group_size,
        )

    write_with(path, _write)


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    """Read a table written by `write_table`, refusing files of another schema or version."""
    if not path.is_file():
        raise MissingFile(f"{path}: no such Parquet file (has the stage that writes it run?)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise SchemaMismatchError(f"{path}: not a readable Parquet file: {error}") from None
    found, expected = schema_id(table.schema), schema_id(schema)
    if found != expected:
        raise SchemaMismatchError(
            f"{path}: holds {found}, this version reads {expected}; re-run the stage that writes it "
            "(dvc repro) to rebuild it"
        )
    if not table.schema.equals(schema, check_metadata=False):
        raise SchemaMismatchError(
            f"{path}: columns differ from {expected}\n"
            f"  expected: {schema.to_string(show_schema_metadata=False)}\n"
            f"  found:    {table.schema.to_string(show_schema_metadata=False)}"
        )
    return table


def read_params(path: Path) -> dict[str, Any]:
    """The parameters recorded in a table's metadata by `write_table`."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(PARAMS_KEY)
    return json.loads(raw) if raw else {}
