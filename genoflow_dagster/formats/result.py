"""The result of validating one file: the `validate --json` contract of DESIGN.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from genoflow_dagster.errors import ErrorCode


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
    # Not part of the JSON contract: extra facts validators learn on the way
    # (compression, quality encoding, read names for pairing, ...).
    details: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("details")
        if self.error_code is not None:
            data["error_code"] = str(self.error_code)
        return data
