"""Declared schemas are enforced on write and on read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.parquet import (
    SchemaMismatchError,
    declare,
    read_params,
    read_table,
    table_from_rows,
    write_table,
)
from core.schemas import RAW_MANIFEST, RAW_REJECTS

REJECT = {
    "source_uri": "s",
    "member": "m",
    "reason": "corrupt",
    "detail": "d",
    "byte_size": 3,
    "sha256": None,
    "duplicate_of": None,
}


def test_round_trip_keeps_schema_and_params(tmp_path: Path) -> None:
    path = tmp_path / "rejects.parquet"
    write_table(table_from_rows([REJECT], RAW_REJECTS), path, RAW_REJECTS, {"ingest": {"max_pixels": 5}})
    assert read_table(path, RAW_REJECTS).to_pylist() == [REJECT]
    assert read_params(path) == {"ingest": {"max_pixels": 5}}
    assert not list(tmp_path.glob(".*.tmp"))


def test_equal_rows_give_equal_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_table(table_from_rows([REJECT], RAW_REJECTS), tmp_path / name, RAW_REJECTS, {"k": 1})
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_null_in_a_non_null_column_is_refused() -> None:
    with pytest.raises(SchemaMismatchError, match="'detail' may not hold nulls"):
        table_from_rows([{**REJECT, "detail": None}], RAW_REJECTS)


def test_wrong_type_is_refused() -> None:
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        table_from_rows([{**REJECT, "byte_size": "three"}], RAW_REJECTS)


def test_reading_another_schema_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    write_table(table_from_rows([REJECT], RAW_REJECTS), path, RAW_REJECTS)
    with pytest.raises(
        SchemaMismatchError,
        match=r"manifest\.parquet: holds raw_rejects/1, this version reads "
        r"raw_manifest/1",
    ):
        read_table(path, RAW_MANIFEST)


def test_reading_an_older_version_names_the_file(tmp_path: Path) -> None:
    old = declare("raw_rejects", 0, list(RAW_REJECTS)[:4])
    path = tmp_path / "rejects.parquet"
    write_table(table_from_rows([{k: REJECT[k] for k in old.names}], old), path, old)
    with pytest.raises(SchemaMismatchError, match=r"rejects\.parquet: holds raw_rejects/0.*dvc repro"):
        read_table(path, RAW_REJECTS)


def test_untagged_or_damaged_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1]}), plain)
    with pytest.raises(SchemaMismatchError, match="holds <untagged>"):
        read_table(plain, RAW_REJECTS)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 garbage")
    with pytest.raises(SchemaMismatchError, match=r"broken\.parquet: not a readable Parquet file"):
        read_table(broken, RAW_REJECTS)
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
        read_table(tmp_path / "missing.parquet", RAW_REJECTS)


def test_writing_a_table_of_other_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaMismatchError, match="refusing to write"):
        write_table(pa.table({"x": [1]}), tmp_path / "x.parquet", RAW_REJECTS)
    assert not (tmp_path / "x.parquet").exists()


def test_the_metadata_key_is_the_one_every_written_table_has() -> None:
    """Tables already on disk (data/, DVC caches) carry their params under this key: renaming it makes
    them unreadable, as a module move once did by mistake."""
    from core.parquet import PARAMS_KEY

    assert PARAMS_KEY == b"twingan.params"
