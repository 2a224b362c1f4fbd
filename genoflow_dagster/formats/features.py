"""Genomic feature files: BED (UCSC), GFF3 (Sequence Ontology spec) and GTF (GENCODE/Ensembl style)."""

from __future__ import annotations

import re
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines, printable

_CHROM = re.compile(rb"^[A-Za-z0-9_.:*#+\-|]+$")
_INT = re.compile(rb"^[0-9]+$")
_RGB = re.compile(rb"^([0-9]{1,3}(,[0-9]{1,3}){2},?|0)$")


def validate_bed(stream: BinaryIO, details: dict) -> int:
    """BED3-BED12, tab-separated; every data line has the same number of columns."""
    records = 0
    width = None
    for number, line in numbered_lines(stream):
        if not line.strip() or line.startswith((b"#", b"track", b"browser")):
            continue
        # BEDv1 allows any run of whitespace (tabs or spaces, even mixed) as the separator, so a name
        # with a space shows up as a column-count error.
        fields = line.split()
        if width is None:
            width = len(fields)
            if width < 3 or width > 12:
                raise FormatError("BED_COLUMN_COUNT", f"line {number} has {width} columns; BED has 3 to 12", number)
        elif len(fields) != width:
            raise FormatError("BED_COLUMN_COUNT",
                              f"line {number} has {len(fields)} columns where earlier lines have {width}", number)
        chrom, start, end = fields[:3]
        if not _CHROM.match(chrom) or chrom == b".":
            raise FormatError("BED_CHROM_INVALID", f"line {number}: chromosome name {chrom[:30]!r} is invalid", number)
        if not _INT.match(start):
            raise FormatError("BED_START_INVALID", f"line {number}: chromStart {start[:20]!r} is not a non-negative "
                              "integer", number)
        if not _INT.match(end):
            raise FormatError("BED_END_INVALID", f"line {number}: chromEnd {end[:20]!r} is not a non-negative integer",
                              number)
        if int(start) > int(end):
            raise FormatError("BED_START_AFTER_END", f"line {number}: chromStart {int(start)} > chromEnd {int(end)}",
                              number)
        if int(end) > 2**31 - 1:
            raise FormatError("BED_END_TOO_LARGE", f"line {number}: chromEnd exceeds 2^31-1", number)
        if width >= 4 and (not fields[3] or b" " in fields[3] or not printable(fields[3])):
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
            if not int(start) <= int(fields[6]) <= int(fields[7]) <= int(end):
                raise FormatError("BED_THICK_OUTSIDE", f"line {number}: thickStart/End lie outside the feature",
                                  number)
        if width >= 9 and (not _RGB.match(fields[8]) or any(int(x) > 255 for x in fields[8].split(b",") if x)):
            raise FormatError("BED_RGB_INVALID", f"line {number}: itemRgb must be R,G,B or 0", number)
        if width >= 10:
            _check_blocks(fields, number, int(start), int(end))
        records += 1
    return records


def _check_blocks(fields: list[bytes], number: int, start: int, end: int) -> None:
    if len(fields) != 12:
        raise FormatError("BED_BLOCKS_INCOMPLETE", f"line {number}: blocks need blockCount, blockSizes, blockStarts",
                          number)
    if not _INT.match(fields[9]):
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blockCount is not an integer", number)
    count = int(fields[9])
    try:
        sizes = [int(x) for x in fields[10].rstrip(b",").split(b",")]
        starts = [int(x) for x in fields[11].rstrip(b",").split(b",")]
    except ValueError:
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blockSizes/blockStarts are not integers",
                          number) from None
    if len(sizes) != count or len(starts) != count:
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blockCount {count} disagrees with the lists", number)
    if starts and (starts[0] != 0 or start + starts[-1] + sizes[-1] != end):
        raise FormatError("BED_BLOCKS_INVALID", f"line {number}: blocks must start at 0 and end at chromEnd", number)


_GFF_SEQID = re.compile(rb"^[a-zA-Z0-9.:^*$@!+_?\-|%]+$")
_GTF_ATTR = re.compile(rb'^\s*([A-Za-z_][A-Za-z0-9_]*)\s+("[^"]*"|[^;"\s]+)\s*$')


def _gff_columns(line: bytes, number: int, prefix: str) -> list[bytes]:
    fields = line.split(b"\t")
    if len(fields) != 9:
        raise FormatError(f"{prefix}_COLUMN_COUNT", f"line {number} has {len(fields)} tab-separated columns, not 9",
                          number)
    seqid, _source, ftype, start, end, score, strand, phase, _attrs = fields
    if not seqid or (prefix == "GFF3" and not _GFF_SEQID.match(seqid)):
        raise FormatError(f"{prefix}_SEQID_INVALID", f"line {number}: seqid {seqid[:30]!r} is invalid", number)
    if not ftype:
        raise FormatError(f"{prefix}_TYPE_MISSING", f"line {number}: the type column is empty", number)
    if not _INT.match(start) or not _INT.match(end) or int(start) < 1:
        raise FormatError(f"{prefix}_COORDINATE_INVALID", f"line {number}: start/end must be positive integers",
                          number)
    if int(start) > int(end):
        raise FormatError(f"{prefix}_START_AFTER_END", f"line {number}: start {int(start)} > end {int(end)}", number)
    if score != b"." and not re.match(rb"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", score):
        raise FormatError(f"{prefix}_SCORE_INVALID", f"line {number}: score {score[:20]!r} is not a number or '.'",
                          number)
    if strand not in (b"+", b"-", b".", b"?"):
        raise FormatError(f"{prefix}_STRAND_INVALID", f"line {number}: strand must be +, -, . or ?", number)
    if phase not in (b".", b"0", b"1", b"2"):
        raise FormatError(f"{prefix}_PHASE_INVALID", f"line {number}: phase must be 0, 1, 2 or '.'", number)
    if ftype == b"CDS" and phase == b".":
        raise FormatError(f"{prefix}_CDS_PHASE_MISSING", f"line {number}: a CDS feature needs a phase", number)
    return fields


def validate_gff3(stream: BinaryIO, details: dict) -> int:
    """GFF3: columns, coordinates, attribute syntax and escaping, unique IDs and Parents that exist."""
    records = 0
    ids: dict[bytes, tuple[bytes, int]] = {}
    parents: list[tuple[bytes, int]] = []
    in_fasta = False
    for number, line in numbered_lines(stream):
        if in_fasta:
            continue
        if number == 1 and not line.startswith(b"##gff-version 3"):
            raise FormatError("GFF3_VERSION_MISSING", "the first line must be '##gff-version 3'", 1)
        if line.startswith(b"##FASTA"):
            in_fasta = True
            continue
        if line.startswith(b">"):
            raise FormatError("GFF3_FASTA_WITHOUT_DIRECTIVE", f"line {number}: FASTA needs a ##FASTA directive first",
                              number)
        if not line.strip() or line.startswith(b"#"):
            continue
        fields = _gff_columns(line, number, "GFF3")
        seqid = fields[0]
        attributes = fields[8]
        if attributes != b".":
            seen: set[bytes] = set()
            for item in attributes.rstrip(b";").split(b";"):
                if not item.strip():
                    continue
                key, eq, value = item.partition(b"=")
                if not eq or not key:
                    raise FormatError("GFF3_ATTRIBUTE_MALFORMED",
                                      f"line {number}: attribute {item[:30]!r} is not tag=value", number)
                if key in seen:
                    raise FormatError("GFF3_ATTRIBUTE_DUPLICATE", f"line {number}: tag {key.decode()} repeats", number)
                seen.add(key)
                if re.search(rb"%(?![0-9A-Fa-f]{2})", value):
                    raise FormatError("GFF3_BAD_ESCAPE", f"line {number}: '%' not followed by two hex digits", number)
                if key == b"ID":
                    if value in ids and ids[value][0] != seqid:
                        raise FormatError("GFF3_DUPLICATE_ID",
                                          f"line {number}: ID {unquote_to_bytes(value).decode(errors='replace')} "
                                          f"is already used at line {ids[value][1]}", number)
                    ids.setdefault(value, (seqid, number))
                if key == b"Parent":
                    parents.extend((parent, number) for parent in value.split(b","))
        records += 1
    for parent, number in parents:
        if parent not in ids:
            raise FormatError("GFF3_PARENT_UNDEFINED",
                              f"line {number}: Parent {parent.decode(errors='replace')} has no feature with that ID",
                              number)
    return records


def validate_gtf(stream: BinaryIO, details: dict) -> int:
    """GTF 2.2: nine columns and `key "value";` attributes with gene_id and transcript_id."""
    records = 0
    for number, line in numbered_lines(stream):
        if not line.strip() or line.startswith(b"#"):
            continue
        fields = _gff_columns(line, number, "GTF")
        keys = set()
        for item in fields[8].strip().rstrip(b";").split(b";"):
            if not item.strip():
                continue
            match = _GTF_ATTR.match(item)
            if not match:
                raise FormatError("GTF_ATTRIBUTE_MALFORMED",
                                  f"line {number}: attribute {item.strip()[:40]!r} is not key \"value\"", number)
            keys.add(match.group(1))
        if b"gene_id" not in keys:
            raise FormatError("GTF_GENE_ID_MISSING", f"line {number}: every GTF feature needs gene_id", number)
        if b"transcript_id" not in keys and fields[2] not in (b"gene",):
            raise FormatError("GTF_TRANSCRIPT_ID_MISSING", f"line {number}: {fields[2].decode(errors='replace')} "
                              "needs transcript_id", number)
        records += 1
    return records
