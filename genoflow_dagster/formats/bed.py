"""BED (GA4GH BEDv1, "The BED format", hts-specs BEDv1.tex; UCSC BED3-BED12), as bedtools reads it.

Columns may be separated by any run of tabs or spaces (BEDv1 "Terminology": field separator), so a name
holding a space shows up as a column-count error; custom columns after the sixth may be empty or hold
spaces when tabs separate them. `track` lines start a new track, whose lines may have
another width; `browser` and `#` lines are skipped, and so is one `chrom start end ...` column header
before the data (bedtools accepts it). Memory stays constant: one line at a time.

Which columns are standard BED fields and which are custom data is "supplied out-of-band" (BEDv1
"Information supplied out-of-band"): a BEDn+m file (ENCODE narrowPeak is BED6+4, broadPeak BED6+3,
gappedPeak BED12+3) carries its own data after the n-th column. So:
- Columns 1-3 and, from BED4/BED6 on, name and strand are always the standard fields: errors when broken
  (bedtools, tabix and the targets step read them as such).
- Column 5 of a file of a standard width (5 to 9 or 12 columns) is read as a score, but a value outside
  the integer range 0-1000 is only a warning: the column may be custom data (MACS writes '.',
  RepeatMasker raw scores, publications floats), and bedtools keeps the score as text. A file of 10, 11
  or more than 12 columns cannot be plain BED: it is a custom BEDn+m format whose definition (out of
  band) gives column 5 its meaning (MACS narrowPeak: int(-10*log10 q-value), above 1000 for strong
  peaks), so its score is not checked.
- Columns 7 and beyond: the first data line of a track says how many of them hold valid standard fields
  (thickStart, thickEnd, itemRgb, then the three block columns; three comma-separated numbers in
  column 9 are always a colour, and must be a valid one): that is the track's layout (BED6+m,
  BED7+m, BED8+m, BED9+m or BED12+m), and every later line must have the same one. A later line that
  breaks a standard field refuses the file at that line; a later line that holds valid standard fields
  where the first line did not refuses it at the first line. BED12 (exactly twelve columns) is always
  read as BED12. BED10 and BED11 are prohibited (BEDv1 "BED fields"), so a 10- or 11-column file is
  BED6+4 / BED6+5: its columns 7 and beyond are custom data.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines, printable
from genoflow_dagster.formats.messages import shown
from genoflow_dagster.formats.result import warn

_CHROM = re.compile(rb"^[A-Za-z0-9_.:*#+\-|]+$")
_INT = re.compile(rb"^[0-9]+$")
_RGB = re.compile(rb"^([0-9]{1,3}(,[0-9]{1,3}){2},?|0)$")
_RGB_SHAPE = re.compile(rb"^[0-9]+,[0-9]+,[0-9]+,?$")
MAX_COORDINATE = 2**31 - 1
MAX_SCORE = 1000
# Widths whose columns 7+ are custom data: BED10 and BED11 are prohibited, so these are BED6+4 and BED6+5.
_CUSTOM_AFTER_SIX = (10, 11)
_STANDARD_WIDTHS = frozenset((3, 4, 5, 6, 7, 8, 9, 12))
# The standard layouts beyond BED6, by the number of leading standard columns.
_LAYOUT_NAMES = {6: "BED6", 7: "BED7", 8: "BED8", 9: "BED9", 12: "BED12"}


def validate_bed(stream: BinaryIO, details: dict) -> int:
    """BED3-BED12 and BEDn+m; every data line of a track has the same number of columns and the same
    layout of standard fields (see the module docstring). Raises FormatError (reason BED_*, 1-based line)
    at the first broken rule; records warnings in `details`. Returns the record count."""
    records = 0
    width = None
    layout: tuple[int, FormatError | None, int] | None = None  # (standard columns, what stopped them, line)
    for number, line in numbered_lines(stream):
        if not line.strip() or line.startswith((b"#", b"browser")):
            continue
        if line.startswith(b"track"):
            width = layout = None  # a new track may use another BED width
            continue
        fields = line.split()
        if records == 0 and fields[0] == b"chrom" and len(fields) >= 3 and not _INT.match(fields[1]):
            continue  # a column header (`chrom start end`), as bedtools accepts before the data
        if width is None:
            fields = _tab_fields(line) or fields
            width = len(fields)
            if width < 3:
                raise FormatError("BED_COLUMN_COUNT", f"line {number} has {width} columns; BED has at least 3 "
                                  "(chrom, chromStart, chromEnd)", number)
        elif len(fields) != width:
            tabbed = _tab_fields(line)
            if tabbed is None or len(tabbed) != width:
                raise FormatError("BED_COLUMN_COUNT", f"line {number} has {len(fields)} columns where earlier "
                                  f"lines have {width}", number)
            fields = tabbed
        first, last = _check_core(fields, number, width, details)
        if width > 6:
            standard, stop = _extension(fields, number, first, last, width)
            if layout is None:
                layout = (standard, stop, number)
            else:
                _check_layout(layout, standard, stop, number)
        records += 1
    return records


def _check_layout(layout: tuple[int, FormatError | None, int], standard: int, stop: FormatError | None,
                  number: int) -> None:
    """A line must hold as many standard columns as the first line of its track (see the module docstring)."""
    first_standard, first_stop, first_line = layout
    if standard < first_standard and stop is not None:
        raise stop  # a field the track's first line holds as standard
    if standard > first_standard and first_stop is not None:
        raise FormatError(first_stop.reason, f"{first_stop.message}; line {number} of the same track holds valid "
                          f"{_LAYOUT_NAMES[standard]} columns there, so the column is not custom data", first_line)


def _tab_fields(line: bytes) -> list[bytes] | None:
    """The columns of a tab-separated line whose custom columns after the sixth are empty or hold spaces
    (BEDv1 "Recommended practice", user-defined fields: allowed when a single tab separates the fields), as
    UCSC table dumps write them; None for any other line, which splits at runs of whitespace. The six
    standard columns never hold whitespace."""
    if b"\t" not in line:
        return None
    tabbed = [field.strip(b" ") for field in line.split(b"\t")]
    if len(tabbed) <= 6 or not all(field and b" " not in field for field in tabbed[:6]):
        return None
    return tabbed if any(not field or b" " in field for field in tabbed[6:]) else None


def _check_core(fields: list[bytes], number: int, width: int, details: dict) -> tuple[int, int]:
    """Columns 1-6 (those present): chrom, chromStart, chromEnd, name, score, strand. Returns (start, end)."""
    chrom, start, end = fields[:3]
    if not _CHROM.match(chrom) or chrom == b".":
        raise FormatError("BED_CHROM_INVALID", f"line {number}: chromosome name {shown(chrom)} holds characters "
                          "outside letters, digits and _ . : * # + - |", number)
    if not _INT.match(start):
        raise FormatError("BED_START_INVALID", f"line {number}: chromStart {shown(start, 20)} is not a "
                          "non-negative integer", number)
    if not _INT.match(end):
        raise FormatError("BED_END_INVALID", f"line {number}: chromEnd {shown(end, 20)} is not a non-negative "
                          "integer", number)
    first, last = int(start), int(end)
    if first > last:
        raise FormatError("BED_START_AFTER_END", f"line {number}: chromStart {first} > chromEnd {last}", number)
    if last > MAX_COORDINATE:
        raise FormatError("BED_END_TOO_LARGE", f"line {number}: chromEnd {last} exceeds 2^31-1, the largest "
                          "position bedtools and tabix read", number)
    if width >= 4 and not printable(fields[3]):
        raise FormatError("BED_NAME_INVALID", f"line {number}: the name {shown(fields[3])} holds a byte that is "
                          "not printable ASCII", number)
    if width >= 5 and width in _STANDARD_WIDTHS:
        _check_score(fields[4], number, details)
    if width >= 6 and fields[5] not in (b"+", b"-", b"."):
        raise FormatError("BED_STRAND_INVALID", f"line {number}: strand {shown(fields[5], 20)} is not '+', '-' "
                          "or '.'", number)
    return first, last


def _check_score(score: bytes, number: int, details: dict) -> None:
    if _INT.match(score) and int(score) <= MAX_SCORE:
        return
    if score == b".":
        why = "is '.'; an uninformative BED score is written 0"
    else:
        why = f"{shown(score, 20)} is not an integer from 0 to {MAX_SCORE}"
    warn(details, "BED_SCORE_INVALID", f"line {number}: score {why} (BEDv1 'Simple attributes'); read anyway "
         "as custom data in column 5, as bedtools does", number)


def _extension(fields: list[bytes], number: int, start: int, end: int,
               width: int) -> tuple[int, FormatError | None]:
    """How many leading columns of this line are valid standard fields (6, 7, 8, 9 or 12), and the error
    naming the first column after them that is not (None when all the standard columns are valid).
    BED12 (exactly twelve columns) must hold all twelve: its error is raised here."""
    if width in _CUSTOM_AFTER_SIX:
        return 6, None
    thick_start, thick_end = fields[6], fields[7] if width >= 8 else None
    if not _INT.match(thick_start):
        stop = FormatError("BED_THICK_INVALID", f"line {number}: thickStart {shown(thick_start, 20)} is not a "
                           "non-negative integer", number)
        return _stopped(6, stop, width)
    if not start <= int(thick_start) <= end:
        stop = FormatError("BED_THICK_OUTSIDE", f"line {number}: thickStart {int(thick_start)} lies outside the "
                           f"feature {start}-{end}", number)
        return _stopped(6, stop, width)
    if thick_end is None:
        return 7, None
    if not _INT.match(thick_end):
        stop = FormatError("BED_THICK_INVALID", f"line {number}: thickEnd {shown(thick_end, 20)} is not a "
                           "non-negative integer", number)
        return _stopped(7, stop, width)
    if not int(thick_start) <= int(thick_end) <= end:
        stop = FormatError("BED_THICK_OUTSIDE", f"line {number}: thickEnd {int(thick_end)} is not between "
                           f"thickStart {int(thick_start)} and chromEnd {end}", number)
        return _stopped(7, stop, width)
    if width == 8:
        return 8, None
    rgb = fields[8]
    if not _RGB.match(rgb) or any(int(x) > 255 for x in rgb.split(b",") if x):
        stop = FormatError("BED_RGB_INVALID", f"line {number}: itemRgb {shown(rgb, 20)} is not R,G,B (each 0-255) "
                           "or 0", number)
        if _RGB_SHAPE.match(rgb):
            raise stop  # three numbers: a colour, whatever the layout, and a broken one
        return _stopped(8, stop, width)
    if width == 9:
        return 9, None
    blocks_stop = _check_blocks(fields, number, start, end)
    return _stopped(9, blocks_stop, width) if blocks_stop else (12, None)


def _stopped(standard: int, stop: FormatError, width: int) -> tuple[int, FormatError]:
    if width == 12:
        raise stop
    return standard, stop


def _int_list(field: bytes) -> list[int] | None:
    items = field.rstrip(b",").split(b",")
    if not all(_INT.match(item) for item in items):
        return None
    return [int(item) for item in items]


def _check_blocks(fields: list[bytes], number: int, start: int, end: int) -> FormatError | None:
    """Blocks (exons) start at chromStart, ascend without overlapping and the last one ends at chromEnd."""
    if not _INT.match(fields[9]) or int(fields[9]) < 1:
        return FormatError("BED_BLOCKS_INVALID", f"line {number}: blockCount {shown(fields[9], 20)} is not a "
                           "positive integer", number)
    count = int(fields[9])
    sizes, starts = _int_list(fields[10]), _int_list(fields[11])
    if sizes is None or starts is None:
        return FormatError("BED_BLOCKS_INVALID", f"line {number}: blockSizes {shown(fields[10])} and blockStarts "
                           f"{shown(fields[11])} must be comma-separated non-negative integers", number)
    if len(sizes) != count or len(starts) != count:
        return FormatError("BED_BLOCKS_INVALID", f"line {number}: blockCount {count} disagrees with the "
                           f"{len(sizes)} sizes and {len(starts)} starts", number)
    for i in range(1, count):
        if starts[i] < starts[i - 1]:
            return FormatError("BED_BLOCKS_UNSORTED", f"line {number}: block {i + 1} starts at {starts[i]}, before "
                               f"block {i} at {starts[i - 1]}: blockStarts must increase", number)
        if starts[i - 1] + sizes[i - 1] > starts[i]:
            return FormatError("BED_BLOCKS_OVERLAP", f"line {number}: block {i} (start {starts[i - 1]}, size "
                               f"{sizes[i - 1]}) overlaps block {i + 1} at {starts[i]}", number)
    if starts[0] != 0 or start + starts[-1] + sizes[-1] != end:
        return FormatError("BED_BLOCKS_INVALID", f"line {number}: the blocks span {start + starts[0]}-"
                           f"{start + starts[-1] + sizes[-1]}; they must start at chromStart {start} and end at "
                           f"chromEnd {end}", number)
    return None
