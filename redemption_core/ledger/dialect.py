"""The few places where SQLite's and PostgreSQL's SQL differ, named once.

Everything the projection, the engine and the reports ask the ledger is written once, in
SQL both databases take, with `?` and `:name` parameters (DB-API's qmark and named styles,
as sqlite3 takes them). What has no common spelling goes through a Dialect: date
arithmetic, zero-padded numbers, a JSON attribute compared with a value, and the JSON
array of a rejection's reasons. PostgreSQL's adapter rewrites the parameters to psycopg's
`%s` / `%(name)s` once per statement text (`to_pyformat`, cached).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" or "postgresql"

    def days_between(self, later: str, earlier: str) -> str:
        """Fractional days from `earlier` to `later`, two ISO-8601 UTC text expressions."""
        if self.name == "sqlite":
            return f"(julianday({later}) - julianday({earlier}))"
        return (
            f"(EXTRACT(EPOCH FROM (CAST({later} AS timestamptz)"
            f" - CAST({earlier} AS timestamptz))) / 86400.0)"
        )

    def zero_padded(self, number: str, width: int) -> str:
        """A non-negative integer expression as text of `width` digits (sorts as text)."""
        if self.name == "sqlite":
            return f"printf('%0{width}d', {number})"
        return f"lpad(CAST({number} AS text), {width}, '0')"

    def json_attribute(self, document: str, parameter: str) -> str:
        """A top-level member of a JSON text column, comparable with `json_value`'s output.

        SQLite's json_extract gives SQL values (numbers, text, 1/0 for booleans, NULL for a
        JSON null); PostgreSQL compares jsonb with jsonb (a JSON null counts as missing, as in
        SQLite)."""
        if self.name == "sqlite":
            return f"json_extract({document}, :{parameter})"
        return f"NULLIF(CAST({document} AS jsonb) -> :{parameter}, 'null'::jsonb)"

    def json_value(self, parameter: str) -> str:
        """The placeholder of a value compared with `json_attribute`."""
        return f":{parameter}" if self.name == "sqlite" else f"CAST(:{parameter} AS jsonb)"

    def attribute_path(self, name: str) -> str:
        """The parameter naming attribute `name` for `json_attribute`."""
        return f'$."{name}"' if self.name == "sqlite" else name

    def attribute_value(self, value: Any) -> Any:
        """A segment condition's value as `json_value` binds it."""
        if self.name == "sqlite":
            return int(value) if isinstance(value, bool) else value
        return json.dumps(value)

    def rejection_reason_counts(self) -> str:
        """Reason code → count over every redemption_rejected event's `reasons` array."""
        if self.name == "sqlite":
            return (
                "SELECT json_extract(r.value, '$.code'), count(*) FROM events,"
                " json_each(events.payload, '$.reasons') AS r"
                " WHERE event_type = 'redemption_rejected' GROUP BY 1 ORDER BY 2 DESC, 1"
            )
        return (
            "SELECT r ->> 'code', count(*) FROM events,"
            " json_array_elements(CAST(events.payload AS json) -> 'reasons') AS r"
            " WHERE event_type = 'redemption_rejected' GROUP BY 1 ORDER BY 2 DESC, 1"
        )


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


@lru_cache(maxsize=4096)
def to_pyformat(sql: str) -> str:
    """`?` → `%s`, `:name` → `%(name)s`, `%` → `%%`; quoted text and `::` casts untouched."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in ("'", '"'):
            end = sql.find(char, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == char:  # doubled quote
                end = sql.find(char, end + 2)
            end = n - 1 if end == -1 else end
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif char == "?":
            out.append("%s")
            i += 1
        elif char == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")
            i += 2
        elif char == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            out.append(f"%({sql[i + 1 : j]})s")
            i = j
        elif char == "%":
            out.append("%%")
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
