"""SAM (checked line by line against the SAM specification), BAM and CRAM (decoded with pysam).

BAM files must end with the BGZF EOF block (a missing one means a truncated
copy); CRAM decoding uses local references only (REF_PATH), never the network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

from genoflow_dagster.errors import ErrorCode
from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines

BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# The CRAM EOF container (v2.1: 30 bytes, v3: 38 with CRC32) has reference id -1 and position 4542278 ("EOF").
CRAM_EOF_SIGNATURE = b"\xff\xff\xff\xff\x0f\xe0EOF\x00"

_HEADER_TAG = re.compile(rb"^@[A-Za-z][A-Za-z]$")
_FIELD = re.compile(rb"^[A-Za-z][A-Za-z0-9]:")
_CIGAR = re.compile(rb"^(\*|([0-9]+[MIDNSHPX=])+)$")
_CIGAR_OP = re.compile(rb"([0-9]+)([MIDNSHPX=])")
_QNAME = re.compile(rb"^[!-?A-~]{1,254}$|^\*$")
_SEQ = re.compile(rb"^(\*|[A-Za-z=.]+)$")
_TAG = re.compile(rb"^[A-Za-z][A-Za-z0-9]:[AifZHB]:")
# SAM spec 1.2.1: reference names; also used for @SQ SN, AN and RNAME/RNEXT.
_REF_NAME = re.compile(rb"^[0-9A-Za-z!#$%&+./:;?@^_|~\-][0-9A-Za-z!#$%&*+./:;=?@^_|~\-]*$")
_AUX_VALUE = {
    b"A": re.compile(rb"^[!-~]$"),
    b"i": re.compile(rb"^[-+]?[0-9]+$"),
    b"f": re.compile(rb"^[-+]?([0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?|inf|nan|infinity)$", re.IGNORECASE),
    b"Z": re.compile(rb"^[ !-~]*$"),
    b"H": re.compile(rb"^([0-9A-F]{2})*$"),
}
_B_ARRAY = re.compile(rb"^([cCsSiI](,[-+]?[0-9]+)*|f(,[-+]?([0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?|inf|nan))*)$",
                      re.IGNORECASE)
_INT_RANGES = {b"c": (-128, 127), b"C": (0, 255), b"s": (-32768, 32767), b"S": (0, 65535),
               b"i": (-(2**31), 2**31 - 1), b"I": (0, 2**32 - 1)}
_DATE = re.compile(rb"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$")


def validate_sam(stream: BinaryIO, details: dict) -> int:
    references: dict[bytes, int] = {}
    records = 0
    in_header = True
    for number, line in numbered_lines(stream):
        if not line:
            raise FormatError("SAM_BLANK_LINE", f"blank line at line {number}", number)
        if line.startswith(b"@"):
            if not in_header:
                raise FormatError("SAM_HEADER_AFTER_RECORDS", f"header line {number} follows alignment records",
                                  number)
            _header_line(line, number, references)
            continue
        in_header = False
        _alignment_line(line, number, references)
        records += 1
    return records


def _header_line(line: bytes, number: int, references: dict[bytes, int]) -> None:
    fields = line.split(b"\t")
    tag = fields[0]
    if not _HEADER_TAG.match(tag):
        raise FormatError("SAM_HEADER_TAG_INVALID", f"header line {number} has an invalid record type {tag!r}", number)
    if tag == b"@CO":
        return
    values: dict[bytes, bytes] = {}
    for field in fields[1:]:
        if not _FIELD.match(field):
            raise FormatError("SAM_HEADER_FIELD_INVALID",
                              f"header line {number}: field {field[:20]!r} is not TAG:VALUE", number)
        values[field[:2]] = field[3:]
    if tag == b"@HD":
        if b"VN" not in values:
            raise FormatError("SAM_HD_MISSING_VN", f"@HD at line {number} lacks the VN (format version) field", number)
        if not re.match(rb"^[0-9]+\.[0-9]+$", values[b"VN"]):
            raise FormatError("SAM_HD_VN_INVALID", f"@HD at line {number}: VN must look like 1.6", number)
        if b"SO" in values and values[b"SO"] not in (b"unknown", b"unsorted", b"queryname", b"coordinate"):
            raise FormatError("SAM_HD_SO_INVALID", f"@HD at line {number}: SO must be unknown, unsorted, "
                              "queryname or coordinate", number)
        if b"GO" in values and values[b"GO"] not in (b"none", b"query", b"reference"):
            raise FormatError("SAM_HD_GO_INVALID", f"@HD at line {number}: GO must be none, query or reference",
                              number)
        if b"SS" in values and not re.match(rb"^(unknown|unsorted|queryname|coordinate):[A-Za-z0-9_-]+$",
                                            values[b"SS"]):
            raise FormatError("SAM_HD_SS_INVALID", f"@HD at line {number}: SS must be <sort order>:<sub-sort>",
                              number)
    if tag == b"@PG" and b"ID" not in values:
        raise FormatError("SAM_PG_MISSING_ID", f"@PG at line {number} lacks the ID field", number)
    if tag == b"@RG" and b"DT" in values and not _DATE.match(values[b"DT"]):
        raise FormatError("SAM_RG_DATE_INVALID", f"@RG at line {number}: DT must be an ISO 8601 date", number)
    if tag == b"@SQ":
        if b"SN" not in values or b"LN" not in values:
            raise FormatError("SAM_SQ_MISSING_FIELD", f"@SQ at line {number} needs both SN and LN", number)
        if not values[b"LN"].isdigit() or not 1 <= int(values[b"LN"]) <= 2**31 - 1:
            raise FormatError("SAM_SQ_LENGTH_INVALID", f"@SQ at line {number}: LN must be 1..2^31-1", number)
        if not _REF_NAME.match(values[b"SN"]):
            raise FormatError("SAM_SQ_NAME_INVALID", f"@SQ at line {number}: SN {values[b'SN'][:30]!r} has a character "
                              "reference names cannot contain", number)
        for alt in values.get(b"AN", b"").split(b",") if b"AN" in values else []:
            if not _REF_NAME.match(alt):
                raise FormatError("SAM_SQ_NAME_INVALID", f"@SQ at line {number}: alternative name {alt[:30]!r} is "
                                  "invalid", number)
        if b"AH" in values and values[b"AH"] != b"*" and not _REF_NAME.match(values[b"AH"]):
            raise FormatError("SAM_SQ_AH_INVALID", f"@SQ at line {number}: AH must be '*' or a reference name", number)
        if b"TP" in values and values[b"TP"] not in (b"linear", b"circular"):
            raise FormatError("SAM_SQ_TP_INVALID", f"@SQ at line {number}: TP must be linear or circular", number)
        if values[b"SN"] in references:
            raise FormatError("SAM_SQ_DUPLICATE", f"@SQ at line {number} repeats reference {values[b'SN']!r}",
                              number)
        references[values[b"SN"]] = int(values[b"LN"])
    if tag == b"@RG" and b"ID" not in values:
        raise FormatError("SAM_RG_MISSING_ID", f"@RG at line {number} lacks the ID field", number)


def _int(value: bytes, low: int, high: int, reason: str, what: str, number: int) -> int:
    try:
        result = int(value)
    except ValueError:
        raise FormatError(reason, f"line {number}: {what} {value[:20]!r} is not an integer", number) from None
    if not low <= result <= high:
        raise FormatError(reason, f"line {number}: {what} {result} is outside {low}..{high}", number)
    return result


def _alignment_line(line: bytes, number: int, references: dict[bytes, int]) -> None:
    fields = line.split(b"\t")
    if len(fields) < 11:
        raise FormatError("SAM_TOO_FEW_FIELDS", f"line {number} has {len(fields)} fields; 11 are mandatory", number)
    qname, flag, rname, pos, mapq, cigar, rnext, pnext, tlen, seq, qual = fields[:11]
    if not _QNAME.match(qname):
        raise FormatError("SAM_QNAME_INVALID", f"line {number}: read name {qname[:30]!r} is invalid", number)
    _int(flag, 0, 65535, "SAM_FLAG_INVALID", "FLAG", number)
    _int(pos, 0, 2**31 - 1, "SAM_POS_INVALID", "POS", number)
    _int(mapq, 0, 255, "SAM_MAPQ_INVALID", "MAPQ", number)
    _int(pnext, 0, 2**31 - 1, "SAM_PNEXT_INVALID", "PNEXT", number)
    _int(tlen, -(2**31) + 1, 2**31 - 1, "SAM_TLEN_INVALID", "TLEN", number)
    if rname != b"*" and references and rname not in references:
        raise FormatError("SAM_RNAME_UNDECLARED", f"line {number}: reference {rname!r} has no @SQ line", number)
    if rnext not in (b"*", b"=") and references and rnext not in references:
        raise FormatError("SAM_RNEXT_UNDECLARED", f"line {number}: mate reference {rnext!r} has no @SQ line", number)
    if not _CIGAR.match(cigar):
        raise FormatError("SAM_CIGAR_INVALID", f"line {number}: CIGAR {cigar[:30]!r} is malformed", number)
    if not _SEQ.match(seq):
        raise FormatError("SAM_SEQ_INVALID", f"line {number}: SEQ contains characters outside [A-Za-z=.]", number)
    if cigar != b"*" and seq != b"*":
        query = sum(int(n) for n, op in _CIGAR_OP.findall(cigar) if op in b"MIS=X")
        if query != len(seq):
            raise FormatError("SAM_CIGAR_SEQ_LENGTH_MISMATCH",
                              f"line {number}: CIGAR implies {query} bases but SEQ has {len(seq)}", number)
    if qual != b"*":
        if seq == b"*":
            raise FormatError("SAM_QUAL_WITHOUT_SEQ", f"line {number}: QUAL is given but SEQ is '*'", number)
        if len(qual) != len(seq):
            raise FormatError("SAM_QUAL_LENGTH_MISMATCH",
                              f"line {number}: QUAL has {len(qual)} characters, SEQ has {len(seq)}", number)
        if qual.translate(None, bytes(range(33, 127))):
            raise FormatError("SAM_QUAL_INVALID_CHARACTER", f"line {number}: QUAL has bytes outside 33..126", number)
    if rname != b"*" and not _REF_NAME.match(rname):
        raise FormatError("SAM_RNAME_INVALID", f"line {number}: RNAME {rname[:30]!r} is not a valid name", number)
    if rnext not in (b"*", b"=") and not _REF_NAME.match(rnext):
        raise FormatError("SAM_RNEXT_INVALID", f"line {number}: RNEXT {rnext[:30]!r} is not a valid name", number)
    for tag in fields[11:]:
        if not _TAG.match(tag):
            raise FormatError("SAM_TAG_INVALID", f"line {number}: optional field {tag[:20]!r} is not TAG:TYPE:VALUE",
                              number)
        kind, value = tag[3:4], tag[5:]
        if kind == b"B":
            ok = bool(_B_ARRAY.match(value)) and value[:1] != b""
            if ok and value[:1] in _INT_RANGES:
                low, high = _INT_RANGES[value[:1]]
                ok = all(low <= int(x) <= high for x in value.split(b",")[1:])
        elif kind == b"i":
            ok = bool(_AUX_VALUE[kind].match(value)) and -(2**31) <= int(value) <= 2**32 - 1
        else:
            ok = bool(_AUX_VALUE[kind].match(value))
        if not ok:
            raise FormatError("SAM_TAG_VALUE_INVALID", f"line {number}: {tag[:2].decode(errors='replace')}:"
                              f"{kind.decode()} value {value[:30]!r} does not fit its type", number)


def _ensure_local_references(reference_path: str | None) -> None:
    """htslib fetches CRAM references from the EBI when REF_PATH is unset: forbid that."""
    if reference_path:
        os.environ["REF_PATH"] = reference_path
    os.environ.setdefault("REF_PATH", str(Path(os.environ.get("GENOFLOW_DATA_DIR", ".")) / ".cache" / "ref" / "%s"))
    os.environ.setdefault("REF_CACHE", os.environ["REF_PATH"])


def validate_bam_or_cram(path: Path, fmt: str, reference_fasta: str | None = None,
                         reference_path: str | None = None) -> int:
    """Decode every record with pysam; check the end-of-file marker first (a cheap truncation test)."""
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
            raise FormatError("CRAM_MISSING_EOF", "the CRAM file lacks its end-of-file container: it is truncated")
    mode = "rb" if fmt == "bam" else "rc"
    records = 0
    try:
        save = pysam.set_verbosity(0)
        try:
            with pysam.AlignmentFile(str(path), mode, check_sq=False, reference_filename=reference_fasta) as aln:
                for segment in aln.fetch(until_eof=True):
                    records += 1
                    if segment.cigartuples and segment.query_sequence:
                        query = segment.infer_query_length(always=False)
                        if query is not None and query != len(segment.query_sequence):
                            raise FormatError("SAM_CIGAR_SEQ_LENGTH_MISMATCH",
                                              f"record {records}: CIGAR implies {query} bases, SEQ has "
                                              f"{len(segment.query_sequence)}", records)
        finally:
            pysam.set_verbosity(save)
    except FormatError:
        raise
    except (OSError, ValueError, NotImplementedError) as exc:  # htslib: damaged block, or plain gzip, not BGZF
        reason = "BAM_DECODE_ERROR" if fmt == "bam" else "CRAM_DECODE_ERROR"
        raise FormatError(reason, f"{fmt.upper()} cannot be decoded after {records} records: {exc}",
                          records + 1) from None
    return records
