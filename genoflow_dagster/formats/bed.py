"""BED (UCSC BED3-BED12, as BEDv1 and the acidbio conformance suite read it).

Columns may be separated by any run of tabs or spaces (BEDv1), so a name
holding a space shows up as a column-count error. `track` lines start a new
track, whose lines may have another width; `browser` and `#` lines are
skipped, and so is one `chrom start end ...` column header before the data
(bedtools accepts it). Memory stays constant: one line at a time.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines, printable

_CHROM = re.compile(rb"^[A-Za-z0-9_.:*#+\-|]+$")
_INT = re.compile(rb"^[0-9]+$")
_RGB = re.compile(rb"^([0-9]{1,3}(,[0-9]{1,3}){2},?|0)$")
MAX_COORDINATE = 2**31 - 1


def validate_bed(stream: BinaryIO, details: dict) -> int:
    """BED3-BED12; every data line of a track has the same number of columns. Returns the record count."""
    records = 0
    width = None
    for number, line in numbered_lines(stream):
        if not line.strip() or line.startswith((b"#", b"browser")):
            continue
        if line.startswith(b"track"):
            width = None  # a new track may use another BED width
            continue
        fields = line.split()
        if records == 0 and fields[0] == b"chrom" and len(fields) >= 3 and not _INT.match(fields[1]):
            continue  # a column header (`chrom start end`), as bedtools accepts before the data
        if width is None:
            width = len(fields)
            if width < 3 or width > 12:
                raise FormatError("BED_COLUMN_COUNT", f"line {number} has {width} columns; BED has 3 to 12", number)
        elif len(fields) != width:
            raise FormatError("BED_COLUMN_COUNT",
                              f"line {number} has {len(fields)} columns where earlier lines have {width}", number)
        _check_line(fields, number, width)
        records += 1
    return records


def _check_line(fields: list[bytes], number: int, width: int) -> None:
    chrom, start, end = fields[:3]
    if not _CHROM.match(chrom) or chrom == b".":
        raise FormatError("BED_CHROM_INVALID", f"line {number}: chromosome name {chrom[:30]!r} is invalid", number)
    if not _INT.match(start):
        raise FormatError("BED_START_INVALID", f"line {number}: chromStart {start[:20]!r} is not a non-negative "
                          "integer", number)
    if not _INT.match(end):
        raise FormatError("BED_END_INVALID", f"line {number}: chromEnd {end[:20]!r} is not a non-negative integer",
                          number)
    first, last = int(start), int(end)
    if first > last:
        raise FormatError("BED_START_AFTER_END", f"line {number}: chromStart {first} > chromEnd {last}", number)
    if last > MAX_COORDINATE:
        raise FormatError("BED_END_TOO_LARGE", f"line {number}: chromEnd exceeds 2^31-1", number)
    if width >= 4 and (not fields[3] or not printable(fields[3])):
        raise FormatError("BED_NAME_INVALID", f"line {number}: name must be non-empty without spaces", number)
    if width >= 5 and not (_INT.match(fields[4]) and int(fields[4]) <= 1000):
        raise FormatError("BED_SCORE_INVALID", f"line {number}: score {fields[4][:20]!r} must be an integer "
                          "0-1000", number)
    if width >= 6 and fields[5] not in (b"+", b"-", b"."):
        raise FormatError("BED_STRAND_INVALID", f"line {number}: strand must be '+', '-' or '.'", number)
    if width >= 8:
        for value, what in ((fields[6], "thickStart"), (fields[7], "thickEnd")):
            if not _INT.match(value):
                raise FormatError("BED_THICK_INVALID", f"line {number}: {what} is not an integer", number)
        if not first <= int(fields[6]) <= int(fields[7]) <= last:
            raise FormatError("BED_THICK_OUTSIDE", f"line {number}: thickStart/End lie outside the feature",
                              number)
    if width >= 9 and (not _RGB.match(fields[8]) or any(int(x) > 255 for x in fields[8].split(b",") if x)):
        raise FormatError("BED_RGB_INVALID", f"line {number}: itemRgb must be R,G,B or 0", number)
    if width >= 10:
        _check_blocks(fields, number, first, last)


def _int_list(field: bytes) -> list[int] | None:
    items = field.rstrip(b",").split(b",")
    if not all(_INT.match(item) for item in items):
        return None
    return [int(item) for item in items]


def _check_blocks(fields: list[bytes], number: int, start: int, end: int) -> None:
    """Blocks (exons) start at chromStart, ascend without overlapping and the last one ends at chromEnd."""
    if len(fields) != 12:
        raise FormatError("BED_BLOCKS_INCOMPLETE", f"line {number}: blocks need blockCount, blockSizes, blockStarts",
                          number)
    if not _INT.match(fields[9]) or int(fields[9]) < 1:
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blockCount must be a positive integer", number)
    count = int(fields[9])
    sizes, starts = _int_list(fields[10]), _int_list(fields[11])
    if sizes is None or starts is None:
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blockSizes and blockStarts must be comma-separated "
                          "non-negative integers", number)
    if len(sizes) != count or len(starts) != count:
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blockCount {count} disagrees with the "
                          f"{len(sizes)} sizes and {len(starts)} starts", number)
    for i in range(1, count):
        if starts[i] < starts[i - 1]:
            raise FormatError("BED_BLOCKS_UNSORTED", f"line {number}: block {i + 1} starts at {starts[i]}, before "
                              f"block {i} at {starts[i - 1]}: blockStarts must increase", number)
        if starts[i - 1] + sizes[i - 1] > starts[i]:
            raise FormatError("BED_BLOCKS_OVERLAP", f"line {number}: block {i} (start {starts[i - 1]}, size "
                              f"{sizes[i - 1]}) overlaps block {i + 1} at {starts[i]}", number)
    if starts[0] != 0 or start + starts[-1] + sizes[-1] != end:
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blocks must start at 0 and end at chromEnd", number)
