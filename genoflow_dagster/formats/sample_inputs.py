"""A sample's inputs as the ingestion stage judges them: refusals before the raw copy, validation rows,
read pairs, the samplesheet row, and the two input gates. Plain Python over `sample_record` records.

The assets in `assets/ingestion.py` only move bytes (list, download, copy, quarantine) and call these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from genoflow_dagster import verdicts
from genoflow_dagster.errors import ErrorCode
from genoflow_dagster.formats import FORMATS
from genoflow_dagster.formats.detect import Detection
from genoflow_dagster.formats.result import ValidationResult
from genoflow_dagster.formats.samplesheet import named_files, rows_for_sample
from genoflow_dagster.sample_record import JsonDict, PairProblem, RawFile, Refusal, ValidatedFile
from genoflow_dagster.samples import ANALYSABLE_FORMATS, ReadGroup, group_reads

# Given two mate files' validation rows, where they part ways (None when they hold the same reads in order).
MateCheck = Callable[[ValidatedFile, ValidatedFile], ValidationResult | None]


def type_refusal(detection: Detection, size: int) -> Refusal | None:
    """The refusal `validate_file` would give a file whose format is not recognised, decided before the raw
    copy. An empty file is left to `validate_file` (EMPTY_FILE comes first there, and costs no copy)."""
    if size == 0 or (detection.error_code is None and detection.format in FORMATS):
        return None
    if detection.error_code is not None:
        return Refusal(str(detection.error_code), detection.reason, detection.message)
    return Refusal(str(ErrorCode.INVALID_FILE_TYPE), "UNKNOWN_FORMAT", "the format could not be recognised")


def refused_row(file: RawFile, mode: str) -> ValidatedFile:
    """The validation row of a file `raw_files` refused (by size, unread, or by type): `validate --json`
    fields, plus where it landed and whether a copy of it sits in quarantine."""
    assert file.refused is not None
    return ValidatedFile(path=file.name, format=file.format, valid=False, error_code=file.refused.error_code,
                         reason=file.refused.reason, message=file.refused.message, line=None, records=0,
                         size_bytes=file.size_bytes, sha256=file.sha256, warnings=[], validation_mode=mode,
                         warning_counts={}, raw_key=None, quality_encoding=None, landing_key=file.landing_key,
                         copied=file.quarantine_key is not None)


def validated_row(result: ValidationResult, file: RawFile, mode: str) -> ValidatedFile:
    """A validator's result as the sample's validation row (named as uploaded, with what later stages use:
    the raw copy, the quality encoding, the read-name digest that settles a pair)."""
    details = result.details
    return ValidatedFile(
        path=file.name, format=result.format, valid=result.valid,
        error_code=None if result.error_code is None else str(result.error_code), reason=result.reason,
        message=result.message, line=result.line, records=result.records, size_bytes=result.size_bytes,
        sha256=result.sha256, warnings=list(result.warnings), validation_mode=mode,
        warning_counts=dict(details.get("warning_counts", {})), raw_key=file.raw_key,
        quality_encoding=details.get("quality_encoding"), read_name_digest=details.get("read_name_digest"),
        samplesheet=details.get("samplesheet"))


def read_pairs(files: Sequence[ValidatedFile], mates_differ: MateCheck
               ) -> tuple[list[ReadGroup], list[str], list[PairProblem]]:
    """Group the valid FASTQs into read pairs and check each pair's mates agree record by record.

    Validation recorded each FASTQ's read-name digest: equal digests settle a pair without reading either
    file again; `mates_differ` (which reads both files) is called only for the pairs they do not settle.
    Returns (groups, names whose mate is missing, problems).
    """
    by_name = {f.path: f for f in files if f.valid and f.format == "fastq"}
    groups, orphans = group_reads(list(by_name))
    problems: list[PairProblem] = []
    for group in groups:
        if group.r2 is None:
            continue
        first, second = by_name[group.r1], by_name[group.r2]
        if first.read_name_digest and first.read_name_digest == second.read_name_digest:
            continue
        mismatch = mates_differ(first, second)
        if mismatch is not None:
            problems.append(PairProblem(group.r1, group.r2, mismatch.reason, mismatch.line,
                                        f"{group.r1} / {group.r2}: {mismatch.message}"))
    return groups, orphans, problems


def samplesheet_row(files: Sequence[ValidatedFile], sample_id: str) -> tuple[JsonDict | None, list[str]]:
    """This sample's samplesheet row, and what keeps it from being satisfied (files it names that are missing
    or invalid). No sheet is fine; a sheet without a row for this sample, or two sheets, is a problem."""
    sheets = [f for f in files if f.samplesheet is not None]
    if not sheets:
        return None, []
    if len(sheets) > 1:
        return None, [f"{len(sheets)} samplesheets uploaded ({', '.join(f.path for f in sheets)}): keep one"]
    sheet = sheets[0]
    rows = rows_for_sample(sheet.samplesheet or [], sample_id)
    if not rows:
        return None, [f"{sheet.path} has no row for sample {sample_id}"]
    row = rows[0]
    by_name = {f.path: f for f in files}
    problems = []
    for name in named_files(row):
        if name not in by_name:
            problems.append(f"{sheet.path} line {row['line']} names {name}, which has not landed")
        elif not by_name[name].valid:
            problems.append(f"{sheet.path} line {row['line']} names {name}, which is quarantined")
    return row, problems


def input_gates(files: Sequence[ValidatedFile], orphans: Sequence[str], pair_problems: Sequence[PairProblem],
                samplesheet_problems: Sequence[str]) -> list[verdicts.GateOutcome]:
    """The two gates of validated_files, decided once (verdicts.py): usable inputs (blocking), all valid."""
    analysable = [f for f in files if f.valid and f.format in ANALYSABLE_FORMATS]
    return [verdicts.usable_inputs(analysable_files=len(analysable), pair_problems=[p.message for p in pair_problems],
                                   orphan_mates=orphans, samplesheet_problems=samplesheet_problems),
            verdicts.all_files_valid([f.to_json() for f in files])]
