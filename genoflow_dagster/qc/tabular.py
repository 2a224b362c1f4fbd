"""Profiling of tabular files (CSV, TSV, XLSX): completeness, uniqueness and validity per column.

Streaming: CSV/TSV through the `csv` module (RFC 4180 quoting), XLSX through
openpyxl in read-only mode (first sheet). Per column, every non-empty value is
tried against each type (integer, float, boolean, ISO date); the column's type is
the most specific one that at least 90% of its values parse as, else string.
- `completeness`: non-empty values / rows;
- `uniqueness`: distinct non-empty values / non-empty values (exact up to
  `DISTINCT_CAP` distinct values per column, a lower bound beyond);
- `validity`: values that parse as the column's type / non-empty values.

`quality_score` (0-100) = 100 x (0.4 x mean completeness + 0.4 x mean validity +
0.2 x share of rows with the header's number of fields). Uniqueness is reported
but not scored: a low-cardinality column is not a defect.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from genoflow_dagster.formats.io import open_decompressed
from genoflow_dagster.formats.tabular import SAM_HEADER_LINE

DISTINCT_CAP = 1_000_000
TYPE_THRESHOLD = 0.9
_TYPES = ("integer", "float", "boolean", "date")
_BOOL = {"true", "false", "yes", "no", "t", "f", "y", "n"}
_MISSING = {"", "na", "n/a", "nan", "null", "none", "."}


def _parses(value: str) -> tuple[bool, bool, bool, bool]:
    v = value.strip()
    is_int = is_float = is_date = False
    try:
        int(v.replace("_", "x"))
        is_int = True
    except ValueError:
        pass
    if is_int:
        is_float = True
    else:
        try:
            float(v)
            is_float = True
        except ValueError:
            pass
    is_bool = v.lower() in _BOOL
    if len(v) >= 8 and v[:4].isdigit():
        try:
            dt.date.fromisoformat(v[:10])
            is_date = True
        except ValueError:
            pass
    return is_int, is_float, is_bool, is_date


class _Column:
    def __init__(self, name: str) -> None:
        self.name = name
        self.nonempty = 0
        self.ok = dict.fromkeys(_TYPES, 0)
        self.distinct: set[int] = set()
        self.capped = False

    def add(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            s = str(value).lower()
        elif isinstance(value, dt.datetime | dt.date):
            s = value.isoformat()
        else:
            s = str(value)
        if s.strip().lower() in _MISSING:
            return
        self.nonempty += 1
        for t, ok in zip(_TYPES, _parses(s), strict=True):
            if ok:
                self.ok[t] += 1
        if len(self.distinct) < DISTINCT_CAP:
            self.distinct.add(hash(s))
        else:
            self.capped = True

    def summary(self, rows: int) -> dict[str, Any]:
        ctype = "string"
        if self.nonempty:
            for t in _TYPES:
                if self.ok[t] / self.nonempty >= TYPE_THRESHOLD:
                    ctype = t
                    break
        valid = self.nonempty if ctype == "string" else self.ok[ctype]
        return {
            "name": self.name,
            "type": ctype if self.nonempty else "empty",
            "completeness": round(self.nonempty / rows, 6) if rows else 0.0,
            "uniqueness": round(len(self.distinct) / self.nonempty, 6) if self.nonempty else 0.0,
            "uniqueness_is_lower_bound": self.capped,
            "validity": round(valid / self.nonempty, 6) if self.nonempty else 1.0,
        }


def _rows(path: str | Path, fmt: str) -> Iterator[Sequence[Any]]:
    if fmt == "xlsx":
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            ws = wb.worksheets[0]
            yield from ws.iter_rows(values_only=True)
        finally:
            wb.close()
        return
    with open_decompressed(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        rows = csv.reader(text, delimiter="\t" if fmt == "tsv" else ",")
        for row in rows:  # GATK's SAM-style preamble is not the header (formats.tabular: TABLE_PREAMBLE)
            if not (row and SAM_HEADER_LINE.match(row[0])):
                yield row
                break
        yield from rows


def tabular_metrics(path: str | Path, format: str) -> dict[str, Any]:
    """Rows, columns, per-column profile and `quality_score` (see module docstring)."""
    fmt = format.lower()
    it = _rows(path, fmt)
    header = next(it, None)
    if header is None:
        return {"rows": 0, "columns": 0, "column_profiles": [], "ragged_rows": 0, "quality_score": 0.0}
    names = [str(h) if h is not None else f"column_{i + 1}" for i, h in enumerate(header)]
    while names and fmt == "xlsx" and header[len(names) - 1] is None:
        names.pop()
    cols = [_Column(n) for n in names]
    rows = ragged = 0
    for row in it:
        if fmt == "xlsx" and all(v is None for v in row):
            continue
        rows += 1
        width = len(row)
        if fmt != "xlsx" and width != len(cols):
            ragged += 1
        for i, col in enumerate(cols):
            if i < width:
                col.add(row[i])
    profiles = [c.summary(rows) for c in cols]
    if profiles and rows:
        comp = sum(p["completeness"] for p in profiles) / len(profiles)
        val = sum(p["validity"] for p in profiles) / len(profiles)
        shape = 1.0 - ragged / rows
        score = round(100.0 * (0.4 * comp + 0.4 * val + 0.2 * shape), 2)
    else:
        score = 0.0 if not rows else 100.0
    return {"rows": rows, "columns": len(cols), "column_profiles": profiles,
            "completeness": {p["name"]: p["completeness"] for p in profiles},
            "uniqueness": {p["name"]: p["uniqueness"] for p in profiles},
            "validity": {p["name"]: p["validity"] for p in profiles},
            "ragged_rows": ragged, "quality_score": score}
