"""`validate_file`: one entry point for every format. Never raises; always returns a result with a code.

The file is read once: a hashing reader computes the SHA-256 of the bytes as
stored while the (decompressed) content streams through the format's validator.
Decompression is capped: past `BOMB_MIN_BYTES` of output at a ratio above
`BOMB_MAX_RATIO`, the file is refused as a decompression bomb. Lines are
capped too (`MAX_LINE_BYTES`, more for FASTA, whose sequences may be
unwrapped): a file without newlines cannot make a validator buffer gigabytes.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import itertools
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from genoflow_dagster.errors import ErrorCode
from genoflow_dagster.formats import FORMATS
from genoflow_dagster.formats.alignment import validate_bam_or_cram, validate_sam
from genoflow_dagster.formats.bed import validate_bed
from genoflow_dagster.formats.detect import COMPRESSIBLE, Detection, detect_format, is_bcf
from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.fasta import validate_fasta
from genoflow_dagster.formats.fastq import read_names, validate_fastq
from genoflow_dagster.formats.gff import validate_gff3, validate_gtf
from genoflow_dagster.formats.io import DECOMPRESSION_ERRORS, _gzip_impl, sha256_file
from genoflow_dagster.formats.messages import library_error
from genoflow_dagster.formats.result import ValidationResult
from genoflow_dagster.formats.samplesheet import is_samplesheet, validate_samplesheet
from genoflow_dagster.formats.tabular import validate_delimited, validate_xlsx
from genoflow_dagster.formats.vcf import validate_bcf, validate_vcf
from genoflow_dagster.progress import ProgressCallback

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

DEFAULT_MAX_BYTES = 5 * 1024**3
BOMB_MIN_BYTES = 256 * 1024**2
BOMB_MAX_RATIO = 200
CHUNK = 4 * 1024 * 1024
COMPRESSIONS = ("gzip", "bgzf", "bzip2")
# The compressed side is read in small pieces so the ratio is judged on what the
# decompressor really consumed (a 4 MiB read-ahead would allow 800 MiB of output).
COMPRESSED_CHUNK = 128 * 1024
MAX_LINE_BYTES = 64 * 1024**2  # ultra-long reads (a few Mb) in SAM/FASTQ fit many times over
MAX_LINE_BYTES_BY_FORMAT = {"fasta": 1024**3}  # an unwrapped plant chromosome is one line

TEXT_VALIDATORS: dict[str, Callable[[BinaryIO, dict], int]] = {
    "fastq": validate_fastq,
    "fasta": validate_fasta,
    "sam": validate_sam,
    "vcf": validate_vcf,
    "bed": validate_bed,
    "gff": validate_gff3,
    "gtf": validate_gtf,
    "csv": lambda stream, details: validate_delimited(stream, ",", details),
    "tsv": lambda stream, details: validate_delimited(stream, "\t", details),
}


class _UnbufferedFile(Protocol):
    """The stored file as `_HashingReader` reads it: `open(path, "rb", buffering=0)`."""

    def readinto(self, buffer: WriteableBuffer, /) -> int | None: ...


class _Decompressor(Protocol):
    """A gzip (isal or standard library) or bzip2 reader over the compressed bytes, as `_CappedReader` reads it."""

    def read(self, size: int, /) -> bytes: ...


class _HashingReader(io.RawIOBase):
    """Reads a file, hashing every byte that passes, and counting them (reported to `progress`, if any, as
    the position in the file as stored: the compressed offset of a gzip file)."""

    def __init__(self, raw: _UnbufferedFile, progress: ProgressCallback | None = None) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.consumed = 0
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = self._raw.readinto(buffer)
        if n:
            view = memoryview(buffer)[:n]
            self.digest.update(view)
            self.consumed += n
            if self.progress is not None:
                self.progress(self.consumed, None)
        return n or 0

    def drain(self) -> None:
        """Read (and hash) whatever the validator left unread, so the digest covers the whole file."""
        buffer = bytearray(CHUNK)
        while self.readinto(buffer):
            pass


class _CappedReader(io.RawIOBase):
    """Decompressed stream that refuses to grow past the bomb limits."""

    def __init__(self, inner: _Decompressor, source: _HashingReader) -> None:
        self._inner = inner
        self._source = source
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        with memoryview(buffer) as view:
            data = self._inner.read(len(view))
            n = len(data)
            view[:n] = data
        self.produced += n
        if self.produced > BOMB_MIN_BYTES and self.produced > BOMB_MAX_RATIO * max(1, self._source.consumed):
            raise FormatError("DECOMPRESSION_BOMB",
                              f"the compressed file expands more than {BOMB_MAX_RATIO}:1 "
                              f"({self.produced:,} bytes from {self._source.consumed:,}): refused as a bomb")
        return n


class _LineCappedReader(io.RawIOBase):
    """Passes bytes through, refusing a line longer than `limit`.

    Only the ends of each read are looked at (a window at each end, the whole
    read only when the window holds no line break), so the check costs almost
    nothing. Lines inside one read are at most a read long, and reads are
    bounded (validators ask for a few MiB), so the memory a line can take is
    bounded either way. The position is reported as a byte offset: counting
    lines would cost more than the rest of the check.
    """

    WINDOW = 4096

    def __init__(self, inner: io.RawIOBase, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._since_newline = 0
        self._offset = 0  # bytes passed before the current read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = self._inner.readinto(buffer) or 0
        if n:
            view = memoryview(buffer)[:n]
            tail = view[-self.WINDOW:].tobytes()
            last = tail.rfind(b"\n")
            if last >= 0:
                last += n - len(tail)
            elif n > len(tail):
                last = view.tobytes().rfind(b"\n")
            if last < 0:
                self._since_newline += n
            else:
                if self._since_newline:
                    first = view[: self.WINDOW].tobytes().find(b"\n")
                    if first < 0:
                        first = view.tobytes().find(b"\n")
                    if self._since_newline + first > self._limit:
                        self._raise(self._offset - self._since_newline)
                self._since_newline = n - last - 1
            if self._since_newline > self._limit:
                self._raise(self._offset + n - self._since_newline)
            self._offset += n
        return n

    def _raise(self, start: int) -> None:
        raise FormatError("LINE_TOO_LONG", f"the line starting at byte {start:,} is longer than {self._limit:,} "
                          "bytes without a line break: not a text file of this format")


def validate_file(path: str | Path, format: str | None = None, *, name: str | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES, reference_fasta: str | None = None,
                  strict: bool = False, progress: ProgressCallback | None = None) -> ValidationResult:
    """Validate one file. `format` forces the format; otherwise it is detected (content, then name).

    `progress`, if given, is called as the file is read with (bytes of the stored file read, records so
    far or None); see genoflow_dagster.progress.

    Warnings (deviations the reference tools read anyway) leave the file valid and are listed in
    `warnings`; with `strict`, the first warning refuses the file (VALIDATION_ERROR with its reason).
    """
    path = Path(path)
    result = ValidationResult(path=str(path), format=format, valid=False)
    try:
        info = os.lstat(path)
    except OSError as exc:
        return _fail(result, ErrorCode.STORAGE_ERROR, "FILE_UNREADABLE", f"cannot read {path}: {exc.strerror}")
    if stat.S_ISLNK(info.st_mode):
        return _fail(result, ErrorCode.STORAGE_ERROR, "SYMLINK_REFUSED", "symbolic links are not followed")
    if not stat.S_ISREG(info.st_mode):
        return _fail(result, ErrorCode.STORAGE_ERROR, "NOT_A_FILE", f"{path} is not a regular file")
    result.size_bytes = info.st_size
    if info.st_size > max_bytes:  # refused unread: an oversized upload is never hashed or scanned
        return _fail(result, ErrorCode.FILE_TOO_LARGE, "FILE_TOO_LARGE",
                     f"the file is {info.st_size:,} bytes; the limit is {max_bytes:,}")
    _validate_regular_file(path, format, name, reference_fasta, result, progress)
    result.warnings = list(result.details.get("warnings", []))
    if strict and result.valid and result.warnings:
        first = result.warnings[0]
        total = sum(result.details.get("warning_counts", {}).values())
        _fail(result, ErrorCode.VALIDATION_ERROR, first["reason"],
              f"strict mode refuses warnings ({total:,} in this file); the first: {first['message']}", first["line"])
    if result.sha256 is None:  # rejected before (or while) streaming: checksum the stored bytes for quarantine
        result.sha256 = _safe_sha(path)
    return result


def _validate_regular_file(path: Path, format: str | None, name: str | None, reference_fasta: str | None,
                           result: ValidationResult, progress: ProgressCallback | None = None) -> None:
    """Fill `result` for a readable regular file within the size limit. Never raises."""
    if result.size_bytes == 0:
        _fail(result, ErrorCode.EMPTY_FILE, "EMPTY_FILE", "the file is empty (0 bytes)")
        return
    try:
        detection = detect_format(path, name)
        fmt = format or detection.format
        result.format = fmt
        result.details["compression"] = detection.compression
        if format is None and detection.error_code is not None:
            _fail(result, detection.error_code, detection.reason, detection.message)
        elif fmt not in FORMATS:
            _fail(result, ErrorCode.INVALID_FILE_TYPE, "UNKNOWN_FORMAT", "the format could not be recognised")
        elif format is not None and detection.format not in (None, format) and not _compatible(format, detection):
            _fail(result, ErrorCode.INVALID_FILE_TYPE, "FORMAT_CONTENT_MISMATCH",
                  f"asked to validate as {format} but the content is {detection.format}")
        else:
            result.records = _run(path, fmt, detection, result, reference_fasta, progress)
            if fmt in ("csv", "tsv", "xlsx") and is_samplesheet(name or path.name):
                validate_samplesheet(path, fmt, result.details)
            result.valid = True
    except FormatError as exc:
        _fail(result, exc.error_code, exc.reason, exc.message, exc.line)
    except DECOMPRESSION_ERRORS as exc:
        if isinstance(exc, EOFError):
            code = "GZIP_TRUNCATED"
        elif not isinstance(exc, OSError) or "gzip" in str(exc).lower() or "deflate" in str(exc).lower():
            code = "GZIP_CORRUPT"
        else:
            code = "READ_ERROR"
        problem = exc.strerror if code == "READ_ERROR" and isinstance(exc, OSError) and exc.strerror else \
            library_error(exc)
        _fail(result, ErrorCode.VALIDATION_ERROR, code, f"the file cannot be read to its end: {problem}")
    except Exception as exc:  # never crash the caller: the file is quarantined with the error text
        _fail(result, ErrorCode.INTERNAL_ERROR, "INTERNAL_ERROR", f"validation stopped on an internal error "
              f"({type(exc).__name__}: {library_error(exc)}); the file is kept for a developer to look at")



def _compatible(forced: str, detection: Detection) -> bool:
    return {forced, detection.format} <= {"gff", "gtf"} or {forced, detection.format} <= {"csv", "tsv"}


def _run(path: Path, fmt: str, detection: Detection, result: ValidationResult, reference_fasta: str | None,
         progress: ProgressCallback | None = None) -> int:
    if fmt in ("bam", "cram"):
        result.sha256 = sha256_file(path)
        records = validate_bam_or_cram(path, fmt, reference_fasta=reference_fasta, details=result.details,
                                       progress=progress)
        if progress is not None:
            progress(result.size_bytes or 0, records)
        return records
    if fmt == "xlsx":
        result.sha256 = sha256_file(path)
        return validate_xlsx(path, result.details)
    if fmt == "vcf" and detection.compression in ("none", "bgzf") and is_bcf(path):  # BCF: through htslib
        result.sha256 = sha256_file(path)
        return validate_bcf(path, result.details)
    if detection.compression in COMPRESSIONS and fmt not in COMPRESSIBLE:
        raise FormatError("COMPRESSION_NOT_ALLOWED", f"{fmt} files cannot be gzip-compressed", None,
                          ErrorCode.INVALID_FILE_TYPE)
    with open(path, "rb", buffering=0) as raw:
        hashing = _HashingReader(raw, progress if fmt != "fastq" else None)
        source: io.RawIOBase = hashing
        inflating: _CappedReader | None = None  # the decompressed side of a compressed file
        if detection.compression in COMPRESSIONS:
            compressed = io.BufferedReader(hashing, COMPRESSED_CHUNK)
            decompressed = bz2.BZ2File(compressed, "rb") if detection.compression == "bzip2" else \
                _gzip_impl.GzipFile(fileobj=compressed, mode="rb")
            source = inflating = _CappedReader(decompressed, hashing)
        capped = _LineCappedReader(source, MAX_LINE_BYTES_BY_FORMAT.get(fmt, MAX_LINE_BYTES))
        stream = io.BufferedReader(capped, CHUNK)
        if fmt == "fastq" and progress is not None:  # the FASTQ validator counts records between its blocks
            report = progress
            records = validate_fastq(stream, result.details,
                                     progress=lambda done: report(hashing.consumed, done))
        else:
            records = TEXT_VALIDATORS[fmt](stream, result.details)
        if inflating is not None:
            stream.read()  # the validator may stop early at EOF markers; read to the end of the gzip stream
            if inflating.produced == 0:
                raise FormatError("EMPTY_AFTER_DECOMPRESSION", "the compressed file holds no data", None,
                                  ErrorCode.EMPTY_FILE)
        hashing.drain()
        result.sha256 = hashing.digest.hexdigest()
        if progress is not None:
            progress(hashing.consumed, records)
    if records == 0 and fmt in ("fastq", "sam", "vcf"):
        result.details["no_records"] = True
    return records


def _safe_sha(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _fail(result: ValidationResult, code: ErrorCode, reason: str | None, message: str | None,
          line: int | None = None) -> ValidationResult:
    result.valid = False
    result.error_code = code
    result.reason = reason
    result.message = message
    result.line = line
    return result


def validate_fastq_pair(r1: str | Path, r2: str | Path, *, r1_digest: str | None = None,
                        r2_digest: str | None = None) -> ValidationResult | None:
    """None when R1 and R2 hold the same reads in the same order; otherwise a result for R2.

    With the `read_name_digest`s validation recorded for both files, equal digests settle it without
    reading either file again; the files are only parsed name by name to locate a difference.
    """
    if r1_digest is not None and r1_digest == r2_digest:
        return None
    from genoflow_dagster.formats.io import open_decompressed

    with open_decompressed(r1) as s1, open_decompressed(r2) as s2:
        n1 = n2 = 0
        first_unpaired_line = None
        for first, second in itertools.zip_longest(read_names(s1), read_names(s2)):
            n1 += first is not None
            n2 += second is not None
            if first is None or second is None:
                if first_unpaired_line is None:
                    first_unpaired_line = second[0] if second else None
                continue
            if first[1] != second[1]:
                result = ValidationResult(path=str(r2), format="fastq", valid=False)
                return _fail(result, ErrorCode.VALIDATION_ERROR, "FASTQ_PAIR_NAME_MISMATCH",
                             f"read {n2:,} is {second[1].decode(errors='replace')} in R2 but "
                             f"{first[1].decode(errors='replace')} in R1", second[0])
        if n1 != n2:
            result = ValidationResult(path=str(r2), format="fastq", valid=False)
            return _fail(result, ErrorCode.VALIDATION_ERROR, "FASTQ_PAIR_COUNT_MISMATCH",
                         f"R1 has {n1:,} reads and R2 has {n2:,}: the mates do not pair up", first_unpaired_line)
    return None
