"""CSV, TSV (UTF-8, RFC 4180 quoting; what readers take anyway is a warning) and XLSX (a safe OOXML workbook)."""

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
from genoflow_dagster.formats.messages import library_error
from genoflow_dagster.formats.result import warn

XLSX_MAX_UNCOMPRESSED = 1024**3  # 1 GiB across all parts
XLSX_MAX_RATIO = 200  # deflate rarely beats ~100:1 on real sheets; bombs reach 1000:1 and more
XLSX_MAX_TEXT = 1024**3  # characters of cell text, shared strings counted at every use
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
# A schema or stylesheet that pulls in another document by URL (XSD import/include/redefine, XInclude).
_EXTERNAL = re.compile(rb"""(schemaLocation|xi:include[^>]*href)\s*=\s*["']\s*[A-Za-z][A-Za-z0-9+.-]*:""",
                       re.IGNORECASE)
_SCAN_CHUNK = 1024 * 1024


def validate_delimited(stream: BinaryIO, delimiter: str, details: dict) -> int:
    """Rows after the header. The delimiter is sniffed from the first lines when the expected one does not
    split them (a `.csv` export that is really tab- or semicolon-separated); text is UTF-8 (a BOM is fine),
    and bytes that are not UTF-8 are read as Latin-1, noted in the details (spreadsheet exports often are).

    Errors: quoting that RFC 4180 section 2 does not allow (`TABLE_QUOTING`), no header (`TABLE_NO_HEADER`).
    Warnings, as pandas, polars and Python's csv read these files anyway: a row with another number of fields
    than the header (RFC 4180 section 2.4 says "should"), a blank row and a column that holds data under a
    blank header label (frictionless' blank-row and blank-label; not RFC 4180 rules), SAM-style `@` lines before
    the header (GATK's tables). A blank first label is the row-name column R's write.csv and pandas' to_csv
    write: not a deviation. A samplesheet turns some of these into errors (samplesheet.py).
    """
    delimiter = _sniff_delimiter(stream, delimiter)
    details["delimiter"] = delimiter
    fallback = _Latin1Fallback()
    reader_stream = codecs.getreader("utf-8-sig")(stream, fallback.name)  # (errors: positional in typeshed)
    text = _LineCounter(reader_stream)
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', strict=True)
    width = None
    header_line = 0
    unlabeled: list[int] = []  # columns after the first whose header label is blank
    rows = 0
    blank_at = None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                if len(row) > 1:  # ",,": a row of empty cells, not just a stray line break
                    warn(details, "TABLE_BLANK_ROW", f"line {reader.line_num}: a row with every cell empty",
                         reader.line_num)
                else:
                    blank_at = blank_at or reader.line_num
                continue
            if blank_at is not None:  # blank lines at the end are a trailing line break, not a blank row
                warn(details, "TABLE_BLANK_ROW", f"line {blank_at}: a blank row inside the table", blank_at)
                blank_at = None
            if width is None:
                if SAM_HEADER_LINE.match(row[0]):
                    warn(details, "TABLE_PREAMBLE", f"line {reader.line_num}: a SAM-style header line ({row[0]}) "
                         "before the column header; read as a preamble, as GATK writes it", reader.line_num)
                    continue
                width = len(row)
                header_line = reader.line_num
                details["header_line"] = header_line
                unlabeled = [i for i, label in enumerate(row) if i > 0 and not label.strip()]
                if row and not row[0].strip():
                    details["blank_first_label"] = True
                continue
            if len(row) != width:
                warn(details, "TABLE_COLUMN_COUNT",
                     f"line {reader.line_num}: {len(row)} field{'s' if len(row) != 1 else ''} where the header has "
                     f"{width}", reader.line_num)
            if unlabeled:
                for i in [i for i in unlabeled if i < len(row) and row[i].strip()]:
                    warn(details, "TABLE_BLANK_HEADER", f"line {header_line}: column {i + 1} has no header label "
                         f"but holds data (first at line {reader.line_num})", header_line)
                    unlabeled.remove(i)
            rows += 1
    except csv.Error as exc:
        raise FormatError("TABLE_QUOTING", f"line {reader.line_num}: {_quoting_problem(exc)}",
                          reader.line_num) from None
    if width is None:
        raise FormatError("TABLE_NO_HEADER", "the table has no header row", 1, ErrorCode.EMPTY_FILE)
    details["columns"] = width
    details["encoding"] = "latin-1" if fallback.used else "utf-8"
    return rows


# GATK writes its tables (CollectReadCounts, ModelSegments, ...) after a SAM header: @HD, @SQ, @RG, @PG, @CO.
SAM_HEADER_LINE = re.compile(r"^@(HD|SQ|RG|PG|CO)$")


def _quoting_problem(exc: csv.Error) -> str:
    """Python's csv messages in the words of RFC 4180 section 2 (they quote characters the Python way)."""
    text = str(exc)
    if "expected after" in text:
        return "text follows a closing double quote before the next delimiter (RFC 4180 section 2.7)"
    if "unexpected end of data" in text:
        return "a quoted field is not closed before the end of the file (RFC 4180 section 2.6)"
    if "NUL" in text:
        return "the line holds a NUL byte: not text"
    if "field larger than field limit" in text:
        return f"a field is longer than {csv.field_size_limit():,} characters"
    if "new-line character seen in unquoted field" in text:
        return "a carriage return inside an unquoted field (RFC 4180 section 2.6: such fields must be quoted)"
    return text


_DELIMITERS = (",", "\t", ";", "|")


def _sniff_delimiter(stream: BinaryIO, expected: str) -> str:
    """`expected` if it splits the first lines into a steady number (> 1) of columns; else the candidate
    that does, with the most columns; else `expected` (a one-column table)."""
    peek = getattr(stream, "peek", None)
    head = peek(64 * 1024)[: 64 * 1024] if peek else b""
    lines = head.decode("utf-8", errors="replace").splitlines()[:-1][:50]
    if not lines:
        return expected

    def widths(delimiter: str) -> set[int]:
        try:
            return {len(row) for row in csv.reader(lines, delimiter=delimiter) if any(row)}
        except csv.Error:
            return set()

    found = {d: widths(d) for d in _DELIMITERS}
    if len(found[expected]) == 1 and min(found[expected]) > 1:
        return expected
    steady = [(min(w), d) for d, w in found.items() if len(w) == 1 and min(w) > 1]
    return max(steady)[1] if steady else expected


class _Latin1Fallback:
    """A codec error handler that reads undecodable bytes as Latin-1 and remembers it did."""

    def __init__(self) -> None:
        self.used = False
        self.name = f"genoflow-latin1-{id(self)}"
        codecs.register_error(self.name, self._handle)

    def _handle(self, error: UnicodeError) -> tuple[str, int]:
        assert isinstance(error, UnicodeDecodeError)
        self.used = True
        return error.object[error.start:error.end].decode("latin-1"), error.end


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


def _check_entry_names(infos: list[zipfile.ZipInfo]) -> None:
    """Part names are case-insensitive in OPC: two entries that differ only by case are ambiguous."""
    seen: dict[str, str] = {}
    for info in infos:
        folded = info.filename.casefold()
        if folded in seen:
            raise FormatError("ZIP_DUPLICATE_ENTRY", f"the archive holds both {seen[folded]} and {info.filename}: "
                              "part names may not differ only by case", None, ErrorCode.INVALID_FILE_TYPE)
        seen[folded] = info.filename


def _check_xml_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Stream one XML part: no DOCTYPE/ENTITY anywhere, no schema pulled in by URL, and (except the large
    worksheet parts, which the reader parses anyway) well-formed."""
    from xml.etree.ElementTree import ParseError, XMLPullParser

    check_syntax = not info.filename.startswith("xl/worksheets/")
    parser: XMLPullParser | None = XMLPullParser() if check_syntax else None
    tail = b""
    with archive.open(info) as part:
        while chunk := part.read(_SCAN_CHUNK):
            window = tail + chunk
            if _DOCTYPE.search(window):
                raise FormatError("XML_DOCTYPE_FORBIDDEN", f"{info.filename} declares a DOCTYPE or entity; "
                                  "refused (XML external entity risk)")
            if _EXTERNAL.search(window):
                raise FormatError("XML_EXTERNAL_REFERENCE", f"{info.filename} refers to an external document by "
                                  "URL; refused (XML external entity risk)")
            tail = window[-256:]
            if parser is not None:
                try:
                    parser.feed(chunk)
                    for _ in parser.read_events():
                        pass
                except ParseError as exc:
                    raise FormatError("XLSX_XML_MALFORMED", f"{info.filename} is not well-formed XML "
                                      f"({library_error(exc)})") from None
    if parser is not None:
        try:
            parser.close()
        except ParseError as exc:
            raise FormatError("XLSX_XML_MALFORMED", f"{info.filename} is not well-formed XML "
                              f"({library_error(exc)})") from None


def _check_shared_string_expansion(archive: zipfile.ZipFile, names: set[str]) -> None:
    """A cell of type "s" shows shared string number v: a 1 MB string named by 12,000 cells is 12 GB of
    text to any reader. Sum what the cells would show, streaming, and refuse past XLSX_MAX_TEXT."""
    from array import array
    from xml.etree.ElementTree import iterparse

    if "xl/sharedStrings.xml" not in names:
        return
    lengths = array("q")
    with archive.open("xl/sharedStrings.xml") as part:
        for _, element in iterparse(part, events=("end",)):
            if element.tag.endswith("}si") or element.tag == "si":
                lengths.append(sum(len(t) for t in element.itertext()))
                element.clear()
    if not lengths:
        return
    total = 0
    for name in sorted(n for n in names if n.startswith("xl/worksheets/") and n.endswith(".xml")):
        with archive.open(name) as part:
            cell_type = None
            for event, element in iterparse(part, events=("start", "end")):
                tag = element.tag.rsplit("}", 1)[-1]
                if tag == "c":
                    if event == "start":
                        cell_type = element.get("t")
                    else:
                        element.clear()
                elif tag == "v" and event == "end" and cell_type == "s":
                    index = int(element.text) if (element.text or "").strip().isdigit() else -1
                    total += lengths[index] if 0 <= index < len(lengths) else 0
                    if total > XLSX_MAX_TEXT:
                        raise FormatError("ZIP_BOMB", f"{name}: its cells repeat shared strings into more than "
                                          f"{XLSX_MAX_TEXT:,} characters; refused as a shared-string bomb")
                elif tag == "row" and event == "end":
                    element.clear()


def validate_xlsx(path: Path, details: dict) -> int:
    """Structure, bomb and XXE checks on the archive before openpyxl reads a single row."""
    try:
        return _validate_xlsx(path, details)
    except ZIP_ERRORS as exc:
        raise FormatError("XLSX_CORRUPT", f"the workbook archive is damaged: {library_error(exc)}") from None


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
        _check_entry_names(infos)
        for info in infos:
            if info.filename.endswith((".xml", ".rels", ".vml")):
                _check_xml_part(archive, info)
        _check_shared_string_expansion(archive, names)
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged parts
        raise FormatError("XLSX_UNREADABLE", f"the workbook cannot be read: {library_error(exc)}") from None
    rows = 0
    text = 0
    try:
        for sheet in workbook.worksheets:
            # No header or blank-row rules: ECMA-376 has no header row, and workbooks are laid out for people
            # (blank rows in POI's SampleSS, spacer columns, titles and multi-line headers in frictionless'
            # examples). A samplesheet's header is checked where it is read (samplesheet.py).
            for row in sheet.iter_rows(values_only=True):
                rows += 1
                text += sum(len(value) for value in row if isinstance(value, str))
                if text > XLSX_MAX_TEXT:  # shared strings repeat one stored string in every cell that names it
                    raise FormatError("ZIP_BOMB", f"the workbook's cells hold more than {XLSX_MAX_TEXT:,} characters "
                                      f"of text by row {rows:,}: refused as a shared-string bomb")
        details["sheets"] = len(workbook.worksheets)
    finally:
        workbook.close()
    return rows

