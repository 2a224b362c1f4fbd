"""The result of validating one file: the `validate --json` contract of DESIGN.md.

Validation has two severities, as Picard's VALIDATION_STRINGENCY and
vcf-validator have them. An error (a `FormatError` raised by a validator)
makes the file unusable: it cannot be parsed, or it breaks a rule the
downstream tools depend on. A warning (`warn()`) records a deviation from the
specification that the reference tools read anyway: the file stays valid,
with the warning listed, unless validation runs in strict mode, where the
first warning refuses it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from genoflow_dagster.errors import ErrorCode

# A file can repeat one deviation on every record: the first few of each reason are kept, all are counted.
WARNINGS_KEPT_PER_REASON = 5


def warn(details: dict[str, Any] | None, reason: str, message: str, line: int | None = None) -> None:
    """Record a warning (a deviation the reference tools read anyway) in a validator's `details`."""
    if details is None:
        return
    counts: Counter[str] = details.setdefault("warning_counts", Counter())
    counts[reason] += 1
    if counts[reason] <= WARNINGS_KEPT_PER_REASON:
        details.setdefault("warnings", []).append({"reason": reason, "line": line, "message": message})


def warning_table(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per file and warning reason: {file, reason, line, message, count}, the first occurrence shown.

    `files` are `validate --json` rows (`path`, `warnings`) with the validator's `warning_counts`
    where known (a file can repeat a deviation on every record; only the first few are kept).
    """
    rows: list[dict[str, Any]] = []
    for file in files:
        counts = file.get("warning_counts") or {}
        seen: dict[str, dict[str, Any]] = {}
        for warning in file.get("warnings") or []:
            if warning["reason"] not in seen:
                seen[warning["reason"]] = {"file": file["path"], "reason": warning["reason"], "line": warning["line"],
                                           "message": warning["message"], "count": 0}
                rows.append(seen[warning["reason"]])
            seen[warning["reason"]]["count"] += 1
        for reason, row in seen.items():
            row["count"] = max(row["count"], counts.get(reason, 0))
    return rows


@dataclass
class ValidationResult:
    """Field names and order are a public contract (`genoflow validate --json`)."""

    path: str
    format: str | None
    valid: bool
    error_code: ErrorCode | None = None
    reason: str | None = None
    message: str | None = None
    line: int | None = None
    records: int = 0
    size_bytes: int = 0
    sha256: str | None = None
    # Deviations the reference tools read anyway: {reason, line, message}, the first few of each reason.
    warnings: list[dict[str, Any]] = field(default_factory=list)
    # Not part of the JSON contract: extra facts validators learn on the way
    # (compression, quality encoding, read names for pairing, warning counts, ...).
    details: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("details")
        if self.error_code is not None:
            data["error_code"] = str(self.error_code)
        return data
