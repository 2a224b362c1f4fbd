"""CSV, TSV (UTF-8, RFC 4180 quoting, one column count) and XLSX (a safe Office Open XML workbook)."""

from __future__ import annotations

import codecs
import csv
import re
import zipfile
from pathlib import Path
from typing import BinaryIO

from genoflow_dagster.errors import ErrorCode
from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.io import ZIP_ERRORS

XLSX_MAX_UNCOMPRESSED = 1024**3  # 1 GiB across all parts
XLSX_MAX_RATIO = 200  # deflate rarely beats ~100:1 on real sheets; bombs reach 1000:1 and more
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def validate_delimited(stream: BinaryIO, delimiter: str, details: dict) -> int:
    """Rows after the header; all rows have the header's number of columns."""
    reader_stream = codecs.getreader("utf-8")(stream, errors="strict")
    text = _LineCounter(reader_stream)
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', strict=True)
    width = None
    rows = 0
    try:
        for row in reader:
            if not row or row == [""]:
                continue
            if width is None:
                width = len(row)
                continue
            if len(row) != width:
                raise FormatError("TABLE_COLUMN_COUNT",
                                  f"line {reader.line_num}: {len(row)} columns where the header has {width}",
                                  reader.line_num)
            rows += 1
    except UnicodeDecodeError as exc:
        raise FormatError("TABLE_ENCODING", f"line {text.line + 1}: not UTF-8 ({exc.reason})", text.line + 1) from None
    except csv.Error as exc:
        raise FormatError("TABLE_QUOTING", f"line {reader.line_num}: {exc}", reader.line_num) from None
    if width is None:
        raise FormatError("TABLE_NO_HEADER", "the table has no header row", 1, ErrorCode.EMPTY_FILE)
    details["columns"] = width
    return rows


class _LineCounter:
    def __init__(self, reader: codecs.StreamReader) -> None:
        self._reader = reader
        self.line = 0

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        line = self._reader.readline()
        if not line:
            raise StopIteration
        self.line += 1
        return line


def validate_xlsx(path: Path, details: dict) -> int:
    """Structure, bomb and XXE checks on the archive before openpyxl reads a single row."""
    try:
        return _validate_xlsx(path, details)
    except ZIP_ERRORS as exc:
        raise FormatError("XLSX_CORRUPT", f"the workbook archive is damaged: {exc}") from None


def _validate_xlsx(path: Path, details: dict) -> int:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise FormatError("XLSX_NOT_ZIP", "the workbook is not a readable zip archive", None,
                          ErrorCode.INVALID_FILE_TYPE) from None
    with archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        for required in ("[Content_Types].xml", "xl/workbook.xml"):
            if required not in names:
                raise FormatError("XLSX_PART_MISSING", f"the workbook lacks {required}", None,
                                  ErrorCode.INVALID_FILE_TYPE)
        total = sum(info.file_size for info in infos)
        packed = max(1, sum(info.compress_size for info in infos))
        if total > XLSX_MAX_UNCOMPRESSED or total / packed > XLSX_MAX_RATIO:
            raise FormatError("ZIP_BOMB", f"the workbook expands to {total:,} bytes ({total / packed:.0f}:1): "
                              "refused as a decompression bomb")
        for info in infos:
            if info.filename.endswith((".xml", ".rels")):
                with archive.open(info) as part:
                    head = part.read(64 * 1024)
                if _DOCTYPE.search(head):
                    raise FormatError("XML_DOCTYPE_FORBIDDEN", f"{info.filename} declares a DOCTYPE or entity; "
                                      "refused (XML external entity risk)")
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged parts
        raise FormatError("XLSX_UNREADABLE", f"the workbook cannot be read: {exc}") from None
    rows = 0
    try:
        for sheet in workbook.worksheets:
            for _ in sheet.iter_rows(values_only=True):
                rows += 1
        details["sheets"] = len(workbook.worksheets)
    finally:
        workbook.close()
    return rows
