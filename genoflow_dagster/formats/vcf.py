"""VCF 4.0-4.4: meta lines, the #CHROM header, and each record's columns, alleles and typed fields.

Checks the rules a downstream tool relies on: fixed columns, POS, REF/ALT
alphabets, QUAL, INFO/FORMAT keys declared in the header and values of the
declared type and count, GT syntax, and records sorted within each contig
(a contig does not reappear after another one started).
"""

from __future__ import annotations

import re
from typing import BinaryIO

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines, printable

FIXED = [b"#CHROM", b"POS", b"ID", b"REF", b"ALT", b"QUAL", b"FILTER", b"INFO"]
_REF = re.compile(rb"^[ACGTNacgtn]+$")
_ALT_BASES = re.compile(rb"^[ACGTNacgtn*]+$")
_SYMBOLIC = re.compile(rb"^<[^<>,\s]+>$")
_BREAKEND = re.compile(rb"^([ACGTNacgtn]*[\[\]][^\[\]]+[\[\]][ACGTNacgtn]*|\.[ACGTNacgtn]+|[ACGTNacgtn]+\.)$")
_GT = re.compile(rb"^[/|]?(\.|[0-9]+)([/|](\.|[0-9]+))*$")
_META = re.compile(rb"^##(INFO|FORMAT)=<(.*)>$")
_META_FIELD = re.compile(rb'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^,]*)')
_FLOAT = re.compile(rb"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan|INF|NAN|Inf|NaN)$")


# Keys the specification reserves (VCF 4.2-4.4 section 1.6.1 / 1.6.2): (Number, Type).
# They may be used without a header line; a header line that redefines them is an error.
RESERVED_INFO: dict[bytes, tuple[bytes, bytes]] = {
    b"AA": (b"1", b"String"), b"AC": (b"A", b"Integer"), b"AD": (b"R", b"Integer"), b"ADF": (b"R", b"Integer"),
    b"ADR": (b"R", b"Integer"), b"AF": (b"A", b"Float"), b"AN": (b"1", b"Integer"), b"BQ": (b"1", b"Float"),
    b"CIGAR": (b"A", b"String"), b"DB": (b"0", b"Flag"), b"DP": (b"1", b"Integer"), b"END": (b"1", b"Integer"),
    b"H2": (b"0", b"Flag"), b"H3": (b"0", b"Flag"), b"MQ": (b"1", b"Float"), b"MQ0": (b"1", b"Integer"),
    b"NS": (b"1", b"Integer"), b"SB": (b"4", b"Integer"), b"SOMATIC": (b"0", b"Flag"),
    b"VALIDATED": (b"0", b"Flag"), b"1000G": (b"0", b"Flag"),
}
RESERVED_FORMAT: dict[bytes, tuple[bytes, bytes]] = {
    b"AD": (b"R", b"Integer"), b"ADF": (b"R", b"Integer"), b"ADR": (b"R", b"Integer"), b"DP": (b"1", b"Integer"),
    b"EC": (b"A", b"Integer"), b"FT": (b"1", b"String"), b"GL": (b"G", b"Float"), b"GP": (b"G", b"Float"),
    b"GQ": (b"1", b"Integer"), b"GT": (b"1", b"String"), b"HQ": (b"2", b"Integer"), b"MQ": (b"1", b"Integer"),
    b"PL": (b"G", b"Integer"), b"PQ": (b"1", b"Integer"), b"PS": (b"1", b"Integer"),
}
_STRUCTURED = re.compile(rb"^##([A-Za-z0-9_.\-]+)=<")
_NEEDS_DESCRIPTION = {b"INFO", b"FORMAT", b"FILTER", b"ALT"}


def parse_structured(line: bytes, number: int) -> tuple[bytes, dict[bytes, bytes], set[bytes]]:
    """`##KEY=<k=v,k="quoted, text",...>` -> (KEY, fields, names of quoted fields); strict about quoting."""
    match = _STRUCTURED.match(line)
    assert match
    body = line[match.end():]
    if not body.endswith(b">"):
        raise FormatError("VCF_META_NOT_CLOSED", f"line {number}: the '<' of the meta line is never closed", number)
    body = body[:-1]
    fields: dict[bytes, bytes] = {}
    quoted: set[bytes] = set()
    i = 0
    while i < len(body):
        eq = body.find(b"=", i)
        if eq < 0:
            raise FormatError("VCF_META_MALFORMED", f"line {number}: field {body[i:i + 20]!r} is not key=value",
                              number)
        key = body[i:eq]
        if not key or b'"' in key or b"," in key or b" " in key:
            raise FormatError("VCF_META_MALFORMED", f"line {number}: invalid field name {key[:20]!r}", number)
        j = eq + 1
        if body[j:j + 1] == b'"':
            j += 1
            value = bytearray()
            while j < len(body) and body[j:j + 1] != b'"':
                if body[j:j + 1] == b"\\" and j + 1 < len(body):
                    j += 1
                value += body[j:j + 1]
                j += 1
            if j >= len(body):
                raise FormatError("VCF_META_UNTERMINATED_QUOTE", f"line {number}: a quoted value is never closed",
                                  number)
            j += 1
            if j < len(body) and body[j:j + 1] != b",":
                raise FormatError("VCF_META_UNESCAPED_QUOTE",
                                  f"line {number}: text follows a closing quote (unescaped '\"' inside?)", number)
            fields[key] = bytes(value)
            quoted.add(key)
        else:
            end = body.find(b",", j)
            end = len(body) if end < 0 else end
            value = body[j:end]
            if b'"' in value:
                raise FormatError("VCF_META_UNESCAPED_QUOTE", f"line {number}: '\"' inside an unquoted value", number)
            fields[key] = value
            j = end
        if key in fields and list(fields).count(key) > 1:
            raise FormatError("VCF_META_MALFORMED", f"line {number}: field {key.decode()} repeats", number)
        i = j + 1 if j < len(body) else j
    kind = match.group(1)
    if kind in _NEEDS_DESCRIPTION | {b"contig", b"SAMPLE", b"PEDIGREE", b"META"} and b"ID" not in fields:
        raise FormatError("VCF_META_MISSING_FIELD", f"##{kind.decode()} at line {number} lacks ID", number)
    ident = fields.get(b"ID", b"x")
    if not ident or re.search(rb"[\s,]", ident):
        raise FormatError("VCF_META_ID_INVALID",
                          f"line {number}: ID {ident[:30]!r} is empty or contains whitespace or a comma", number)
    if kind in _NEEDS_DESCRIPTION:
        if b"Description" not in fields:
            raise FormatError("VCF_META_MISSING_FIELD", f"##{kind.decode()} at line {number} lacks Description",
                              number)
        if b"Description" not in quoted:
            raise FormatError("VCF_META_DESCRIPTION_UNQUOTED",
                              f"line {number}: Description must be surrounded by double quotes", number)
    return kind, fields, quoted


def _declaration(line: bytes, number: int) -> tuple[bytes, bytes, bytes, bytes]:
    match = _META.match(line)
    assert match
    _, fields, _ = parse_structured(line, number)
    for key in (b"ID", b"Number", b"Type"):
        if key not in fields:
            raise FormatError("VCF_META_MISSING_FIELD",
                              f"##{match.group(1).decode()} at line {number} lacks {key.decode()}", number)
    kind = fields[b"Type"]
    allowed = {b"Integer", b"Float", b"Flag", b"Character", b"String"}
    if match.group(1) == b"FORMAT":
        allowed.discard(b"Flag")
    if kind not in allowed:
        raise FormatError("VCF_META_BAD_TYPE", f"line {number}: Type={kind.decode(errors='replace')} is not allowed",
                          number)
    number_field = fields[b"Number"]
    if not (number_field.isdigit() or number_field in (b"A", b"R", b"G", b".")):
        raise FormatError("VCF_META_BAD_NUMBER", f"line {number}: Number={number_field.decode(errors='replace')} "
                          "is not an integer, A, R, G or '.'", number)
    reserved = (RESERVED_INFO if match.group(1) == b"INFO" else RESERVED_FORMAT).get(fields[b"ID"])
    if reserved is not None and reserved != (number_field, kind):
        raise FormatError("VCF_META_RESERVED_MISMATCH",
                          f"line {number}: {match.group(1).decode()} {fields[b'ID'].decode()} is reserved as "
                          f"Number={reserved[0].decode()}, Type={reserved[1].decode()}; the header says "
                          f"Number={number_field.decode(errors='replace')}, Type={kind.decode(errors='replace')}",
                          number)
    return match.group(1), fields[b"ID"], number_field, kind


def _check_value(value: bytes, kind: bytes, where: str, number: int) -> None:
    for item in value.split(b","):
        if item == b".":
            continue
        if kind == b"Integer" and not re.match(rb"^[+-]?\d+$", item):
            raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: {where} value {item[:20]!r} is not an "
                              "Integer", number)
        if kind == b"Float" and not _FLOAT.match(item):
            raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: {where} value {item[:20]!r} is not a "
                              "Float", number)
        if kind == b"Character" and len(item) != 1:
            raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: {where} value {item[:20]!r} is not a "
                              "single Character", number)


def _check_count(values: bytes, count: bytes, alts: int, where: str, number: int) -> None:
    n = values.count(b",") + 1
    expected = int(count) if count.isdigit() else alts if count == b"A" else alts + 1 if count == b"R" else None
    if expected is not None and expected > 0 and n != expected and values != b".":
        raise FormatError("VCF_VALUE_COUNT_MISMATCH",
                          f"line {number}: {where} has {n} value(s), the header declares {expected}", number)


def validate_vcf(stream: BinaryIO, details: dict) -> int:
    lines = numbered_lines(stream)
    first = next(lines, None)
    if first is None or not first[1].startswith(b"##fileformat=VCFv"):
        raise FormatError("VCF_FILEFORMAT_MISSING", "the first line must be ##fileformat=VCFv4.x", 1)
    version = first[1].split(b"=", 1)[1]
    if version not in (b"VCFv4.0", b"VCFv4.1", b"VCFv4.2", b"VCFv4.3", b"VCFv4.4", b"VCFv4.5"):
        raise FormatError("VCF_VERSION_UNSUPPORTED", f"unsupported VCF version {version.decode(errors='replace')}", 1)
    details["vcf_version"] = version.decode()
    info: dict[bytes, tuple[bytes, bytes]] = {}
    fmt: dict[bytes, tuple[bytes, bytes]] = {}
    samples = 0
    header_seen = False
    records = 0
    contig_order: dict[bytes, int] = {}
    last_chrom, last_pos = None, 0
    for number, line in lines:
        if not header_seen:
            if line.startswith(b"##"):
                if not printable(line):
                    raise FormatError("VCF_META_INVALID_CHARACTER", f"line {number} has control characters", number)
                if _META.match(line):
                    kind, key, count, typ = _declaration(line, number)
                    (info if kind == b"INFO" else fmt)[key] = (count, typ)
                elif _STRUCTURED.match(line):
                    parse_structured(line, number)
                else:
                    key, eq, value = line[2:].partition(b"=")
                    if not eq or not key or not value:
                        raise FormatError("VCF_META_MALFORMED", f"meta line {number} is not ##key=value", number)
                continue
            if not line.startswith(b"#CHROM"):
                raise FormatError("VCF_HEADER_MISSING", f"line {number}: expected the #CHROM header line", number)
            columns = line.split(b"\t")
            if columns[:8] != FIXED:
                raise FormatError("VCF_HEADER_COLUMNS", f"line {number}: the header must start with the 8 fixed "
                                  "columns, tab-separated", number)
            if len(columns) > 8:
                if columns[8] != b"FORMAT" or len(columns) == 9:
                    raise FormatError("VCF_HEADER_COLUMNS", f"line {number}: sample columns need FORMAT first",
                                      number)
                names = columns[9:]
                if len(set(names)) != len(names):
                    raise FormatError("VCF_DUPLICATE_SAMPLE", f"line {number}: sample names repeat", number)
                samples = len(names)
            header_seen = True
            continue
        if not line:
            raise FormatError("VCF_BLANK_LINE", f"blank line at line {number}", number)
        fields = line.split(b"\t")
        expected = 8 + (samples + 1 if samples else 0)
        if len(fields) != expected and not (samples == 0 and len(fields) == 8):
            raise FormatError("VCF_COLUMN_COUNT", f"line {number} has {len(fields)} columns, expected {expected}",
                              number)
        chrom, pos, _id, ref, alt, qual, _filter, info_field = fields[:8]
        if not chrom or b" " in chrom or chrom.startswith(b"<"):
            raise FormatError("VCF_CHROM_INVALID", f"line {number}: CHROM {chrom[:30]!r} is invalid", number)
        if not pos.isdigit():
            raise FormatError("VCF_POS_INVALID", f"line {number}: POS {pos[:20]!r} is not a non-negative integer",
                              number)
        position = int(pos)
        if not _REF.match(ref):
            raise FormatError("VCF_REF_INVALID", f"line {number}: REF {ref[:30]!r} has characters outside ACGTN",
                              number)
        alts = [] if alt == b"." else alt.split(b",")
        for allele in alts:
            if not (_ALT_BASES.match(allele) or _SYMBOLIC.match(allele) or _BREAKEND.match(allele)):
                raise FormatError("VCF_ALT_INVALID", f"line {number}: ALT allele {allele[:30]!r} is invalid", number)
            if allele == ref:
                raise FormatError("VCF_ALT_EQUALS_REF", f"line {number}: ALT allele equals REF", number)
        if qual != b"." and not _FLOAT.match(qual):
            raise FormatError("VCF_QUAL_INVALID", f"line {number}: QUAL {qual[:20]!r} is not a number", number)
        if info_field != b".":
            for item in info_field.split(b";"):
                key, _, value = item.partition(b"=")
                if not key:
                    raise FormatError("VCF_INFO_MALFORMED", f"line {number}: empty INFO entry", number)
                if key not in info and key in RESERVED_INFO:
                    info[key] = RESERVED_INFO[key]
                if key not in info:
                    raise FormatError("VCF_INFO_UNDECLARED",
                                      f"line {number}: INFO key {key.decode(errors='replace')} has no ##INFO header",
                                      number)
                count, typ = info[key]
                if typ == b"Flag" and value:
                    raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: Flag {key.decode()} has a value",
                                      number)
                if typ != b"Flag":
                    _check_value(value, typ, f"INFO/{key.decode(errors='replace')}", number)
                    _check_count(value, count, len(alts), f"INFO/{key.decode(errors='replace')}", number)
        if samples:
            keys = fields[8].split(b":")
            for key in keys:
                if key not in fmt and key in RESERVED_FORMAT:
                    fmt[key] = RESERVED_FORMAT[key]
                if key not in fmt:
                    raise FormatError("VCF_FORMAT_UNDECLARED",
                                      f"line {number}: FORMAT key {key.decode(errors='replace')} has no ##FORMAT "
                                      "header", number)
            if b"GT" in keys and keys[0] != b"GT":
                raise FormatError("VCF_GT_NOT_FIRST", f"line {number}: GT must be the first FORMAT key", number)
            for column in fields[9:]:
                values = column.split(b":")
                if len(values) > len(keys):
                    raise FormatError("VCF_SAMPLE_FIELD_COUNT",
                                      f"line {number}: a sample has more values than FORMAT keys", number)
                for key, value in zip(keys, values, strict=False):
                    if key == b"GT":
                        if not _GT.match(value):
                            raise FormatError("VCF_GT_INVALID", f"line {number}: genotype {value[:20]!r} is invalid",
                                              number)
                        for allele in re.split(rb"[/|]", value):
                            if allele and allele != b"." and int(allele) > len(alts):
                                raise FormatError("VCF_GT_ALLELE_OUT_OF_RANGE",
                                                  f"line {number}: genotype {value.decode()} names allele "
                                                  f"{int(allele)} but there are {len(alts)} ALT allele(s)", number)
                    else:
                        _check_value(value, fmt[key][1], f"FORMAT/{key.decode(errors='replace')}", number)
        if chrom != last_chrom:
            if chrom in contig_order:
                raise FormatError("VCF_UNSORTED", f"line {number}: contig {chrom.decode(errors='replace')} "
                                  "reappears after another contig: records are not sorted", number)
            contig_order[chrom] = len(contig_order)
            last_chrom, last_pos = chrom, 0
        elif position < last_pos:
            raise FormatError("VCF_UNSORTED", f"line {number}: POS {position} comes after {last_pos} on the same "
                              "contig: records are not sorted", number)
        last_pos = position
        records += 1
    if not header_seen:
        raise FormatError("VCF_HEADER_MISSING", "no #CHROM header line", None)
    return records
