"""Reading a file of ledger rows in chunks, so that memory stays flat however long it is.

A chunk holds its rows as columns (one list per column name), the cheapest form both readers
produce: Parquet is read a record batch at a time, CSV a block of lines at a time (an empty
cell is a missing value). A row that cannot even be read as a row (a CSV line with more or
fewer cells than the header, a record with an unknown column) is noted in the chunk with its
problem and reported with its row number like any other bad row.

The number of rows is known up front for Parquet (its footer) and estimated from the bytes read
for CSV, for the progress bar.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import COLUMNS

CHUNK_ROWS = 20_000
KNOWN_COLUMNS = frozenset((*COLUMNS, "seq"))  # seq: the source ledger's own, ignored


@dataclass
class Chunk:
    columns: dict[str, Sequence[Any]]  # known column name -> one value per row
    size: int
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (field, problem)


@dataclass
class RowSource:
    """Chunks of rows. `total` is the row count when known; `done_fraction` estimates how far
    a CSV file has been read."""

    chunks: Iterator[Chunk]
    total: int | None = None
    _handle: Any = None
    _size: int = 0

    def done_fraction(self) -> float | None:
        if self._handle is None or not self._size:
            return None
        try:
            return min(1.0, self._handle.buffer.tell() / self._size)
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def in_chunks(rows: Sequence[Mapping[str, Any]], size: int = CHUNK_ROWS) -> RowSource:
    """Rows already in memory as records (tests, the mappings of other systems), in chunks."""

    def chunks() -> Iterator[Chunk]:
        for start in range(0, len(rows), size):
            yield _records_chunk(rows[start : start + size])

    return RowSource(chunks(), total=len(rows))


def _records_chunk(records: Sequence[Mapping[str, Any]]) -> Chunk:
    problems: dict[int, tuple[str, str]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems[index] = ("row", "not a record")
            continue
        unknown = sorted(str(key) for key in record if key not in KNOWN_COLUMNS)
        if unknown:
            problems[index] = (unknown[0], "unknown column")
    columns = {
        name: [r.get(name) if isinstance(r, Mapping) else None for r in records] for name in COLUMNS
    }
    return Chunk(columns, len(records), problems)


def open_rows(path: Path, chunk_rows: int = CHUNK_ROWS) -> RowSource:
    """The rows of a .parquet or .csv file, in chunks of `chunk_rows`."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet(path, chunk_rows)
    if suffix == ".csv":
        return _csv(path, chunk_rows)
    raise InvalidInput("file", f"{path}: give a .parquet or .csv file")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of the file as a record, in one list (small files, tests)."""
    source = open_rows(path)
    rows: list[dict[str, Any]] = []
    try:
        for chunk in source.chunks:
            names = list(chunk.columns)
            rows.extend(
                dict(zip(names, values, strict=True))
                for values in zip(*chunk.columns.values(), strict=True)
            )
    finally:
        source.close()
    return rows


def _unknown_columns(names: Sequence[str], path: Path) -> None:
    unknown = sorted(name for name in names if name not in KNOWN_COLUMNS)
    if unknown:
        raise InvalidInput(unknown[0], f"unknown column in {path.name}")


def _parquet(path: Path, chunk_rows: int) -> RowSource:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        total = file.metadata.num_rows
    except OSError as error:
        raise InvalidInput("file", f"cannot read {path}: {error.strerror or error}") from None
    except Exception as error:  # pyarrow raises its own error types for a corrupt file
        raise InvalidInput("file", f"{path} is not a readable Parquet file: {error}") from None
    _unknown_columns(file.schema_arrow.names, path)

    def chunks() -> Iterator[Chunk]:
        try:
            # One reader per row group: a single reader over the whole file holds on to what
            # it decoded (its memory grew by ~60 MB per million rows).
            for group in range(file.num_row_groups):
                for batch in file.iter_batches(batch_size=chunk_rows, row_groups=[group]):
                    columns = batch.to_pydict()
                    columns.pop("seq", None)
                    yield Chunk(columns, batch.num_rows)
        except Exception as error:
            raise InvalidInput("file", f"{path} is not a readable Parquet file: {error}") from None

    return RowSource(chunks(), total=total)


def _csv(path: Path, chunk_rows: int) -> RowSource:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
        size = path.stat().st_size
    except OSError as error:
        raise InvalidInput("file", f"cannot read {path}: {error.strerror}") from None

    def chunks() -> Iterator[Chunk]:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                return
            _unknown_columns(header, path)
            lines: list[list[str]] = []
            for cells in reader:
                lines.append(cells)
                if len(lines) >= chunk_rows:
                    yield _lines_chunk(header, lines)
                    lines = []
            if lines:
                yield _lines_chunk(header, lines)
        except UnicodeDecodeError:
            raise InvalidInput("file", f"{path} is not UTF-8 text") from None
        except csv.Error as error:
            raise InvalidInput("file", f"{path} is not valid CSV: {error}") from None

    return RowSource(chunks(), _handle=handle, _size=size)


def _lines_chunk(header: list[str], lines: list[list[str]]) -> Chunk:
    width = len(header)
    problems = {
        index: ("row", f"has {len(cells)} cells, the header {width}")
        for index, cells in enumerate(lines)
        if len(cells) != width
    }
    if problems:  # pad or cut the ragged lines; they are reported, not read
        lines = [cells if len(cells) == width else [""] * width for cells in lines]
    columns = {
        name: [value or None for value in values]  # an empty cell is a missing value
        for name, values in zip(header, zip(*lines, strict=True), strict=True)
        if name != "seq"
    }
    return Chunk(columns, len(lines), problems)
