"""Stable error classes shared by validators, the CLI and the assets.

`error_code` is the coarse class from DESIGN.md; every rejection also carries a
specific upper-case `reason` (catalogued in docs/ERROR_CODES.md).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_FILE_TYPE = "INVALID_FILE_TYPE"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    EMPTY_FILE = "EMPTY_FILE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    STORAGE_ERROR = "STORAGE_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class GenoFlowError(Exception):
    """An error with a stable code, a specific reason and, where it applies, a 1-based line."""

    def __init__(
        self,
        error_code: ErrorCode,
        reason: str,
        message: str,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.reason = reason
        self.message = message
        self.line = line


class StorageError(GenoFlowError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(ErrorCode.STORAGE_ERROR, reason, message)
