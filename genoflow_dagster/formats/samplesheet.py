"""Samplesheets: the table that says which files make up a sample and how to grade it.

A CSV, TSV or XLSX named `samplesheet.<ext>` is checked, after its format's own
rules, against a pandera schema. One row per sample:

| column | required | meaning |
|---|---|---|
| `sample` | yes | the sample ID (1-64 letters, digits, `.`, `_`, `-`, as partition keys; unique in the sheet) |
| `fastq_1`, `fastq_2` | no | the read files (plain file names); `fastq_2` needs `fastq_1` |
| `bam`, `cram`, `vcf` | no | an uploaded alignment or call set (plain file names) |
| `qc_profile` | no | a profile shipped in `qc/profiles/` (`standard`, `strict`, `exome`, `panel`, `amplicon`) |
| `targets` | no | a targets BED uploaded with the sample (plain file name): capture targets or amplicon scheme |

A row must name at least one file. Other columns are kept and ignored. Every
broken field is reported (pandera's lazy validation) with its 1-based line, the
column and the offending value; the first one becomes the result's `line`.
Custom YAML profiles are chosen by run config or environment, not by a sheet:
a sheet comes from outside and must not point the pipeline at a path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from genoflow_dagster import zones
from genoflow_dagster.formats.errors import FormatError

SAMPLESHEET_NAME = re.compile(r"^samplesheet\.(csv|tsv|xlsx)$", re.IGNORECASE)
FILE_COLUMNS = ("fastq_1", "fastq_2", "bam", "cram", "vcf")
KNOWN_COLUMNS = ("sample", *FILE_COLUMNS, "qc_profile", "targets")
# A plain file name: no directory part, no control characters, not '.' or '..'.
FILE_NAME_PATTERN = r"^(?!\.{1,2}$)[^/\\\x00-\x1f\x7f]{1,255}$"
# A samplesheet lists samples, not data: past this size it is not one.
MAX_SAMPLESHEET_BYTES = 16 * 1024 * 1024
MAX_REPORTED_FIELDS = 20
# Table deviations an ordinary table may have (warnings) but a samplesheet may not: the pipeline reads the
# sheet itself, a ragged row stops pandas, and a column of values without a name is a shifted column.
SHEET_ERRORS = ("TABLE_COLUMN_COUNT", "TABLE_BLANK_HEADER")


def is_samplesheet(name: str) -> bool:
    return bool(SAMPLESHEET_NAME.match(Path(name).name))


def validate_samplesheet(path: Path, fmt: str, details: dict) -> int:
    """Check the sheet against the schema; put its rows in `details["samplesheet"]`; return the row count.

    Raises FormatError `SAMPLESHEET_TOO_LARGE`, `SAMPLESHEET_COLUMN_MISSING` or
    `SAMPLESHEET_FIELD_INVALID` (message lists every broken field, line of the first), or the first
    table warning in `SHEET_ERRORS` the format's own validator recorded, as an error.
    """
    for warning in details.get("warnings", []):
        if warning["reason"] in SHEET_ERRORS:
            raise FormatError(warning["reason"], f"{warning['message']} (refused in a samplesheet)", warning["line"])
    if path.stat().st_size > MAX_SAMPLESHEET_BYTES:
        raise FormatError("SAMPLESHEET_TOO_LARGE",
                          f"a samplesheet over {MAX_SAMPLESHEET_BYTES // 1024**2} MiB is not a samplesheet")
    frame, first_line = _read(path, fmt)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    for number, column in enumerate(frame.columns, start=1):
        if column in ("", "nan", "none") and (frame.iloc[:, number - 1].fillna("").astype(str).str.strip() != "").any():
            raise FormatError("TABLE_BLANK_HEADER", f"line {first_line}: column {number} of the samplesheet has no "
                              "header label but holds data", first_line)
    if "sample" not in frame.columns:
        raise FormatError("SAMPLESHEET_COLUMN_MISSING",
                          f"the samplesheet has no 'sample' column (columns: {', '.join(frame.columns)})", first_line)
    for column in KNOWN_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame.fillna("").astype(str).apply(lambda col: col.str.strip())
    frame = frame[(frame != "").any(axis=1)]  # blank rows: layout, not samples (the index keeps line numbers)
    problems = _schema_problems(frame, first_line)
    if problems:
        shown = "; ".join(message for _, message in problems[:MAX_REPORTED_FIELDS])
        more = f" (and {len(problems) - MAX_REPORTED_FIELDS} more)" if len(problems) > MAX_REPORTED_FIELDS else ""
        raise FormatError("SAMPLESHEET_FIELD_INVALID", f"{len(problems)} samplesheet field(s) invalid: {shown}{more}",
                          problems[0][0])
    details["samplesheet"] = [
        {column: row[column] for column in KNOWN_COLUMNS} | {"line": first_line + 1 + int(index)}
        for index, row in frame.iterrows()
    ]
    return len(frame)


def rows_for_sample(samplesheet: list[dict[str, Any]], sample_id: str) -> list[dict[str, Any]]:
    return [row for row in samplesheet if row.get("sample") == sample_id]


def named_files(row: dict[str, Any]) -> list[str]:
    """Every file the row names, the targets BED included: the sample is complete when all have arrived."""
    return [row[column] for column in (*FILE_COLUMNS, "targets") if row.get(column)]


def sheet_profiles() -> tuple[str, ...]:
    """The `qc_profile` values a sheet may name: the profiles shipped in the package (never a path)."""
    from genoflow_dagster.qc.profiles import shipped_profiles

    return shipped_profiles()


def _read(path: Path, fmt: str) -> tuple[Any, int]:
    """The sheet as a frame of strings, and the 1-based line (row) of its header."""
    import pandas as pd

    if fmt == "xlsx":
        raw = pd.read_excel(path, sheet_name=0, header=None, dtype=str, keep_default_na=False)
        filled = raw.apply(lambda row: any(str(v).strip() for v in row), axis=1)
        if not filled.any():
            raise FormatError("SAMPLESHEET_COLUMN_MISSING", "the samplesheet's first sheet is empty", 1)
        header_at = int(filled.to_numpy().argmax())
        frame = raw.iloc[header_at + 1:].reset_index(drop=True)
        frame.columns = list(raw.iloc[header_at])
        return frame, header_at + 1
    delimiter = "\t" if fmt == "tsv" else ","
    frame = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, encoding_errors="replace",
                        skip_blank_lines=False)
    return frame, 1


def _is_sample_id(value: str) -> bool:
    """The partition-key rule (zones.validate_sample_id): a sheet may only name samples the pipeline can run."""
    try:
        zones.validate_sample_id(value)
    except zones.UnsafeKeyError:
        return False
    return True


def _schema_problems(frame: Any, header_line: int) -> list[tuple[int, str]]:
    import pandera.pandas as pa

    def line_of(index: Any) -> int:
        return header_line + 1 + int(index)

    profiles = sheet_profiles()
    optional_file = pa.Column(str, checks=pa.Check(lambda s: (s == "") | s.str.match(FILE_NAME_PATTERN),
                                                    error="a plain file name (no '/', '\\' or control characters)"))
    schema = pa.DataFrameSchema(
        {
            "sample": pa.Column(str, unique=True, report_duplicates="exclude_first",
                                checks=pa.Check(_is_sample_id, element_wise=True,
                                                error=f"a sample ID of 1-{zones.MAX_SAMPLE_ID_LENGTH} letters, "
                                                "digits, '.', '_', '-'")),
            **{column: optional_file for column in (*FILE_COLUMNS, "targets")},
            "qc_profile": pa.Column(str, checks=pa.Check.isin(["", *profiles],
                                                               error=f"empty or one of {', '.join(profiles)}")),
        },
        checks=[
            pa.Check(lambda df: (df[list(FILE_COLUMNS)] != "").any(axis=1), error="a row names at least one file"),
            pa.Check(lambda df: (df["fastq_2"] == "") | (df["fastq_1"] != ""), error="fastq_2 needs fastq_1"),
        ],
    )
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        problems: list[tuple[int, str]] = []
        seen: set[tuple[int, str]] = set()
        for case in exc.failure_cases.to_dict("records"):
            index = case.get("index")
            if index is None or index != index:  # NaN: a column-level failure
                continue
            line = line_of(index)
            check = str(case.get("check") or "")
            check = "unique in the sheet" if check == "field_uniqueness" else check
            if case.get("schema_context") == "DataFrameSchema":  # a row rule: one message per row
                if (line, check) not in seen:
                    seen.add((line, check))
                    problems.append((line, f"line {line}: {check}"))
                continue
            column = str(case.get("column"))
            value = frame.loc[index, column]
            problems.append((line, f"line {line}, column {column}: '{value}' must be {check}"))
        problems.sort(key=lambda p: p[0])
        return problems
    return []
