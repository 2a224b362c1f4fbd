"""The exception validators raise; `validate_file` turns it into a ValidationResult."""

from __future__ import annotations

from genoflow_dagster.errors import ErrorCode, GenoFlowError


class FormatError(GenoFlowError):
    """A file breaks its format's rules: `reason` is the specific code, `line` 1-based."""

    def __init__(self, reason: str, message: str, line: int | None = None,
                 error_code: ErrorCode = ErrorCode.VALIDATION_ERROR) -> None:
        super().__init__(error_code, reason, message, line)
