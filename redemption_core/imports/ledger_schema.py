"""`promo import`: events from other systems, in the ledger schema of docs/ledger.md.

Every row goes through the rules the live engine applies, against the state the ledger and
the rows before it in the file left: first on its own (rows.py: columns, ids, timestamps,
payload fields and their closed sets), then against that state (replay.py: references,
limits, budgets, holders, rollbacks, audiences, ids and idempotency keys used once). Rows are
applied in the order of the file, each through the store's projection like a live event, so
that the next row is checked against it. A row the engine would refuse is refused with its row
number, field and reason code; where another system allowed what a rule forbids, the message
says which campaign setting describes that system.

All or nothing: the rows are applied in one write transaction that commits only if no row was
refused; otherwise it is rolled back and the ledger is left as it was. The file is read in
chunks and the rows of a chunk are written before the next is read, so memory stays flat in the
file's length. Rows whose event id the ledger already holds with the same content are skipped,
so importing a file twice adds nothing the second time; the same id with other content is an
error. recorded_at is the import time unless the row gives one.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import COLUMNS, Event
from redemption_core.domain.invariants import Breach
from redemption_core.domain.reasons import SETTINGS, LedgerCode
from redemption_core.imports.reading import RowSource, in_chunks, open_rows, read_rows
from redemption_core.imports.replay import Replay
from redemption_core.imports.rows import ID_COLUMNS, ParsedRow, RowParser
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row
from redemption_core.ledger.store import LedgerTransaction

__all__ = [
    "ImportRefused",
    "ImportReport",
    "RowError",
    "events_to_rows",
    "import_events",
    "open_rows",
    "read_rows",
]

MAX_REPORTED = 1000
LOOKUP_BATCH = 500


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row (the header is row 0)
    field: str
    code: str  # a reason code (docs/reason-codes.md)
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.code}: {self.problem}"


class ImportRefused(InvalidInput):
    """The file had bad rows; nothing was written. `errors` lists them (up to 1000), `total`
    counts the bad rows."""

    def __init__(self, errors: list[RowError], total: int) -> None:
        first = errors[0]
        super().__init__(
            f"row {first.row}.{first.field}",
            f"{first.code}: {first.problem} ({total} bad rows in all)",
        )
        self.errors = errors
        self.total = total


@dataclass
class ImportReport:
    rows: int
    imported: int
    already_present: int
    by_type: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "already_present": self.already_present,
            "by_type": self.by_type,
        }


class _Errors:
    """Bad rows: the first MAX_REPORTED problems in row order, and how many rows were bad."""

    def __init__(self) -> None:
        self.listed: list[RowError] = []
        self.rows = 0

    def add(self, row: int, problems: Iterable[tuple[str, str, str]]) -> None:
        self.rows += 1
        for field_name, code, problem in problems:
            if len(self.listed) >= MAX_REPORTED:
                return
            setting = SETTINGS.get(code)
            if setting is not None:
                problem += f" (a source system that allowed this is described by {setting})"
            self.listed.append(RowError(row, field_name, code, problem))

    def breaches(self, row: int, breaches: list[Breach]) -> None:
        self.add(row, ((b.field, b.code, b.message) for b in breaches))


class _Progress:
    """`import: 1,200,000 of 5,000,000 rows (24%), 61,000 rows/s`: on a terminal one line
    rewritten twice a second, elsewhere (a log) a line every ten seconds, and the last."""

    def __init__(self, stream: TextIO | None, source: RowSource) -> None:
        self._stream = stream
        self._source = source
        self._tty = stream is not None and stream.isatty()
        self._every = 0.5 if self._tty else 10.0
        self._started = self._shown = time.monotonic()

    def update(self, rows: int, *, final: bool = False) -> None:
        if self._stream is None:
            return
        now = time.monotonic()
        if not final and now - self._shown < self._every:
            return
        self._shown = now
        rate = rows / max(now - self._started, 1e-9)
        total = self._source.total
        if total:
            done = f"{rows:,} of {total:,} rows ({rows / total:.0%})"
        else:
            fraction = self._source.done_fraction()
            done = f"{rows:,} rows" + ("" if fraction is None else f" ({fraction:.0%})")
        line = f"import: {done}, {rate:,.0f} rows/s"
        if self._tty:
            self._stream.write(f"\r{line}" + ("\n" if final else ""))
        else:
            self._stream.write(f"{line}\n")
        self._stream.flush()


class _Appended:
    """Which row of the file each event this import appended came from, as runs of
    consecutive rows (a run breaks only at a row not appended), so that a repeated event id
    can name the row it repeats without a map as long as the file."""

    def __init__(self) -> None:
        self._first_seqs: list[int] = []
        self._first_rows: list[int] = []
        self._next: tuple[int, int] | None = None  # (seq, row) that would continue the run

    def chunk_written(self, numbers: list[int], last_seq: int) -> None:
        """The rows appended since the last call, in order, are the events up to last_seq."""
        seq = last_seq - len(numbers) + 1
        for number in numbers:
            if self._next != (seq, number):
                self._first_seqs.append(seq)
                self._first_rows.append(number)
            self._next = (seq + 1, number + 1)
            seq += 1

    def row_of(self, seq: int) -> int:
        run = bisect.bisect_right(self._first_seqs, seq) - 1
        return self._first_rows[run] + (seq - self._first_seqs[run])


def import_events(
    engine: Any,
    rows: Sequence[Mapping[str, Any]] | RowSource,
    *,
    progress: TextIO | None = None,
) -> ImportReport:
    """Check and apply the rows in one transaction; raise ImportRefused (nothing written) if
    any row is refused. `rows`: a RowSource (open_rows) or rows in memory."""
    source = rows if isinstance(rows, RowSource) else in_chunks(rows)
    parser = RowParser(engine.now())
    errors = _Errors()
    by_type: Counter[str] = Counter()
    present = number = 0
    shown = _Progress(progress, source)
    appended = _Appended()
    try:
        with engine.transaction() as tx:
            replay = Replay(tx)
            start_seq = _last_seq(tx)
            for chunk in source.chunks:
                parsed_rows: list[ParsedRow] = []
                for parsed in parser.parse_chunk(chunk, number + 1):
                    if isinstance(parsed, ParsedRow):
                        parsed_rows.append(parsed)
                    else:
                        errors.add(parsed[0], [parsed[1:]])
                number += chunk.size
                stored = _stored_events(tx, [parsed.event.event_id for parsed in parsed_rows])
                in_chunk: dict[str, int] = {}
                numbers: list[int] = []
                for parsed in parsed_rows:
                    event = parsed.event
                    earlier = in_chunk.get(event.event_id)
                    if earlier is None and event.event_id in stored:
                        seq, existing = stored[event.event_id]
                        if seq > start_seq:
                            earlier = appended.row_of(seq)
                        elif _content(existing) == _content(event):
                            present += 1
                            continue
                        else:
                            errors.add(
                                parsed.number,
                                [("event_id", LedgerCode.EVENT_ID_REUSED,
                                  "already in the ledger with other content")],
                            )  # fmt: skip
                            continue
                    if earlier is not None:
                        errors.add(
                            parsed.number,
                            [("event_id", LedgerCode.EVENT_ID_REUSED, f"repeats row {earlier}")],
                        )
                        continue
                    in_chunk[event.event_id] = parsed.number
                    breaches = replay.breaches(parsed)
                    if breaches:
                        errors.breaches(parsed.number, breaches)
                        continue
                    try:
                        tx.append_row(event, parsed.row)
                    except Exception as error:  # the projection refused it: name the row
                        problem = f"cannot be applied: {error}"
                        errors.add(parsed.number, [("row", LedgerCode.CANNOT_APPLY, problem)])
                        continue
                    numbers.append(parsed.number)
                    by_type[event.event_type.value] += 1
                tx.flush()  # this chunk's events are in the table: the next chunk finds them
                if numbers:
                    appended.chunk_written(numbers, _last_seq(tx))
                shown.update(number)
            shown.update(number, final=True)
            if errors.rows:
                raise ImportRefused(errors.listed, errors.rows)
    finally:
        source.close()
    return ImportReport(number, sum(by_type.values()), present, dict(sorted(by_type.items())))


def _last_seq(tx: LedgerTransaction) -> int:
    return tx.query("SELECT coalesce(max(seq), 0) FROM events", ())[0][0]


def _stored_events(tx: LedgerTransaction, event_ids: list[str]) -> dict[str, tuple[int, Event]]:
    """(seq, event) of those of these ids the ledger holds, LOOKUP_BATCH ids per query."""
    found: dict[str, tuple[int, Event]] = {}
    for start in range(0, len(event_ids), LOOKUP_BATCH):
        batch = event_ids[start : start + LOOKUP_BATCH]
        marks = ", ".join("?" * len(batch))
        for row in tx.query(f"{SELECT_EVENT} WHERE event_id IN ({marks})", batch):
            event = event_from_row(row)
            found[event.event_id] = (row[0], event)
    return found


def _content(event: Event) -> tuple[Any, ...]:
    """What makes two rows the same event (recorded_at and seq are the ledger's own)."""
    return (
        event.event_type,
        event.occurred_at,
        *(getattr(event, name) for name in ID_COLUMNS),
        event.channel,
        event.payload,
    )


def events_to_rows(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The ledger rows of these events (for export, and for tests of the import)."""
    rows = []
    for event in events:
        row: dict[str, Any] = {
            name: getattr(event, name)
            for name in COLUMNS
            if name not in ("payload", "occurred_at", "recorded_at", "event_type")
        }
        row.update(
            event_type=str(event.event_type),
            occurred_at=p.iso(event.occurred_at),
            recorded_at=p.iso(event.recorded_at) if event.recorded_at else None,
            payload=orjson.dumps(event.payload).decode(),
        )
        rows.append(row)
    return rows
