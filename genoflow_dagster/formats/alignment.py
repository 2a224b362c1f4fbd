"""SAM (checked line by line against the SAM specification), BAM and CRAM (decoded with pysam).

SAM rules follow SAMv1 (header tags, mandatory fields, optional-field types)
and, for the base-modification tags MM/ML/MN, SAMtags. BAM and CRAM headers
get the same header rules: their text is read as stored in the file (htslib
rebuilds the text it hands out, e.g. it adds @SQ lines and moves @HD first),
and a rejection gives the line within that text. Their records get the
per-record rules that need no text parsing: CIGAR clip placement, CIGAR vs
SEQ length, MN vs SEQ length. BAM files must end
with the BGZF EOF block (a missing one means a truncated copy). CRAM decoding
uses local references only (REF_PATH, REF_CACHE or the given FASTA), never the
network: when a reference is not available locally, the records are decoded
without their sequences (so the container structure is still read to its end)
and the missing references are noted in `details`.
"""

from __future__ import annotations

import bz2
import datetime
import lzma
import math
import os
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from genoflow_dagster.errors import ErrorCode
from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.io import DECOMPRESSION_ERRORS, open_decompressed
from genoflow_dagster.formats.lines import numbered_lines
from genoflow_dagster.formats.messages import library_error, shown
from genoflow_dagster.formats.result import warn

if TYPE_CHECKING:
    import pysam

BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# The CRAM EOF container (v2.1: 30 bytes, v3: 38 with CRC32) has reference id -1 and position 4542278 ("EOF").
CRAM_EOF_SIGNATURE = b"\xff\xff\xff\xff\x0f\xe0EOF\x00"
PROGRESS_EVERY_RECORDS = 1 << 16  # how often BAM/CRAM validation reports progress

_HEADER_TAG = re.compile(rb"^@[A-Za-z][A-Za-z]$")
_FIELD = re.compile(rb"^[A-Za-z][A-Za-z0-9]:")
_CIGAR = re.compile(rb"^(\*|([0-9]+[MIDNSHPX=])+)$")
_CIGAR_OP = re.compile(rb"([0-9]+)([MIDNSHPX=])")
_QUERY_OP_LENGTHS = re.compile(rb"([0-9]+)[MIS=X]")  # the operations that consume SEQ bases
_QNAME = re.compile(rb"^[!-?A-~]{1,254}$|^\*$")
_SEQ = re.compile(rb"^(\*|[A-Za-z=.]+)$")
_TAG = re.compile(rb"^[A-Za-z][A-Za-z0-9]:[AifZHB]:")
# SAM spec 1.2.1: reference names; also used for @SQ SN, AN and RNAME/RNEXT.
_REF_NAME = re.compile(rb"^[0-9A-Za-z!#$%&+./:;?@^_|~\-][0-9A-Za-z!#$%&*+./:;=?@^_|~\-]*$")
_FLOAT = rb"[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?"
_AUX_VALUE = {
    b"A": re.compile(rb"^[!-~]$"),
    b"i": re.compile(rb"^[-+]?[0-9]+$"),
    b"f": re.compile(rb"^" + _FLOAT + rb"$"),  # no nan/inf: the spec's regular expression has none
    b"Z": re.compile(rb"^[ !-~]*$"),
    b"H": re.compile(rb"^([0-9A-F]{2})*$"),
}
_B_ARRAY = re.compile(rb"^([cCsSiI](,[-+]?[0-9]+)*|f(," + _FLOAT + rb")*)$")  # subtype letters are case-sensitive
_INT_RANGES = {b"c": (-128, 127), b"C": (0, 255), b"s": (-32768, 32767), b"S": (0, 65535),
               b"i": (-(2**31), 2**31 - 1), b"I": (0, 2**32 - 1)}
_SUB_SORT = re.compile(rb"^(coordinate|queryname|unsorted)(:[A-Za-z0-9_-]+)+$")
_MD5 = re.compile(rb"^[0-9a-f]{32}$")
_FLOW_ORDER = re.compile(rb"^(\*|[ACMGRSVTWYHKDBN]+)$")
_ISO_DATE = re.compile(rb"^(\d{4})-?(\d{2})-?(\d{2})"
                       rb"(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,]\d+)?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$")
# SAMv1 @RG PL: the current list, plus DNB (the name before DNBSEQ). Compared case-insensitively, as
# Picard and GATK do: "illumina" is common in real files and means the same platform.
_PLATFORMS = {b"CAPILLARY", b"DNB", b"DNBSEQ", b"ELEMENT", b"HELICOS", b"ILLUMINA", b"IONTORRENT", b"LS454",
              b"ONT", b"PACBIO", b"SINGULAR", b"SOLID", b"ULTIMA"}
# SAMtags base modifications; Mm/Ml are the draft names some basecallers still write.
_MM_ENTRY = re.compile(rb"^([ACGTUN])([-+])([a-z]+|[0-9]+)([.?]?)((?:,[0-9]+)*)$")
_COMPLEMENT = {b"A": b"T", b"C": b"G", b"G": b"C", b"T": b"A", b"U": b"A"}
_MODIFICATION_TAGS = frozenset((b"MM", b"Mm", b"ML", b"Ml", b"MN"))
_QUAL_CHARACTERS = bytes(range(33, 127))
_CIGAR_CACHE_SIZE = 4096  # distinct CIGARs remembered per file: memory stays flat on long-read data


class _Header:
    """What the header declares, kept for the checks that span lines: names, IDs and @PG chains."""

    def __init__(self) -> None:
        self.references: dict[bytes, int] = {}
        self.names: dict[bytes, int] = {}  # every @SQ SN and AN name -> the line that declared it
        self.read_groups: set[bytes] = set()
        self.programs: set[bytes] = set()
        self.previous_programs: list[tuple[bytes, int]] = []  # (PP value, line)
        self.lines = 0
        # BAM/CRAM: names the spec forbids are noted here instead of refused (records name references by
        # index, so such a name never has to be parsed; htslib's own colons.bam test uses 'chr1,chr3').
        self.name_warnings: list[dict] | None = None

    def bad_name(self, message: str, number: int) -> None:
        if self.name_warnings is None:
            raise FormatError("SAM_SQ_NAME_INVALID", message, number)
        self.name_warnings.append({"reason": "SAM_SQ_NAME_INVALID", "line": number, "message": message})

    def finish(self) -> None:
        """Checks that need the whole header: every @PG PP names a declared @PG ID."""
        for previous, number in self.previous_programs:
            if previous not in self.programs:
                raise FormatError("SAM_PG_PP_UNKNOWN", f"@PG at line {number}: PP {_show(previous)} names no @PG "
                                  "line in the header (the program chain is broken)", number)
        self.previous_programs.clear()


def _show(value: bytes, limit: int = 30) -> str:
    return shown(value, limit)


def validate_sam(stream: BinaryIO, details: dict) -> int:
    """Check a SAM text stream line by line; return the number of alignment records.

    Records of the common shape (A/Z/i/f/H optional fields, no base modifications) are accepted by
    one precompiled pattern plus a few length and name checks; any other line, or one that fails a check,
    goes through the field-by-field rules, which give the reason and line.
    """
    header = _Header()
    number = 0
    for number, line in numbered_lines(stream):
        if not line:
            raise FormatError("SAM_BLANK_LINE", f"blank line at line {number}", number)
        if line.startswith(b"@"):
            _header_line(line, number, header)
            continue
        header.finish()
        _alignment_line(line, number, header.references)
        break
    else:
        header.finish()
        return 0
    first = number  # the first record's line
    references = header.references
    check_names = bool(references)  # without @SQ lines any well-formed name is accepted
    known = {*references, b"*"}
    known_next = {*known, b"="}
    cigars: dict[bytes, int] = {}
    layouts: list[list[bytes]] = []  # optional-field name sequences seen, each with distinct names
    common = _record_pattern(layouts).fullmatch
    tag_names = _TAG_NAMES.findall
    for number, raw in enumerate(stream, start=first + 1):
        match = common(raw)
        if match is not None:
            rname, cigar, rnext, seq, qual, tags = match.groups()
            length = len(seq)
            ok = not check_names or (rname in known and rnext in known_next)
            if ok and cigar != b"*":
                query = cigars.get(cigar)
                if query is None:
                    query = _cigar_query(cigar, cigars)
                ok = query >= 0 and (query == length or seq == b"*")
            if ok and qual != b"*":
                ok = len(qual) == length and seq != b"*"
            if ok and tags:  # optional fields in a layout not learned yet (None when a learned one matched)
                names = tag_names(tags)
                ok = len(set(names)) == len(names)
                if ok and len(layouts) < _LAYOUTS_LEARNED:
                    layouts.append(names)
                    common = _record_pattern(layouts).fullmatch
            if ok:
                continue
        _record_line(raw, number, references)
    return number - first + 1


# One SAM record of the common shape, every field checked as _alignment_line checks it: QNAME (never '@',
# so a header line is never taken for a record), FLAG <= 9999, POS/PNEXT < 10^9, MAPQ 0..255, TLEN
# |x| < 10^9, CIGAR, RNAME/RNEXT names, SEQ/QUAL alphabets, and optional fields of type A, Z, H, i
# (|i| < 10^9) or f (plain decimals) other than the base modifications MM/Mm. Larger numbers, exponents,
# B arrays and MM take the careful path, which accepts them when they are valid.
_NAME = rb"[0-9A-Za-z!#$%&+./:;?@^_|~\-][0-9A-Za-z!#$%&*+./:;=?@^_|~\-]*"
_MANDATORY_FIELDS = (
    rb"[!-?A-~]{1,254}\t[0-9]{1,4}\t(\*|" + _NAME + rb")\t[0-9]{1,9}\t"
    rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[0-9]{1,2})\t(\*|(?:[0-9]+[MIDNSHPX=])+)\t"
    rb"(\*|=|" + _NAME + rb")\t[0-9]{1,9}\t-?[0-9]{1,9}\t(\*|[A-Za-z=.]+)\t([!-~]+)"
)
# f: decimals without an exponent, at most 38 digits before the point (below float32's 3.4e38) and 40 after
# it (a non-zero value stays non-zero in float32); minimap2 writes de:f on every record.
_TAG_VALUE = (rb"(?:Z:[ !-~]*|i:[-+]?[0-9]{1,9}|f:[-+]?(?:[0-9]{1,38}(?:\.[0-9]{1,40})?|\.[0-9]{1,40})|A:[!-~]|"
              rb"H:(?:[0-9A-F]{2})*)")
_ANY_TAGS = rb"((?:\t(?!M[Mm]:)[A-Za-z][A-Za-z0-9]:" + _TAG_VALUE + rb")*)"
_TAG_NAMES = re.compile(rb"\t(..)")
# Aligners write the same few optional-field layouts (NM MD AS XS ...) on every record: a layout whose
# names were found distinct once is spelled out in the pattern, so its records need no duplicate check.
_LAYOUTS_LEARNED = 16


def _record_pattern(layouts: list[list[bytes]]) -> re.Pattern[bytes]:
    """The common-record pattern: the learned layouts first, then any optional fields (captured, to check)."""
    learned = b"".join(b"".join(b"\t" + name + b":" + _TAG_VALUE for name in layout) + b"|" for layout in layouts)
    return re.compile(_MANDATORY_FIELDS + b"(?:" + learned + _ANY_TAGS + rb")\r?\n?")


def _cigar_query(cigar: bytes, cache: dict[bytes, int]) -> int:
    """Bases a well-formed CIGAR consumes from SEQ, or -1 when its clips are misplaced; remembered per CIGAR."""
    query = -1
    try:
        if b"H" in cigar or b"S" in cigar:
            _check_clips(_CIGAR_OP.findall(cigar), cigar, 0)
        query = sum(map(int, _QUERY_OP_LENGTHS.findall(cigar)))
    except FormatError:
        pass
    if len(cache) < _CIGAR_CACHE_SIZE:
        cache[cigar] = query
    return query


def _record_line(raw: bytes, number: int, references: dict[bytes, int]) -> None:
    """A line after the header, checked field by field (it raises on the first broken rule)."""
    line = raw[:-1] if raw.endswith(b"\n") else raw
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        raise FormatError("SAM_BLANK_LINE", f"blank line at line {number}", number)
    if line.startswith(b"@"):
        raise FormatError("SAM_HEADER_AFTER_RECORDS", f"header line {number} follows alignment records", number)
    _alignment_line(line, number, references)


def _header_line(line: bytes, number: int, header: _Header) -> None:
    fields = line.split(b"\t")
    tag = fields[0]
    if not _HEADER_TAG.match(tag):
        raise FormatError("SAM_HEADER_TAG_INVALID", f"header line {number} has an invalid record type {_show(tag)}",
                          number)
    header.lines += 1
    if tag == b"@HD" and header.lines > 1:
        raise FormatError("SAM_HD_NOT_FIRST", f"@HD at line {number}: the @HD line must be the first line of the "
                          "file and appear only once", number)
    if tag == b"@CO":
        return
    values: dict[bytes, bytes] = {}
    for field in fields[1:]:
        if not _FIELD.match(field):
            raise FormatError("SAM_HEADER_FIELD_INVALID",
                              f"header line {number}: field {_show(field, 20)} is not TAG:VALUE", number)
        if field[:2] in values:
            raise FormatError("SAM_HEADER_TAG_DUPLICATE", f"header line {number}: the {_show(field[:2])} field "
                              "appears twice on one line", number)
        values[field[:2]] = field[3:]
    if tag == b"@HD":
        _hd_line(values, number)
    elif tag == b"@SQ":
        _sq_line(values, number, header)
    elif tag == b"@RG":
        _rg_line(values, number, header)
    elif tag == b"@PG":
        if b"ID" not in values:
            raise FormatError("SAM_PG_MISSING_ID", f"@PG at line {number} lacks the ID field", number)
        if values[b"ID"] in header.programs:
            raise FormatError("SAM_PG_DUPLICATE_ID", f"@PG at line {number} repeats program ID "
                              f"{_show(values[b'ID'])}: each @PG line needs its own ID", number)
        header.programs.add(values[b"ID"])
        if b"PP" in values:
            header.previous_programs.append((values[b"PP"], number))


def _hd_line(values: dict[bytes, bytes], number: int) -> None:
    if b"VN" not in values:
        raise FormatError("SAM_HD_MISSING_VN", f"@HD at line {number} lacks the VN (format version) field", number)
    if not re.match(rb"^[0-9]+\.[0-9]+$", values[b"VN"]):
        raise FormatError("SAM_HD_VN_INVALID", f"@HD at line {number}: VN must look like 1.6", number)
    if b"SO" in values and values[b"SO"] not in (b"unknown", b"unsorted", b"queryname", b"coordinate"):
        raise FormatError("SAM_HD_SO_INVALID", f"@HD at line {number}: SO must be unknown, unsorted, "
                          "queryname or coordinate", number)
    if b"GO" in values and values[b"GO"] not in (b"none", b"query", b"reference"):
        raise FormatError("SAM_HD_GO_INVALID", f"@HD at line {number}: GO must be none, query or reference", number)
    if b"SS" in values and not _SUB_SORT.match(values[b"SS"]):
        raise FormatError("SAM_HD_SS_INVALID", f"@HD at line {number}: SS must be coordinate, queryname or "
                          "unsorted followed by one or more ':<term>' parts of letters, digits, '_' or '-'", number)


def _sq_line(values: dict[bytes, bytes], number: int, header: _Header) -> None:
    if b"SN" not in values or b"LN" not in values:
        raise FormatError("SAM_SQ_MISSING_FIELD", f"@SQ at line {number} needs both SN and LN", number)
    if not values[b"LN"].isdigit() or not 1 <= int(values[b"LN"]) <= 2**31 - 1:
        raise FormatError("SAM_SQ_LENGTH_INVALID", f"@SQ at line {number}: LN must be 1..2^31-1", number)
    name = values[b"SN"]
    if not _REF_NAME.match(name):
        header.bad_name(f"@SQ at line {number}: SN {_show(name)} has a character reference names cannot contain",
                        number)
    alternatives = values[b"AN"].split(b",") if b"AN" in values else []
    for alt in alternatives:
        if not _REF_NAME.match(alt):
            header.bad_name(f"@SQ at line {number}: alternative name {_show(alt)} is invalid", number)
    if b"AH" in values and values[b"AH"] != b"*" and not _REF_NAME.match(values[b"AH"]):
        raise FormatError("SAM_SQ_AH_INVALID", f"@SQ at line {number}: AH must be '*' or a reference name", number)
    if b"TP" in values and values[b"TP"] not in (b"linear", b"circular"):
        raise FormatError("SAM_SQ_TP_INVALID", f"@SQ at line {number}: TP must be linear or circular", number)
    if b"M5" in values and not _MD5.match(values[b"M5"]):
        raise FormatError("SAM_SQ_M5_INVALID", f"@SQ at line {number}: M5 must be the 32-character lower-case "
                          "hexadecimal MD5 of the sequence", number)
    if name in header.references:
        raise FormatError("SAM_SQ_DUPLICATE", f"@SQ at line {number} repeats reference {_show(name)}", number)
    # SAMv1 1.3: the SN names and all AN names of all @SQ lines must be distinct.
    for candidate in (name, *alternatives):
        if candidate in header.names:
            raise FormatError("SAM_SQ_ALT_NAME_DUPLICATE", f"@SQ at line {number}: the name {_show(candidate)} is "
                              f"already used by the @SQ line at line {header.names[candidate]} (reference names "
                              "and alternative names must all differ)", number)
        header.names[candidate] = number
    header.references[name] = int(values[b"LN"])


def _rg_line(values: dict[bytes, bytes], number: int, header: _Header) -> None:
    if b"ID" not in values:
        raise FormatError("SAM_RG_MISSING_ID", f"@RG at line {number} lacks the ID field", number)
    if values[b"ID"] in header.read_groups:
        raise FormatError("SAM_RG_DUPLICATE_ID", f"@RG at line {number} repeats read group ID "
                          f"{_show(values[b'ID'])}: each @RG line needs its own ID", number)
    header.read_groups.add(values[b"ID"])
    if b"DT" in values and not _iso_date(values[b"DT"].strip(b" ")):
        raise FormatError("SAM_RG_DATE_INVALID", f"@RG at line {number}: DT {_show(values[b'DT'])} is not an "
                          "ISO 8601 date or date-time such as 2020-06-23 or 2020-06-23T12:13:47+01:00", number)
    if b"PI" in values and not values[b"PI"].isdigit():
        raise FormatError("SAM_RG_PI_INVALID", f"@RG at line {number}: PI (predicted median insert size) "
                          f"{_show(values[b'PI'])} must be a whole number of bases", number)
    if b"PL" in values and values[b"PL"].upper() not in _PLATFORMS:
        raise FormatError("SAM_RG_PL_INVALID", f"@RG at line {number}: PL {_show(values[b'PL'])} is not a platform "
                          "the SAM specification lists (" + ", ".join(sorted(p.decode() for p in _PLATFORMS)) +
                          "); leave PL out when the platform is unknown", number)
    if b"FO" in values and not _FLOW_ORDER.match(values[b"FO"]):
        raise FormatError("SAM_RG_FO_INVALID", f"@RG at line {number}: FO (flow order) must be '*' or IUPAC "
                          "base codes", number)


def _iso_date(value: bytes) -> bool:
    """ISO 8601 calendar date, optionally with a time and a UTC offset; the date must exist."""
    match = _ISO_DATE.match(value)
    if not match:
        return False
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return False
    if hour is not None and (int(hour) > 23 or int(minute) > 59 or (second is not None and int(second) > 60)):
        return False
    return not (zone and zone != b"Z" and (int(zone[1:3]) > 23 or (len(zone) > 3 and int(zone[-2:]) > 59)))


def _int(value: bytes, low: int, high: int, reason: str, what: str, number: int) -> int:
    try:
        result = int(value)
    except ValueError:
        raise FormatError(reason, f"line {number}: {what} {_show(value, 20)} is not an integer", number) from None
    if not low <= result <= high:
        raise FormatError(reason, f"line {number}: {what} {result} is outside {low}..{high}", number)
    return result


def _alignment_line(line: bytes, number: int, references: dict[bytes, int]) -> None:
    fields = line.split(b"\t")
    if len(fields) < 11:
        raise FormatError("SAM_TOO_FEW_FIELDS", f"line {number} has {len(fields)} fields; 11 are mandatory", number)
    qname, flag, rname, pos, mapq, cigar, rnext, pnext, tlen, seq, qual = fields[:11]
    if not _QNAME.match(qname):
        raise FormatError("SAM_QNAME_INVALID", f"line {number}: read name {_show(qname, 30)} is invalid", number)
    flags = _int(flag, 0, 65535, "SAM_FLAG_INVALID", "FLAG", number)
    _int(pos, 0, 2**31 - 1, "SAM_POS_INVALID", "POS", number)
    _int(mapq, 0, 255, "SAM_MAPQ_INVALID", "MAPQ", number)
    _int(pnext, 0, 2**31 - 1, "SAM_PNEXT_INVALID", "PNEXT", number)
    _int(tlen, -(2**31) + 1, 2**31 - 1, "SAM_TLEN_INVALID", "TLEN", number)
    if rname != b"*" and references and rname not in references:
        raise FormatError("SAM_RNAME_UNDECLARED", f"line {number}: reference {_show(rname)} has no @SQ line", number)
    if rnext not in (b"*", b"=") and references and rnext not in references:
        raise FormatError("SAM_RNEXT_UNDECLARED", f"line {number}: mate reference {_show(rnext)} has no @SQ line",
                          number)
    if not _CIGAR.match(cigar):
        raise FormatError("SAM_CIGAR_INVALID", f"line {number}: CIGAR {_show(cigar, 30)} is malformed", number)
    if not _SEQ.match(seq):
        raise FormatError("SAM_SEQ_INVALID", f"line {number}: SEQ contains characters outside [A-Za-z=.]", number)
    if cigar != b"*":
        if b"H" in cigar or b"S" in cigar:
            _check_clips(_CIGAR_OP.findall(cigar), cigar, number)
        if seq != b"*":
            query = sum(map(int, _QUERY_OP_LENGTHS.findall(cigar)))
            if query != len(seq):
                raise FormatError("SAM_CIGAR_SEQ_LENGTH_MISMATCH",
                                  f"line {number}: CIGAR implies {query} bases but SEQ has {len(seq)}", number)
    if qual != b"*":
        if seq == b"*":
            raise FormatError("SAM_QUAL_WITHOUT_SEQ", f"line {number}: QUAL is given but SEQ is '*'", number)
        if len(qual) != len(seq):
            raise FormatError("SAM_QUAL_LENGTH_MISMATCH",
                              f"line {number}: QUAL has {len(qual)} characters, SEQ has {len(seq)}", number)
        if qual.translate(None, _QUAL_CHARACTERS):
            raise FormatError("SAM_QUAL_INVALID_CHARACTER", f"line {number}: QUAL has bytes outside 33..126", number)
    if rname != b"*" and not _REF_NAME.match(rname):
        raise FormatError("SAM_RNAME_INVALID", f"line {number}: RNAME {_show(rname, 30)} is not a valid name", number)
    if rnext not in (b"*", b"=") and not _REF_NAME.match(rnext):
        raise FormatError("SAM_RNEXT_INVALID", f"line {number}: RNEXT {_show(rnext, 30)} is not a valid name", number)
    if len(fields) > 11:
        _optional_fields(fields[11:], flags, seq, number)


def _check_clips(ops: list[tuple[bytes, bytes]], cigar: bytes, number: int, where: str = "") -> None:
    """SAMv1 1.4.6: H only as the first or last operation; only H between an S and the end of the CIGAR."""
    where = where or f"line {number}"
    last = len(ops) - 1
    first_inner = 1 if ops[0][1] == b"H" else 0
    last_inner = last - 1 if last > 0 and ops[last][1] == b"H" else last
    for i, (_, op) in enumerate(ops):
        if op == b"H" and 0 < i < last:
            raise FormatError("SAM_CIGAR_CLIP_MISPLACED", f"{where}: CIGAR {_show(cigar, 40)} has a hard clip (H) "
                              "inside the alignment; H may only be the first or last operation", number)
        if op == b"S" and i != first_inner and i != last_inner:
            raise FormatError("SAM_CIGAR_CLIP_MISPLACED", f"{where}: CIGAR {_show(cigar, 40)} has a soft clip (S) "
                              "inside the alignment; S may only be at either end (outside any H)", number)


def _optional_fields(tags: list[bytes], flags: int, seq: bytes, number: int) -> None:
    seen: set[bytes] = set()
    modifications: dict[bytes, bytes] = {}  # MM/ML/MN fields, checked together at the end
    for tag in tags:
        if not _TAG.match(tag):
            if re.match(rb"^[^:]{2}:[AifZHB]:", tag):
                message = (f"line {number}: optional field {_show(tag, 20)} has the tag name {_show(tag[:2])}; tag "
                           "names are a letter followed by a letter or digit")
            else:
                message = f"line {number}: optional field {_show(tag, 20)} is not TAG:TYPE:VALUE (TYPE one of AifZHB)"
            raise FormatError("SAM_TAG_INVALID", message, number)
        name, kind, value = tag[:2], tag[3:4], tag[5:]
        if name in seen:
            raise FormatError("SAM_TAG_DUPLICATE", f"line {number}: the optional field {name.decode()} appears twice "
                              "in one record", number)
        seen.add(name)
        if kind == b"Z" or kind == b"A":  # the common types: one pattern says it all
            problem = None if _AUX_VALUE[kind].match(value) else "does not fit its type"
        else:
            problem = _aux_value_problem(kind, value)
        if problem:
            raise FormatError("SAM_TAG_VALUE_INVALID", f"line {number}: {name.decode()}:{kind.decode()} value "
                              f"{_show(value, 30)} {problem}", number)
        if name in _MODIFICATION_TAGS:
            modifications[name.upper()] = tag
    if b"MM" in modifications and seq != b"*":
        _check_base_modifications(modifications, flags, seq, number)


def _aux_value_problem(kind: bytes, value: bytes) -> str | None:
    """Why VALUE does not fit TYPE (None when it does)."""
    if kind == b"B":
        if not _B_ARRAY.match(value):
            return "is not an array: a subtype letter (c, C, s, S, i, I or f) then comma-separated numbers"
        items = value.split(b",")[1:]
        if value[:1] == b"f":
            return next((p for p in map(_float_problem, items) if p), None)
        low, high = _INT_RANGES[value[:1]]
        if not all(low <= int(x) <= high for x in items):
            return f"has a number outside {low}..{high}, the range of subtype {value[:1].decode()}"
        return None
    if not _AUX_VALUE[kind].match(value):
        return "does not fit its type"
    if kind == b"i" and not -(2**31) <= int(value) <= 2**32 - 1:
        return "is outside -2^31..2^32-1, the integers BAM can store"
    if kind == b"f":
        return _float_problem(value)
    return None


def _float_problem(text: bytes) -> str | None:
    """A single-precision float: the spec's pattern (no nan/inf), and a value float32 can hold."""
    if not _AUX_VALUE[b"f"].match(text):
        return "is not a decimal number"
    number = float(text)
    mantissa = text.lower().split(b"e")[0]
    if math.isinf(number):
        return "is too large for a single-precision float"
    try:
        stored = struct.unpack("<f", struct.pack("<f", number))[0]
    except OverflowError:
        return "is too large for a single-precision float"
    if stored == 0.0 and mantissa.strip(b"+-.0"):
        return "is too close to zero for a single-precision float (it would be stored as 0)"
    return None


def _check_base_modifications(fields: dict[bytes, bytes], flags: int, seq: bytes, number: int) -> None:
    """SAMtags 1.7: MM positions stay within SEQ, ML has one probability per call, MN equals the SEQ length."""
    mm = fields[b"MM"]
    if mm[3:4] != b"Z":
        raise FormatError("SAM_MM_INVALID", f"line {number}: the base-modification tag {mm[:2].decode()} must be of "
                          "type Z", number)
    if b"MN" in fields:
        mn = fields[b"MN"]
        if mn[3:4] != b"i":
            raise FormatError("SAM_MN_INVALID", f"line {number}: MN (sequence length the modifications refer to) "
                              "must be an integer (type i)", number)
        if int(mn[5:]) != len(seq):
            raise FormatError("SAM_MN_LENGTH_MISMATCH", f"line {number}: the base modifications (MM) were written for "
                              f"a {int(mn[5:])}-base sequence (MN) but SEQ has {len(seq)} bases; the read was "
                              "probably clipped after modification calling", number)
    value = mm[5:]
    if value and not value.endswith(b";"):
        raise FormatError("SAM_MM_INVALID", f"line {number}: {mm[:2].decode()} must be a list of entries each "
                          "ending with ';'", number)
    bases = seq.upper()
    reverse = bool(flags & 0x10)
    calls = 0
    for entry in value.split(b";")[:-1]:
        match = _MM_ENTRY.match(entry)
        if not match:
            raise FormatError("SAM_MM_INVALID", f"line {number}: {mm[:2].decode()} entry {_show(entry)} is not "
                              "<base><+|-><codes>[.?],<skip>,...", number)
        base, _, codes, _, deltas = match.groups()
        skips = [int(d) for d in deltas.split(b",")[1:]]
        calls += len(skips) * (len(codes) if codes.isalpha() else 1)
        if b"=" in bases:  # '=' hides the base; the bound cannot be checked
            continue
        available = _count_original_bases(bases, base, reverse)
        needed = sum(skips) + len(skips)
        if needed > available:
            raise FormatError("SAM_MM_BEYOND_SEQUENCE", f"line {number}: {mm[:2].decode()} entry {_show(entry)} "
                              f"points at base {base.decode()} number {needed}, but the read has only {available}",
                              number)
    if b"ML" in fields:
        ml = fields[b"ML"]
        if ml[3:4] != b"B" or ml[5:6] != b"C":
            raise FormatError("SAM_ML_INVALID", f"line {number}: {ml[:2].decode()} (modification probabilities) must "
                              "be a B:C array", number)
        probabilities = ml[5:].count(b",")
        if probabilities != calls:
            raise FormatError("SAM_ML_LENGTH_MISMATCH", f"line {number}: {ml[:2].decode()} has {probabilities} "
                              f"probabilities but {mm[:2].decode()} lists {calls} modification calls", number)


def _count_original_bases(bases: bytes, base: bytes, reverse: bool) -> int:
    """How many `base` the read had as sequenced (SEQ is reverse-complemented when FLAG has 0x10)."""
    if base == b"N":
        return len(bases)
    targets = [base] if base != b"U" else [b"T", b"U"]
    if reverse:
        targets = [_COMPLEMENT[t] for t in targets]
    return sum(bases.count(t) for t in set(targets))


def _ensure_local_references(reference_path: str | None) -> None:
    """htslib fetches CRAM references from the EBI when REF_PATH is unset, or from any URL it lists: forbid that."""
    if reference_path:
        os.environ["REF_PATH"] = reference_path
    local = [p for p in _REF_PATH_SPLIT.split(os.environ.get("REF_PATH", "")) if p and not _remote(p)]
    if local:
        os.environ["REF_PATH"] = ":".join(local)
    else:
        os.environ["REF_PATH"] = str(Path(os.environ.get("GENOFLOW_DATA_DIR", ".")) / ".cache" / "ref" / "%s")
    if _remote(os.environ.get("REF_CACHE", "")):
        del os.environ["REF_CACHE"]
    os.environ.setdefault("REF_CACHE", local[0] if local else os.environ["REF_PATH"])


# REF_PATH entries are separated by ':' or '|', except the ':' of a URL scheme or port.
_REF_PATH_SPLIT = re.compile(r"[:|](?!//|\d+(?:/|$))")


def _remote(pattern: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", pattern)) or pattern.startswith("URL=")


def _expand_md5_pattern(pattern: str, md5: str) -> str:
    """htslib's REF_PATH/REF_CACHE syntax: %s is the (rest of the) MD5, %Ns its next N characters."""
    out, rest, i = [], md5, 0
    while i < len(pattern):
        match = re.match(r"%(\d*)s", pattern[i:])
        if match:
            width = int(match.group(1)) if match.group(1) else len(rest)
            out.append(rest[:width])
            rest = rest[width:]
            i += match.end()
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def _md5_available_locally(md5: str) -> bool:
    """Whether htslib would find the reference with this MD5 on local disk (REF_CACHE, then REF_PATH)."""
    patterns = [os.environ.get("REF_CACHE", ""), *_REF_PATH_SPLIT.split(os.environ.get("REF_PATH", ""))]
    for pattern in patterns:
        if not pattern or _remote(pattern):
            continue  # a remote source is never used
        if "%" not in pattern:
            pattern = pattern.rstrip("/") + "/%s"
        if os.path.isfile(_expand_md5_pattern(pattern, md5)):
            return True
    return False


def _fasta_names(reference_fasta: str) -> set[str] | None:
    """Sequence names in the FASTA's .fai index; None when there is no index to read."""
    try:
        with open(reference_fasta + ".fai", encoding="utf-8", errors="replace") as fai:
            return {line.split("\t", 1)[0] for line in fai if line.strip()}
    except OSError:
        return None


def _unavailable_references(header: dict, reference_fasta: str | None) -> list[str]:
    """@SQ names whose sequence htslib could not load from local files (so decoding them would fail or go online)."""
    names = _fasta_names(reference_fasta) if reference_fasta else set()
    if names is None:  # a FASTA without an index: htslib indexes it; trust the caller's reference
        return []
    missing = []
    for sq in header.get("SQ", []):
        name, md5 = str(sq.get("SN", "")), str(sq.get("M5", "")).lower()
        if name in names or (re.fullmatch(r"[0-9a-f]{32}", md5) and _md5_available_locally(md5)):
            continue
        missing.append(name)
    return missing


# A header text larger than this is not read here (htslib still reads it when decoding the records).
_MAX_HEADER_TEXT = 256 * 1024 * 1024
_CRAM_FILE_DEFINITION = 26  # "CRAM", major and minor version, 20-byte file id


def _check_header_text(text: bytes, fmt: str, details: dict | None) -> None:
    """The SAM header rules on a BAM/CRAM header text; `line` is the line within that text.

    Blank lines are skipped, as htslib does; a NUL ends the text (writers pad it with NULs). A reference
    name with a character the spec forbids is accepted with a warning.
    """
    header = _Header()
    header.name_warnings = []
    try:
        for number, line in enumerate(text.split(b"\0", 1)[0].split(b"\n"), start=1):
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                _header_line(line, number, header)
        header.finish()
    except FormatError as exc:
        raise FormatError(exc.reason, f"{fmt.upper()} header: {exc.message}", exc.line) from None
    for warning in header.name_warnings:
        warn(details, warning["reason"], f"{fmt.upper()} header: {warning['message']}", warning["line"])


def _stored_header_text(path: Path, fmt: str) -> bytes | None:
    """The header text exactly as the file stores it; None when it cannot be read here."""
    try:
        return _bam_header_text(path) if fmt == "bam" else _cram_header_text(path)
    except (*DECOMPRESSION_ERRORS, lzma.LZMAError, IndexError, ValueError, struct.error):  # type: ignore[misc]
        return None  # damaged: decoding the file with htslib says what is wrong


def _bam_header_text(path: Path) -> bytes | None:
    """SAMv1 4.2: magic 'BAM\\1', int32 l_text, then the text."""
    with open_decompressed(path) as fh:
        head = fh.read(8)
        if len(head) < 8 or head[:4] != b"BAM\x01":
            return None
        (length,) = struct.unpack("<i", head[4:])
        if not 0 <= length <= _MAX_HEADER_TEXT:
            return None
        text = fh.read(length)
    return text if len(text) == length else None


def _itf8(data: bytes, i: int) -> tuple[int, int]:
    """CRAM ITF8 integer at data[i]: (value, offset after it)."""
    first = data[i]
    if first < 0x80:
        return first, i + 1
    if first < 0xC0:
        return ((first & 0x3F) << 8) | data[i + 1], i + 2
    if first < 0xE0:
        return ((first & 0x1F) << 16) | int.from_bytes(data[i + 1:i + 3], "big"), i + 3
    if first < 0xF0:
        return ((first & 0x0F) << 24) | int.from_bytes(data[i + 1:i + 4], "big"), i + 4
    return ((first & 0x0F) << 28) | (int.from_bytes(data[i + 1:i + 4], "big") << 4) | (data[i + 4] & 0x0F), i + 5


def _ltf8_end(data: bytes, i: int) -> int:
    """Offset after the CRAM LTF8 integer at data[i] (its value is not needed)."""
    first, extra = data[i], 0
    while extra < 8 and first & (0x80 >> extra):
        extra += 1
    return i + 1 + extra


def _cram_header_text(path: Path) -> bytes | None:
    """CRAM 2.x/3.x: the first container's first block (content type FILE_HEADER) holds int32 l_text and the text.

    Raw, gzip, bzip2 and lzma blocks are read; any other codec (or CRAM 1.x/4.x) returns None.
    """
    with open(path, "rb") as fh:
        head = fh.read(_CRAM_FILE_DEFINITION + 512)
        major = head[4]
        if head[:4] != b"CRAM" or major not in (2, 3):
            return None
        i = _CRAM_FILE_DEFINITION + 4  # int32 container length
        for _ in range(4):  # reference id, start, span, number of records
            _, i = _itf8(head, i)
        i = _ltf8_end(head, i) if major >= 3 else _itf8(head, i)[1]  # record counter
        i = _ltf8_end(head, i)  # bases
        _, i = _itf8(head, i)  # number of blocks
        landmarks, i = _itf8(head, i)
        for _ in range(landmarks):
            _, i = _itf8(head, i)
        if major >= 3:
            i += 4  # container CRC32
        method, content_type = head[i], head[i + 1]
        _, i = _itf8(head, i + 2)  # content id
        size, i = _itf8(head, i)
        raw_size, i = _itf8(head, i)
        if content_type != 0 or not 0 <= size <= _MAX_HEADER_TEXT or raw_size > _MAX_HEADER_TEXT:
            return None
        fh.seek(i)
        data = fh.read(size)
    if len(data) < size:
        return None
    if method == 1:
        data = zlib.decompressobj(wbits=31).decompress(data, raw_size + 1)
    elif method == 2:
        data = bz2.BZ2Decompressor().decompress(data, raw_size + 1)
    elif method == 3:
        data = lzma.LZMADecompressor().decompress(data, raw_size + 1)
    elif method != 0:
        return None
    (length,) = struct.unpack("<i", data[:4])
    text = data[4:4 + length]
    return text if 0 <= length == len(text) else None


def _binary_cigar_query(segment: pysam.AlignedSegment, cigar: str, record: int) -> int:
    """The query length a decoded record's CIGAR implies; its clips must be at the ends (SAMv1 1.4.6)."""
    if "H" in cigar or "S" in cigar:
        encoded = cigar.encode()
        _check_clips(_CIGAR_OP.findall(encoded), encoded, record, f"record {record}")
    return segment.infer_query_length() or 0


def _check_binary_mn(mn: object, length: int, record: int) -> None:
    """SAMtags 1.7: MN, when given with MM, is the SEQ length the modifications were called on."""
    if not isinstance(mn, int):
        raise FormatError("SAM_MN_INVALID", f"record {record}: MN (sequence length the modifications refer to) "
                          "must be an integer", record)
    if mn != length:
        raise FormatError("SAM_MN_LENGTH_MISMATCH", f"record {record}: the base modifications (MM) were written for "
                          f"a {mn}-base sequence (MN) but SEQ has {length} bases; the read was probably clipped "
                          "after modification calling", record)


# htslib's SAM_* field bits: every field but SEQ (0x200), the one that needs the reference to decode.
_ALL_FIELDS_BUT_SEQ = 0x1FFF & ~0x200
# The EOF container is "optional in version preceding 2.1 but required in later versions" (CRAM 2.1,
# "End of file marker"); CRAM 3.0 section 9 keeps it "required in version 3 or later".
CRAM_EOF_REQUIRED_FROM = (2, 1)


def _cram_without_eof(path: Path, details: dict | None) -> None:
    """No EOF container: a truncated copy from CRAM 2.1 on; a CRAM 1.x/2.0 file may simply not have one."""
    with open(path, "rb") as fh:
        definition = fh.read(6)
    version = (definition[4], definition[5]) if len(definition) == 6 and definition[:4] == b"CRAM" else None
    if version is None or version >= CRAM_EOF_REQUIRED_FROM:
        which = f"CRAM {version[0]}.{version[1]}" if version else "CRAM"
        raise FormatError("CRAM_MISSING_EOF", f"the {which} file lacks its end-of-file container (required from "
                          "CRAM 2.1 on): it is truncated")
    if details is not None:  # optional before 2.1, so not a deviation: noted, the records are still read to the end
        details["cram_eof_container"] = f"absent (optional in CRAM {version[0]}.{version[1]})"


def validate_bam_or_cram(path: Path, fmt: str, reference_fasta: str | None = None,
                         reference_path: str | None = None, details: dict | None = None,
                         progress: Callable[[int, int | None], None] | None = None) -> int:
    """Decode every record with pysam; check the end-of-file marker first (a cheap truncation test).

    `progress`, if given, is called every PROGRESS_EVERY_RECORDS records with (bytes of the file read,
    records so far): the BGZF block offset for BAM, the container offset for CRAM.

    For CRAM, references that are not on local disk are never fetched: the records are then decoded
    without their sequences, and `details["cram_references_unavailable"]` lists the @SQ names.
    """
    import pysam

    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 38))
        tail = fh.read()
    if fmt == "bam" and not tail.endswith(BGZF_EOF):
        raise FormatError("BAM_MISSING_EOF", "the BAM file lacks its BGZF end-of-file block: it is truncated",
                          error_code=ErrorCode.VALIDATION_ERROR)
    if fmt == "cram":
        _ensure_local_references(reference_path)
        if CRAM_EOF_SIGNATURE not in tail:
            _cram_without_eof(path, details)
    mode = "rb" if fmt == "bam" else "rc"
    text = _stored_header_text(path, fmt)
    if text is not None:  # before htslib parses it: htslib refuses some of these headers with a bare error
        _check_header_text(text, fmt, details)
    records = 0
    missing: list[str] = []
    try:
        save = pysam.set_verbosity(0)
        try:
            options = None
            if fmt == "cram":
                with pysam.AlignmentFile(str(path), mode, check_sq=False, reference_filename=reference_fasta) as aln:
                    missing = _unavailable_references(aln.header.to_dict(), reference_fasta)
                if missing:
                    options = [f"required_fields={_ALL_FIELDS_BUT_SEQ:#x}"]
                    if details is not None:
                        details["cram_references_unavailable"] = missing
            with pysam.AlignmentFile(str(path), mode, check_sq=False, reference_filename=reference_fasta,
                                     format_options=options) as aln:
                if text is None:  # a codec read here does not know: htslib's (rebuilt) text, same rules
                    _check_header_text(str(aln.header).encode(), fmt, details)
                cigars: dict[str, int] = {}  # CIGAR -> query length, its clips checked once per distinct CIGAR
                shift = 16 if fmt == "bam" else 0  # BAM's tell() is a BGZF virtual offset, CRAM's the file's
                for segment in aln.fetch(until_eof=True):
                    records += 1
                    if progress is not None and not records % PROGRESS_EVERY_RECORDS:
                        progress(aln.tell() >> shift, records)
                    cigar = segment.cigarstring
                    length = segment.query_length  # 0 when SEQ is '*'
                    if cigar:
                        query = cigars.get(cigar)
                        if query is None:
                            query = _binary_cigar_query(segment, cigar, records)
                            if len(cigars) < _CIGAR_CACHE_SIZE:
                                cigars[cigar] = query
                        if length and query != length:
                            raise FormatError("SAM_CIGAR_SEQ_LENGTH_MISMATCH", f"record {records}: CIGAR implies "
                                              f"{query} bases, SEQ has {length}", records)
                    if length and segment.has_tag("MN") and (segment.has_tag("MM") or segment.has_tag("Mm")):
                        _check_binary_mn(segment.get_tag("MN"), length, records)
        finally:
            pysam.set_verbosity(save)
    except FormatError:
        raise
    except (OSError, ValueError, NotImplementedError) as exc:  # htslib: damaged block, or plain gzip, not BGZF
        reason = "BAM_DECODE_ERROR" if fmt == "bam" else "CRAM_DECODE_ERROR"
        note = ""
        if missing:
            note = (f" (the reference sequences {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} are not "
                    "available locally, so only the record structure could be read; add them to the reference "
                    "cache to check the sequences)")
        raise FormatError(reason, f"{fmt.upper()} cannot be decoded after {records} records: "
                          f"{library_error(exc)}{note}",
                          records + 1) from None
    return records
