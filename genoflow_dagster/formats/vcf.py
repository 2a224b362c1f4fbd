"""VCF 4.0-4.5 (and BCF, through htslib): meta lines, the #CHROM header, and each record's columns, alleles
and typed fields.

Checks the rules a downstream tool relies on: fixed columns, POS, REF/ALT
alphabets, QUAL, INFO/FORMAT keys declared in the header and values of the
declared type (and, from VCF 4.3, count), GT syntax (allele indexes within the
ALT alleles, none when ALT is '.'), and records sorted within each contig (a
contig does not reappear after another one started).

Severity follows the words of the version the file declares (##fileformat):
what the specification says must (or not) be is an error, and so is what
htslib/bcftools cannot read; what it says should be, a reserved definition
("reserved (albeit optional)"), or a rule of other validators no version states
is a warning at most (`formats.result.warn`; strict mode refuses it). Where a
rule tightened between versions (FILTER '0', contiguous contigs, the final
newline, value counts), each version gets its own words.

Speed: the INFO field and the sample columns of most records are judged by a
few compiled patterns (one per INFO shape, one per FORMAT string and ALT
count; see `_FastPath`) that accept only what the rules accept without a
warning; a record they do not accept is checked rule by rule, which gives the
reason, the warnings and the line. About 100k records/s of 10 samples on one
core (10k/s rule by rule).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import printable
from genoflow_dagster.formats.messages import library_error, shown, shown_character
from genoflow_dagster.formats.result import warn

FIXED = [b"#CHROM", b"POS", b"ID", b"REF", b"ALT", b"QUAL", b"FILTER", b"INFO"]
_REF = re.compile(rb"^[ACGTNacgtn]+$")
_ALT_BASES = re.compile(rb"^[ACGTNacgtn*]+$")
_SYMBOLIC = re.compile(rb"^<[^<>,\s]+>$")
# Breakends: t[p[, t]p], ]p]t, [p[t (the bases t on one side, never none), or single breakends .t / t.
_BREAKEND = re.compile(rb"^([ACGTNacgtn]+[\[\]][^\[\]]+[\[\]]|[\[\]][^\[\]]+[\[\]][ACGTNacgtn]+|\.[ACGTNacgtn]+|"
                       rb"[ACGTNacgtn]+\.)$")
# Contig names, VCF 4.3/4.4 section 1.4.7's own pattern: '*' and '=' may follow the first character (GRCh38's
# HLA contigs, HLA-A*01:01:01:01), never start the name.
_CONTIG = re.compile(rb"^[0-9A-Za-z!#$%&+./:;?@^_|~\-][0-9A-Za-z!#$%&*+./:;=?@^_|~\-]*$")
_CIGAR = re.compile(rb"^(\d+[MIDNSHP=X])+$")
# scheme://[user@]host[:port][/path]; the host is a name with a letter or a dotted IPv4 address.
_URL = re.compile(rb"^[A-Za-z][A-Za-z0-9+.\-]*://([^@/\s]+@)?([A-Za-z0-9\-]*[A-Za-z][A-Za-z0-9.\-]*|\d{1,3}(\.\d{1,3}){3})"
                  rb"(:\d+)?(/[^\s<>]*)?$")
_PEDIGREE_VALUE = re.compile(rb"^[A-Za-z0-9_.\-]+$")
_TYPES = {b"Integer", b"Float", b"Flag", b"Character", b"String"}
_KEY_43 = re.compile(rb"^([A-Za-z_]|%[0-9A-Fa-f]{2})([0-9A-Za-z_.]|%[0-9A-Fa-f]{2})*$")
_KEY_42_INFO = re.compile(rb"^[A-Za-z0-9_.]+$")
_GT = re.compile(rb"^[/|]?(\.|[0-9]+)([/|](\.|[0-9]+))*$")
_META = re.compile(rb"^##(INFO|FORMAT)=<(.*)>$")
_META_FIELD = re.compile(rb'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^,]*)')
_FLOAT = re.compile(rb"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan|INF|NAN|Inf|NaN)$")


# Keys the specification reserves (VCF 4.3-4.5 tables of section 1.6.1 / 1.6.2): (Number, Type). They may be
# used without a header line, and are then read by this definition; "reserved (albeit optional)": a header
# line that declares them otherwise is read by its own declaration, with a warning (`_reserved_mismatch`).
RESERVED_INFO: dict[bytes, tuple[bytes, bytes]] = {
    b"AA": (b"1", b"String"), b"AC": (b"A", b"Integer"), b"AD": (b"R", b"Integer"), b"ADF": (b"R", b"Integer"),
    b"ADR": (b"R", b"Integer"), b"AF": (b"A", b"Float"), b"AN": (b"1", b"Integer"), b"BQ": (b"1", b"Float"),
    b"CIGAR": (b"A", b"String"), b"DB": (b"0", b"Flag"), b"DP": (b"1", b"Integer"), b"END": (b"1", b"Integer"),
    b"H2": (b"0", b"Flag"), b"H3": (b"0", b"Flag"), b"MQ": (b"1", b"Float"), b"MQ0": (b"1", b"Integer"),
    b"NS": (b"1", b"Integer"), b"SOMATIC": (b"0", b"Flag"),
    b"VALIDATED": (b"0", b"Flag"), b"1000G": (b"0", b"Flag"), b"SVCLAIM": (b"A", b"String"),
}
RESERVED_FORMAT: dict[bytes, tuple[bytes, bytes]] = {
    b"AD": (b"R", b"Integer"), b"ADF": (b"R", b"Integer"), b"ADR": (b"R", b"Integer"), b"DP": (b"1", b"Integer"),
    b"EC": (b"A", b"Integer"), b"FT": (b"1", b"String"), b"GL": (b"G", b"Float"), b"GP": (b"G", b"Float"),
    b"GLE": (b"G", b"String"),
    b"GQ": (b"1", b"Integer"), b"GT": (b"1", b"String"), b"HQ": (b"2", b"Integer"), b"MQ": (b"1", b"Integer"),
    b"PL": (b"G", b"Integer"), b"PQ": (b"1", b"Integer"), b"PS": (b"1", b"Integer"),
}
# Keys tools treat as predefined (dosage, structural-variant keys of the 4.x specs): usable without a header
# line, but a header line may define them as it likes.
IMPLICIT_FORMAT: dict[bytes, tuple[bytes, bytes]] = {b"DS": (b".", b"Float"), b"CN": (b"1", b"Integer"),
                                                     b"CNQ": (b"1", b"Float"), b"CICN": (b"2", b"Float")}
IMPLICIT_INFO: dict[bytes, tuple[bytes, bytes]] = {
    b"SVTYPE": (b"1", b"String"), b"SVLEN": (b".", b"Integer"), b"CIPOS": (b".", b"Integer"),
    b"CIEND": (b".", b"Integer"), b"HOMLEN": (b".", b"Integer"), b"HOMSEQ": (b".", b"String"),
    b"BKPTID": (b".", b"String"), b"MEINFO": (b"4", b"String"), b"METRANS": (b"4", b"String"),
    b"DGVID": (b"1", b"String"), b"DBVARID": (b"1", b"String"), b"DBRIPID": (b"1", b"String"),
    b"MATEID": (b".", b"String"), b"PARID": (b"1", b"String"), b"EVENT": (b"1", b"String"),
    b"CILEN": (b".", b"Integer"), b"DPADJ": (b".", b"Integer"), b"CN": (b"1", b"Integer"),
    b"CNADJ": (b".", b"Integer"), b"CICN": (b"2", b"Float"), b"CICNADJ": (b".", b"Float"),
}
_NON_NEGATIVE_INFO = {b"AC", b"AF", b"AN", b"DP", b"MQ0", b"NS", b"BQ", b"MQ", b"END"}
_STRUCTURED = re.compile(rb"^##([A-Za-z0-9_.\-]+)=<")
_NEEDS_DESCRIPTION = {b"INFO", b"FORMAT", b"FILTER", b"ALT"}
# Structured lines the specification defines; other ##key=<...> lines (pedigreeDB=<url>) are free text.
_KNOWN_STRUCTURED = _NEEDS_DESCRIPTION | {b"contig", b"SAMPLE", b"PEDIGREE", b"META"}


# The default fields of each structured line (VCF 4.2 1.2, 4.3 1.4): ID leads, extra fields come after them.
_DEFAULT_FIELDS = {b"INFO": (b"ID", b"Number", b"Type", b"Description"),
                   b"FORMAT": (b"ID", b"Number", b"Type", b"Description"),
                   b"FILTER": (b"ID", b"Description"), b"ALT": (b"ID", b"Description"), b"contig": (b"ID",)}
# First-level types of symbolic structural-variant alleles (VCF 4.2-4.5 section 1.4.5; BND from 4.3).
_SV_TYPES = {b"DEL", b"INS", b"DUP", b"INV", b"CNV", b"BND"}
# Symbolic alleles that are not imprecise structural variants, to which the type list does not apply: the
# gVCF unobserved allele (<*> in VCF 4.3+ section 5.5, <NON_REF> from GATK/DRAGEN, <X> from bcftools) and
# IUPAC ambiguity codes (section 1.4.5).
_NON_SV_ALT_IDS = {b"*", b"NON_REF", b"X"} | {bytes([c]) for c in b"RYSWKMBDHVN"}


def parse_structured(line: bytes, number: int, version: bytes = b"VCFv4.3", details: dict | None = None
                     ) -> tuple[bytes, dict[bytes, bytes], set[bytes]]:
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
            raise FormatError("VCF_META_MALFORMED", f"line {number}: field {shown(body[i:], 20)} is not key=value",
                              number)
        key = body[i:eq]
        if not key or b'"' in key or b"," in key or b" " in key:
            raise FormatError("VCF_META_MALFORMED", f"line {number}: invalid field name {shown(key, 20)}", number)
        if key in fields:
            raise FormatError("VCF_META_MALFORMED", f"line {number}: field {key.decode()} repeats", number)
        j = eq + 1
        if body[j:j + 1] == b'"':
            j += 1
            quoted_value = bytearray()
            while j < len(body) and body[j:j + 1] != b'"':
                if body[j:j + 1] == b"\\" and j + 1 < len(body):
                    j += 1
                quoted_value += body[j:j + 1]
                j += 1
            if j >= len(body):
                raise FormatError("VCF_META_UNTERMINATED_QUOTE", f"line {number}: a quoted value is never closed",
                                  number)
            j += 1
            if j < len(body) and body[j:j + 1] != b",":
                raise FormatError("VCF_META_UNESCAPED_QUOTE",
                                  f"line {number}: text follows a closing quote (unescaped '\"' inside?)", number)
            fields[key] = bytes(quoted_value)
            quoted.add(key)
        elif body[j:j + 1] == b"[":  # META Values=[a, b]: a bracketed list
            end = body.find(b"]", j)
            if end < 0:
                raise FormatError("VCF_META_MALFORMED", f"line {number}: a '[' list is never closed", number)
            fields[key] = body[j:end + 1]
            j = end + 1
        else:
            end = body.find(b",", j)
            end = len(body) if end < 0 else end
            value = body[j:end]
            if b'"' in value:
                raise FormatError("VCF_META_UNESCAPED_QUOTE", f"line {number}: '\"' inside an unquoted value", number)
            fields[key] = value
            j = end
        i = j + 1 if j < len(body) else j
    kind = match.group(1)
    _check_structured_kind(kind, fields, quoted, number, version)
    if kind in _NEEDS_DESCRIPTION | {b"contig", b"SAMPLE", b"META"} and b"ID" not in fields:
        raise FormatError("VCF_META_MISSING_FIELD", f"##{kind.decode()} at line {number} lacks ID", number)
    ident = fields.get(b"ID", b"x")
    if not ident or re.search(rb"[\s,]", ident):
        raise FormatError("VCF_META_ID_INVALID",
                          f"line {number}: ID {shown(ident, 30)} is empty or contains whitespace or a comma", number)
    # Extra fields "can be included after the default fields" (VCF 4.2 1.2.5, 4.3 1.4): a warning when one
    # comes first, or when ID does not lead. The default fields among themselves have no order (the 1000
    # Genomes high-coverage panel writes ##INFO=<ID=END2,Type=Integer,Number=1,...>).
    defaults = _DEFAULT_FIELDS.get(kind)
    if defaults and fields:
        order = list(fields)
        last_default = max((i for i, k in enumerate(order) if k in defaults), default=-1)
        extra = next((k for k in order[:last_default] if k not in defaults), None)
        if order[0] != b"ID" or extra is not None:
            what = f"{extra.decode(errors='replace')} comes before the default fields" if extra else \
                f"{order[0].decode(errors='replace')} comes before ID"
            warn(details, "VCF_META_FIELD_ORDER", f"line {number}: ##{kind.decode()} field {what} "
                 f"({', '.join(k.decode() for k in defaults)})", number)
    if kind == b"ALT":
        if b"<" in ident or b">" in ident:  # "must not contain whitespace or angle brackets" (1.4.5)
            raise FormatError("VCF_META_ALT_ID_INVALID", f"line {number}: ##ALT ID {shown(ident)} contains an angle "
                              "bracket", number)
        if ident.split(b":")[0] not in _SV_TYPES and ident not in _NON_SV_ALT_IDS:
            warn(details, "VCF_META_ALT_TYPE_UNKNOWN", f"line {number}: ##ALT ID {shown(ident)} does not start with "
                 "a structural-variant type the specification lists (DEL, INS, DUP, INV, CNV, BND)", number)
    if kind in (b"contig", b"SAMPLE") and not _CONTIG.match(ident):
        raise FormatError("VCF_META_CONTIG_ID_INVALID", f"line {number}: {kind.decode()} ID {shown(ident, 30)} has a "
                          "character the specification does not allow", number)
    if kind in _NEEDS_DESCRIPTION:
        if b"Description" not in fields:
            raise FormatError("VCF_META_MISSING_FIELD", f"##{kind.decode()} at line {number} lacks Description",
                              number)
        if b"Description" not in quoted:
            raise FormatError("VCF_META_DESCRIPTION_UNQUOTED",
                              f"line {number}: Description must be surrounded by double quotes", number)
    return kind, fields, quoted


def _check_structured_kind(kind: bytes, fields: dict[bytes, bytes], quoted: set[bytes], number: int,
                           version: bytes) -> None:
    """Rules particular to ##ALT, ##META, ##PEDIGREE and ##SAMPLE lines."""
    def fail(reason: str, what: str) -> None:
        raise FormatError(reason, f"line {number}: ##{kind.decode()} {what}", number)

    if kind in (b"ALT", b"META"):
        count = fields.get(b"Number")
        if count is not None and not (count.isdigit() or count in (b".", b"A", b"R", b"G")):
            fail("VCF_META_BAD_NUMBER", f"Number={count.decode(errors='replace')} is not an integer, A, R, G or '.'")
        if b"Type" in fields and fields[b"Type"] not in _TYPES:
            fail("VCF_META_BAD_TYPE", f"Type={fields[b'Type'].decode(errors='replace')} is not a VCF type")
    elif kind == b"PEDIGREE":
        if version >= b"VCFv4.3" and b"ID" not in fields:
            fail("VCF_META_MISSING_FIELD", "lacks ID")
        for key, value in fields.items():
            if not _PEDIGREE_VALUE.match(value):
                fail("VCF_META_VALUE_INVALID", f"{key.decode(errors='replace')}={shown(value)} must be a sample "
                     "name (letters, digits, '_', '.', '-')")
    elif kind == b"SAMPLE" and version <= b"VCFv4.2":
        if b"Mixture" in fields and b"Genomes" not in fields:
            fail("VCF_META_MISSING_FIELD", "has Mixture but no Genomes")
        if quoted - {b"Description"}:
            fail("VCF_META_UNEXPECTED_QUOTES", "may quote only its Description (VCF 4.2)")


# The version that introduced each letter of Number (A and G in VCF 4.1, R in 4.2).
_NUMBER_LETTERS = {b"A": b"VCFv4.1", b"G": b"VCFv4.1", b"R": b"VCFv4.2"}


def _reserved_mismatch(number_field: bytes, kind: bytes, reserved: tuple[bytes, bytes], version: bytes,
                       line_kind: bytes = b"FORMAT") -> bool:
    """Whether a header declaration of a reserved key departs from the specification's definition.

    VCF 4.3+ give each reserved key a Number and Type in a table: any other declaration departs. VCF 4.0-4.2
    only describe the keys in words, the FORMAT keys with a type ("GQ ... (Integer)", "HQ : haplotype
    qualities, two ..."), the INFO keys without one ("DP : combined depth across samples", "AA : ancestral
    allele"). A declaration departs when it contradicts the words, not when it only words them differently:
    - a membership flag (DB, H2, H3, SOMATIC, VALIDATED, 1000G) declared otherwise, or another key as a Flag;
    - text for a number (FORMAT: the type in parentheses; INFO: a count, depth, position, quality or
      frequency declared String); INFO's untyped text keys (AA, CIGAR) may be declared numbers (Dindel's AA);
    - another count: '.' (any count) contradicts nothing, nor do 1 and A for each other (the same count on
      the biallelic records such files hold: 1000 Genomes panels, PLINK, Strelka's AA), nor a count where the
      version has no letter for it yet (Number=3 for GL in VCF 4.0, before G).
    Integer for Float or Float for Integer is no contradiction (FreeBayes FORMAT/GQ Float; values are read by
    the declaration).
    """
    if (number_field, kind) == reserved:
        return False
    if version >= b"VCFv4.3":
        return True
    reserved_number, reserved_type = reserved
    if b"Flag" in (kind, reserved_type):
        return True
    numeric = {b"Integer", b"Float"}
    if (kind in numeric) != (reserved_type in numeric) and (line_kind == b"FORMAT" or reserved_type in numeric):
        return True
    if reserved_number in _NUMBER_LETTERS and version < _NUMBER_LETTERS[reserved_number]:
        return False
    return not (number_field in (b".", reserved_number) or {number_field, reserved_number} == {b"1", b"A"})


def _declaration(line: bytes, number: int, version: bytes = b"VCFv4.3", details: dict | None = None
                 ) -> tuple[bytes, bytes, bytes, bytes]:
    match = _META.match(line)
    assert match
    _, fields, _ = parse_structured(line, number, version, details)
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
    if not (number_field.isdigit() or number_field in (b"A", b"R", b"G", b".", b"P", b"LA", b"LR", b"LG")):
        raise FormatError("VCF_META_BAD_NUMBER", f"line {number}: Number={number_field.decode(errors='replace')} "
                          "is not an integer, A, R, G or '.'", number)
    reserved = (RESERVED_INFO if match.group(1) == b"INFO" else RESERVED_FORMAT).get(fields[b"ID"])
    if reserved is not None and _reserved_mismatch(number_field, kind, reserved, version, match.group(1)):
        warn(details, "VCF_META_RESERVED_MISMATCH",
             f"line {number}: {match.group(1).decode()} {fields[b'ID'].decode()} is reserved as "
             f"Number={reserved[0].decode()}, Type={reserved[1].decode()}; the header declares "
             f"Number={number_field.decode(errors='replace')}, Type={kind.decode(errors='replace')}, and its "
             "values are read that way", number)
    return match.group(1), fields[b"ID"], number_field, kind


def _check_value(value: bytes, kind: bytes, where: str, number: int) -> None:
    for item in value.split(b","):
        if item == b".":
            continue
        if kind == b"Integer" and not re.match(rb"^[+-]?\d+$", item):
            raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: {where} value {shown(item, 20)} is not an "
                              "Integer", number)
        if kind == b"Float" and not _FLOAT.match(item):
            raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: {where} value {shown(item, 20)} is not a "
                              "Float", number)
        if kind == b"Character" and len(item) != 1:
            raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: {where} value {shown(item, 20)} is not a "
                              "single Character", number)


def _genotype_count(alleles: int, ploidy: int) -> int:
    """Number of unordered genotypes of `ploidy` drawn from `alleles` alleles (VCF Number=G)."""
    return math.comb(alleles + ploidy - 1, ploidy)


def _check_count(values: bytes, count: bytes, alts: int, where: str, number: int, ploidy: int | None = None,
                 version: bytes = b"VCFv4.3") -> None:
    """VCF 4.3+ (1.4.2): the Number of a key is the number of its values ("this value must be 1"). VCF 4.0-4.2
    word it as the number of values that "can be included", which "should be" declared: real 4.1/4.2
    producers write other counts (GATK3 AD and MuTect2 QSS past the ALT count, ExAC histograms, SURVIVOR DR)
    and the reference tools read them, so the count is not checked before 4.3."""
    if version < b"VCFv4.3":
        return
    if len(values) > 1 and values[:1] == values[-1:] == b'"':
        return  # a quoted string is one value, commas and all (as the EBI validator reads it)
    n = values.count(b",") + 1
    if count == b"G" and ploidy:
        expected: int | None = _genotype_count(alts + 1, ploidy)
    else:
        expected = int(count) if count.isdigit() else alts if count == b"A" else alts + 1 if count == b"R" else None
    if count in (b"A", b"R", b"G") and alts == 0:
        return  # a record without ALT alleles: tools write the reference-only values as they see fit
    if expected is not None and expected > 0 and n != expected and values != b".":
        raise FormatError("VCF_VALUE_COUNT_MISMATCH",
                          f"line {number}: {where} has {n} value(s) ({shown(values)}); Number={count.decode()} means "
                          f"{expected} here", number)


def _implicit(key: bytes, reserved: dict, implicit: dict, undeclared: set[str], kind: str, implied: set[bytes]
              ) -> tuple[bytes, bytes]:
    """Number and Type of a key used without a header line: the specification's for a reserved key, else
    what htslib assumes (Number=., Type=String). Undeclared keys are noted in the details, not refused:
    the reference validators only warn about them."""
    if key in reserved or key in implicit:
        implied.add(key)
        return reserved.get(key) or implicit[key]
    undeclared.add(f"{kind}/{key.decode(errors='replace')}")
    return b".", b"String"


def _check_key(key: bytes, version: bytes, kind: str, number: int) -> None:
    """INFO/FORMAT key names: VCF 4.3 1.6.1 ([A-Za-z_][0-9A-Za-z_.]*, percent-encoding tolerated); before
    4.3, FORMAT keys are alphanumeric and INFO keys may also hold '_' and '.'."""
    if version >= b"VCFv4.3":
        ok = bool(_KEY_43.match(key)) or key == b"1000G"
    elif kind == "FORMAT":
        ok = key.isalnum() and key.isascii()
    else:
        ok = bool(_KEY_42_INFO.match(key))
    if not ok:
        raise FormatError("VCF_KEY_INVALID", f"line {number}: {kind} key {shown(key, 30)} is not a valid key name",
                          number)


def _normalised(position: int, ref: bytes, alt: bytes) -> tuple[int, bytes, bytes]:
    """Trim the bases REF and ALT share at the end, then at the start (keeping one base each)."""
    ref, alt = ref.upper(), alt.upper()
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, position = ref[1:], alt[1:], position + 1
    return position, ref, alt


def _check_duplicates(recent: dict[tuple[int, bytes, bytes], tuple[int, set[bytes]]], position: int, ref: bytes,
                      alts: list[bytes], ids: bytes, chrom: bytes, number: int, details: dict | None) -> None:
    """A warning when a record repeats a sequence change (after trimming shared bases) under an ID an earlier
    record of it has: "No identifier should be present in more than one data record" (VCF 4.0-4.5, ID).
    Records at one POS are permitted, and so is one rs number on the records of a split multi-allelic site
    (bcftools norm -m- copies it): only the same change named twice is a repeated record. Symbolic alleles
    and breakends are not compared. `recent` holds changes at or after this record's POS only (trimming
    never moves a change left), so it stays as small as the REF alleles are long."""
    if recent:
        for stale in [k for k in recent if k[0] < position]:
            del recent[stale]
    names = set(ids.split(b";"))
    for allele in alts:
        if not _ALT_BASES.match(allele) or allele == b"*":
            continue
        # _normalised trims nothing when either allele is one base
        key = (position, ref.upper(), allele.upper()) if len(ref) == 1 or len(allele) == 1 else \
            _normalised(position, ref, allele)
        if key in recent and names & recent[key][1]:
            shared = b";".join(sorted(names & recent[key][1]))
            warn(details, "VCF_DUPLICATE_RECORD", f"line {number}: {chrom.decode(errors='replace')}:{key[0]} "
                 f"{key[1].decode()}>{key[2].decode()} with ID {shown(shared)} repeats the record at line "
                 f"{recent[key][0]}; an identifier should name one record", number)
        recent[key] = (number, names)


def _numbers(value: bytes | None) -> list[float | None]:
    if value is None:
        return []
    return [None if v == b"." else float(v) for v in value.split(b",")]


def _check_tandem_repeats(info: dict[bytes, bytes], alts: list[bytes], number: int) -> None:
    """VCF 4.4 section 5.7, <CNV:TR> alleles: each allele has RN repeat sequences (1 if RN is absent); every
    repeat sequence has a unit (RUS, or its length RUL; one of them is required, and they agree), and
    RUC/RB one value each, CIRUC/CIRB two; RUB lists the bases of every unit, so RUC must be whole; RB is
    RUL x RUC to within one unit."""
    def fail(what: str) -> None:
        raise FormatError("VCF_TANDEM_REPEAT_INVALID", f"line {number}: <CNV:TR> {what}", number)

    try:
        rn = _numbers(info.get(b"RN"))
        n = int(sum(v or 0 for v in rn)) if rn else sum(a.startswith(b"<CNV:TR") for a in alts)
        rus = info[b"RUS"].split(b",") if b"RUS" in info else None
        rul = _numbers(info.get(b"RUL")) if b"RUL" in info else None
        ruc = _numbers(info.get(b"RUC")) if b"RUC" in info else None
        rb = _numbers(info.get(b"RB")) if b"RB" in info else None
    except ValueError:
        fail("has a non-numeric RN, RUL, RUC or RB")
        return
    if rus is None and rul is None:
        fail("needs RUS or RUL")
    for key, per in ((b"RUS", 1), (b"RUL", 1), (b"RUC", 1), (b"RB", 1), (b"CIRUC", 2), (b"CIRB", 2)):
        if key in info and info[key].count(b",") + 1 != per * n:
            fail(f"{key.decode()} has {info[key].count(b',') + 1} value(s) for {n} repeat sequence(s)")
    if b"CIRB" in info and re.search(rb"(^|,)-", info[b"CIRB"]):
        fail("CIRB cannot be negative")
    if rus is not None and rul is not None:
        for unit, length in zip(rus, rul, strict=False):
            if unit != b"." and length is not None and len(unit) != length:
                fail(f"RUL {length:g} is not the length of RUS {unit.decode(errors='replace')}")
    if b"RUB" in info:
        if ruc is None or any(c is None or c != int(c) for c in ruc):
            fail("RUB needs whole RUC values")
        elif info[b"RUB"].count(b",") + 1 != int(sum(ruc)):  # type: ignore[arg-type]
            fail("RUB must list one length per repeat unit (the sum of RUC)")
    units = rul if rul is not None else [None if u == b"." else len(u) for u in rus or []]
    for length, count, bases in zip(units, ruc or [], rb or [], strict=False):
        if None not in (length, count, bases) and abs(bases - length * count) >= length:  # type: ignore[operator]
            fail(f"RB {bases:g} is not RUL x RUC ({length:g} x {count:g})")


def _check_psl(genotype: bytes, psl: bytes, number: int) -> None:
    """VCF 4.4 phase-set lists: an allele that is not phased has PSL '.'."""
    if psl == b"." or not genotype or genotype == b".":
        return
    parts = re.split(rb"([/|])", genotype)
    alleles = parts[::2]
    separators = parts[1::2]
    explicit_first = alleles[0] == b""
    if explicit_first:
        alleles, first_phased, separators = alleles[1:], separators[0] == b"|", separators[1:]
    else:  # a haploid call is phased; otherwise the first allele is phased when every other one is
        first_phased = all(sep == b"|" for sep in separators)
    phased = [first_phased, *[sep == b"|" for sep in separators]]
    for is_phased, value in zip(phased, psl.split(b","), strict=False):
        if not is_phased and value != b".":
            raise FormatError("VCF_VALUE_INVALID", f"line {number}: PSL {shown(psl, 30)} names a phase set for an "
                              f"allele of {genotype.decode(errors='replace')} that is not phased", number)


def _implied_value(check: Callable[..., object], implied: bool, details: dict | None, *args: Any) -> None:
    """Run a value check; for a key used without a header line (read by the specification's reserved
    definition, which is optional: "reserved (albeit optional)") a failure is a warning, not an error."""
    try:
        check(*args)
    except FormatError as exc:
        if not implied:
            raise
        warn(details, exc.reason, f"{exc.message} (the key has no header line; the specification's optional "
             "definition of it was applied)", exc.line)


def _check_info(info_field: bytes, info: dict[bytes, tuple[bytes, bytes]], alts: list[bytes], version: bytes,
                undeclared: set[str], number: int, implied: set[bytes] | None = None,
                details: dict | None = None) -> dict[bytes, bytes]:
    """The exact INFO rules, entry by entry; returns the entries by key."""
    seen_keys: dict[bytes, bytes] = {}
    implied = set() if implied is None else implied
    for item in info_field.split(b";"):
        key, eq, value = item.partition(b"=")
        if not key:
            raise FormatError("VCF_INFO_MALFORMED", f"line {number}: empty INFO entry", number)
        if key in seen_keys:
            raise FormatError("VCF_INFO_DUPLICATE_KEY", f"line {number}: INFO key "
                              f"{key.decode(errors='replace')} appears twice", number)
        seen_keys[key] = value
        if key not in info:
            _check_key(key, version, "INFO", number)
            info[key] = _implicit(key, RESERVED_INFO, IMPLICIT_INFO, undeclared, "INFO", implied)
        count, typ = info[key]
        if typ == b"Flag" and value not in (b"", b"0", b"1"):
            _implied_value(_raise, key in implied, details, "VCF_VALUE_TYPE_MISMATCH",
                           f"line {number}: INFO/{key.decode()} is declared a Flag but has the value {shown(value)}",
                           number)
        if key == b"CIGAR" and value != b"." and not all(_CIGAR.match(v) or v == b"." for v in
                                                         value.split(b",")):
            raise FormatError("VCF_VALUE_TYPE_MISMATCH", f"line {number}: INFO/CIGAR {shown(value, 30)} is not "
                              "a CIGAR string", number)
        if key == b"SVCLAIM" and version >= b"VCFv4.4" and any(v not in (b"D", b"J", b"DJ", b".")
                                                              for v in value.split(b",")):
            raise FormatError("VCF_VALUE_INVALID", f"line {number}: SVCLAIM {shown(value, 20)} must be D, J or "
                              "DJ per allele", number)
        if typ != b"Flag" and eq:  # a key alone marks membership (4.2 1.4.1, 4.3 1.6.1 INFO)
            where = f"INFO/{key.decode(errors='replace')}"
            _implied_value(_check_value, key in implied, details, value, typ, where, number)
            if key in _NON_NEGATIVE_INFO and re.search(rb"(^|,)-", value):
                warn(details, "VCF_VALUE_NEGATIVE", f"line {number}: {where} is negative ({shown(value)}); it counts "
                     "or measures something that cannot be", number)
            _implied_value(_check_count, key in implied, details, value, count, len(alts), where, number, None,
                           version)
    return seen_keys


def _raise(reason: str, message: str, line: int) -> None:
    raise FormatError(reason, message, line)


def _format_keys(format_field: bytes, fmt: dict[bytes, tuple[bytes, bytes]], version: bytes, undeclared: set[str],
                 number: int, implied: set[bytes] | None = None) -> list[bytes]:
    """FORMAT keys of a record, checked (and declared implicitly, if need be) on first use."""
    keys = [] if format_field == b"." else format_field.split(b":")
    if version >= b"VCFv4.3" and len(set(keys)) != len(keys):  # (htslib's 4.2 noroundtrip.vcf has GT:GT)
        raise FormatError("VCF_FORMAT_DUPLICATE_KEY", f"line {number}: FORMAT {shown(format_field, 40)} repeats a "
                          "key", number)
    for key in keys:
        if key not in fmt:
            _check_key(key, version, "FORMAT", number)
            fmt[key] = _implicit(key, RESERVED_FORMAT, IMPLICIT_FORMAT, undeclared, "FORMAT",
                                 set() if implied is None else implied)
            if version >= b"VCFv4.4":  # 4.4 validators count undeclared reserved values but do not type them
                fmt[key] = (fmt[key][0], b"String")
    if version >= b"VCFv4.4" and b"CICN" in keys and b"CN" not in keys:
        raise FormatError("VCF_FORMAT_MISSING_KEY", f"line {number}: FORMAT CICN needs CN in the same "
                          "record", number)
    if b"GT" in keys and keys[0] != b"GT":
        raise FormatError("VCF_GT_NOT_FIRST", f"line {number}: GT must be the first FORMAT key (FORMAT is "
                          f"{shown(format_field, 40)})", number)
    return keys


def _check_samples(columns: list[bytes], keys: list[bytes], fmt: dict[bytes, tuple[bytes, bytes]],
                   alts: list[bytes], version: bytes, number: int, implied: set[bytes] | None = None,
                   details: dict | None = None) -> None:
    """The exact rules for each sample column, value by value."""
    implied = set() if implied is None else implied
    for column in columns:
        values = column.split(b":")
        if not keys and column == b".":
            continue
        if len(values) > len(keys):
            raise FormatError("VCF_SAMPLE_FIELD_COUNT", f"line {number}: sample value {shown(column, 40)} has more "
                              f"fields than the {len(keys)} FORMAT keys", number)
        ploidy = None
        if keys and keys[0] == b"GT" and values and values[0] not in (b".", b""):
            ploidy = len(re.split(rb"[/|]", values[0].lstrip(b"/|")))
        if b"PSL" in keys and keys[0] == b"GT" and len(values) > keys.index(b"PSL"):
            _check_psl(values[0], values[keys.index(b"PSL")], number)
        for key, value in zip(keys, values, strict=False):
            if key != b"GT" and value not in (b".", b""):
                _implied_value(_check_count, key in implied, details, value, fmt[key][0], len(alts),
                               f"FORMAT/{key.decode(errors='replace')}", number, ploidy, version)
            if key == b"GT":
                if version >= b"VCFv4.4" and value[-1:] in (b"/", b"|") and len(value) > 1:
                    value = value[:-1]  # 4.4 files may end a genotype with a phasing mark
                if not _GT.match(value):
                    raise FormatError("VCF_GT_INVALID", f"line {number}: genotype {shown(value, 20)} is invalid",
                                      number)
                for allele in re.split(rb"[/|]", value):
                    # ALT '.' has no ALT allele: any index above 0 is out of range (htslib exit()s)
                    if allele and allele != b"." and int(allele) > len(alts):
                        raise FormatError("VCF_GT_ALLELE_OUT_OF_RANGE", _out_of_range(value, allele, alts,
                                                                                      number), number)
            elif value:
                _implied_value(_check_value, key in implied, details, value, fmt[key][1],
                               f"FORMAT/{key.decode(errors='replace')}", number)


# The fast path. Most records of a file share a few shapes: the same FORMAT keys, INFO keys of the same
# declared types, alleles drawn from a handful of counts. For each shape a compiled pattern accepts the
# values the exact rules above accept (never more; it may accept less): a record the pattern accepts is
# valid as the rules would find it, and any other record goes through the rules, which give the reason, the
# message and the line. Patterns are atomic ((?>...)), so a record that fails one costs linear time.
_FAST = True  # tests turn it off to compare the two paths
_FLOAT_BODY = rb"(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|nan|INF|NAN|Inf|NaN)"
_MAX_FAST_COUNT = 64  # lists declared longer than this take the exact rules
_MAX_FAST_ALLELES = 99  # records with more ALT alleles take the exact rules
_MAX_PATTERNS = 2048  # compiled patterns per file (a few KB each), and FORMAT strings whose keys are kept


def _never(value: bytes) -> bool:
    return False


def _expected_count(count: bytes, alts: int, ploidy: int | None) -> int | None:
    """The value count `_check_count` requires (None: any count passes)."""
    if count in (b"A", b"R", b"G") and alts == 0:
        return None
    if count == b"G" and ploidy:
        expected: int | None = _genotype_count(alts + 1, ploidy)
    elif count.isdigit():
        expected = int(count)
    else:
        expected = alts if count == b"A" else alts + 1 if count == b"R" else None
    return expected or None


def _list_pattern(typ: bytes, count: bytes, alts: int, ploidy: int | None, stop: bytes,
                  non_negative: bool = False) -> tuple[bytes, bool] | None:
    """A pattern for a value `_check_value` and `_check_count` pass, and whether it matches the empty value;
    None when the fast path does not handle the type or the count."""
    expected = _expected_count(count, alts, ploidy)
    if expected is not None and expected > _MAX_FAST_COUNT:
        return None
    sign = rb"\+?" if non_negative else rb"[+-]?"
    if typ == b"Integer":
        item = rb"(?:\.|" + sign + rb"\d+)"
    elif typ == b"Float":
        item = rb"(?:\.|" + sign + _FLOAT_BODY + rb")"
    elif typ == b"Character" and not non_negative:
        item = rb"[^" + stop + rb"]"
    elif typ == b"String" and not non_negative:
        item = rb"[^" + stop + rb"]*"
    else:
        return None
    more = rb"(?:," + item + rb")"
    if expected is None:
        return item + more + b"*", typ == b"String"
    if expected == 1:
        return item, typ == b"String"
    return rb"(?:" + item + more + b"{%d}" % (expected - 1) + rb"|\.)", False


def _info_value_pattern(key: bytes, declared: tuple[bytes, bytes], alts: int, version: bytes, stop: bytes
                        ) -> tuple[bytes, bool] | None:
    """A pattern for the values of INFO `key` the exact rules accept, and whether it matches the empty value
    (None for keys the rules must see)."""
    count, typ = declared
    if key == b"CIGAR" or (key == b"SVCLAIM" and version >= b"VCFv4.4"):
        return None
    if typ == b"Flag":
        return rb"[01]?", True
    return _list_pattern(typ, count, alts, None, stop, key in _NON_NEGATIVE_INFO)


# An INFO field's keys in order ('AC;AF;DB' for AC=1;AF=0.5;DB): the field's shape
_INFO_SHAPE = re.compile(rb"=[^;]*").sub


def _info_shape_pattern(keys: list[bytes], info: dict[bytes, tuple[bytes, bytes]], alts: int, version: bytes
                        ) -> bytes | None:
    """A pattern for whole INFO fields with these (declared) keys in this order, each key once, whose every
    entry the exact rules accept."""
    if len(set(keys)) != len(keys):
        return None
    items = []
    for key in keys:
        pattern = _info_value_pattern(key, info[key], alts, version, b";,")
        if pattern is None:
            return None
        body, matches_empty = pattern  # 'KEY' alone and 'KEY=' both have the value ''
        items.append(re.escape(key) + (rb"(?:=(?>" + body + rb"))?" if matches_empty else rb"=(?>" + body + rb")"))
    return b";".join(items)


def _allele_pattern(alts: int, missing: bool) -> bytes:
    """A GT allele index from 0 to `alts` (written without leading zeros), or '.' when `missing`."""
    if alts <= 9:
        return rb"[%s0-%d]" % (rb"." if missing else b"", alts)
    choices = [b"%d" % i for i in range(alts, -1, -1)] + ([rb"\."] if missing else [])
    return rb"(?>" + b"|".join(choices) + rb")"


def _samples_pattern(keys: list[bytes], fmt: dict[bytes, tuple[bytes, bytes]], alts: int) -> bytes | None:
    """A pattern for all the sample columns (tab-separated) of a record with these FORMAT keys and ALT count
    whose every value the exact rules accept."""
    if not keys or b"PSL" in keys:
        return None
    genotyped = keys[0] == b"GT"
    others = keys[1:] if genotyped else keys
    if b"GT" in others:  # GT:GT (VCF <= 4.2): both are genotypes
        return None

    def values(ploidy: int | None) -> list[bytes] | None:
        out = []
        for key in others:
            pattern = _list_pattern(fmt[key][1], fmt[key][0], alts, ploidy, b"\t:,")
            if pattern is None:
                return None
            body, matches_empty = pattern
            out.append(rb"(?>" + body + rb")" if matches_empty else rb"(?>(?:" + body + rb")?)")
        return out

    def chain(patterns: list[bytes]) -> bytes:  # values after the first; trailing ones may be dropped
        rest = b""
        for pattern in reversed(patterns):
            rest = rb"(?::" + pattern + rest + rb")?"
        return rest

    if not genotyped:
        plain = values(None)
        if plain is None:
            return None
        sample = plain[0] + chain(plain[1:])
    else:
        allele, called = _allele_pattern(alts, True), _allele_pattern(alts, False)
        if not any(fmt[key][0] == b"G" for key in others):  # the ploidy changes no count
            plain = values(None)
            if plain is None:
                return None
            sample = allele + rb"(?:[/|]" + allele + rb")*" + chain(plain)
        else:  # Number=G counts: diploid, haploid, or no count for a '.' genotype; other ploidies go exact
            diploid, haploid, unknown = values(2), values(1), values(None)
            if diploid is None or haploid is None or unknown is None:
                return None
            sample = (rb"(?:" + allele + rb"[/|]" + allele + chain(diploid) + rb"|" + called + chain(haploid)
                      + rb"|\." + chain(unknown) + rb")")
    return rb"(?>" + sample + rb")(?:\t(?>" + sample + rb"))*"


_FullMatch = Callable[[bytes], object]  # a compiled pattern's fullmatch (or `_never`)


class _FastPath:
    """The compiled checks of one file, built on first use. A file has few shapes; one that keeps making new
    ones stops getting patterns after `_MAX_PATTERNS` (its records take the exact rules), so neither memory
    nor compile time grows with the file."""

    def __init__(self, info: dict[bytes, tuple[bytes, bytes]], fmt: dict[bytes, tuple[bytes, bytes]],
                 version: bytes) -> None:
        self.info, self.fmt, self.version = info, fmt, version
        self.patterns = 0
        self.info_shapes: dict[tuple[bytes, int], _FullMatch] = {}  # (INFO shape, ALT count) -> fullmatch
        self.info_values: dict[tuple[bytes, int], _FullMatch] = {}  # (INFO key, ALT count) -> fullmatch
        self.samples: dict[tuple[bytes, int], _FullMatch] = {}  # (FORMAT, ALT count) -> fullmatch
        self.format_keys: dict[bytes, list[bytes]] = {}  # FORMAT -> its checked keys

    def _compile(self, pattern: bytes | None) -> _FullMatch:
        self.patterns += 1
        return _never if pattern is None else re.compile(pattern).fullmatch

    def info_field(self, field: bytes, alts: int) -> bool:
        """Whether every entry of the INFO field passes the exact rules, judged by one pattern per shape."""
        shape = (_INFO_SHAPE(b"", field), alts)
        match = self.info_shapes.get(shape)
        if match is None:
            keys = shape[0].split(b";")
            if self.patterns >= _MAX_PATTERNS or not all(key in self.info for key in keys):
                return False  # (an undeclared key: the exact rules declare it, the next record can be fast)
            match = self.info_shapes[shape] = self._compile(_info_shape_pattern(keys, self.info, alts,
                                                                                self.version))
        return bool(match(field))

    def info_entries(self, field: bytes, alts: int) -> dict[bytes, bytes] | None:
        """The INFO entries by key when every one passes a pattern per key (for fields whose shape got no
        pattern); None sends the field to `_check_info`."""
        seen: dict[bytes, bytes] = {}
        for item in field.split(b";"):
            key, _, value = item.partition(b"=")
            match = self.info_values.get((key, alts))
            if match is None:
                if self.patterns >= _MAX_PATTERNS or key not in self.info:
                    return None
                pattern = _info_value_pattern(key, self.info[key], alts, self.version, b",")
                match = self.info_values[key, alts] = self._compile(pattern and pattern[0])
            if key in seen or not match(value):
                return None
            seen[key] = value
        return seen

    def sample_columns(self, format_field: bytes, keys: list[bytes], alts: int, columns: bytes) -> bool:
        match = self.samples.get((format_field, alts))
        if match is None:
            if self.patterns >= _MAX_PATTERNS:
                return False
            match = self.samples[format_field, alts] = self._compile(_samples_pattern(keys, self.fmt, alts))
        return bool(match(columns))


def _out_of_range(genotype: bytes, allele: bytes, alts: list[bytes], number: int) -> str:
    there = f"there are {len(alts)} ALT allele(s)" if alts else "the record has no ALT allele (ALT is '.')"
    return f"line {number}: genotype {genotype.decode()} names allele {int(allele)} but {there}"


def _tracking_lines(stream: BinaryIO, ends_with_newline: list[bool]) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(stream, start=1):
        ends_with_newline[0] = raw.endswith(b"\n")
        line = raw[:-1] if raw.endswith(b"\n") else raw
        yield number, line[:-1] if line.endswith(b"\r") else line


def validate_vcf(stream: BinaryIO, details: dict) -> int:
    ends_with_newline = [True]
    lines = _tracking_lines(stream, ends_with_newline)
    number = 1
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
    last_chrom, last_contig, last_pos = None, None, 0
    undeclared: set[str] = set()
    blank_at = 0
    recent_sites: dict[tuple[int, bytes, bytes], tuple[int, set[bytes]]] = {}
    implied: set[bytes] = set()  # reserved keys used without a header line
    alt_ids: set[bytes] = set()  # ##ALT IDs
    fast = _FastPath(info, fmt, version) if _FAST else None
    for number, line in lines:
        if line.startswith(b"##"):
            if not printable(line):
                bad = line.translate(None, bytes(range(32, 127)) + b"\t")[:1]
                raise FormatError("VCF_META_INVALID_CHARACTER", f"line {number}: the meta line holds "
                                  f"{shown_character(bad)}, a control character or a byte outside ASCII", number)
            if _META.match(line):
                kind, key, count, typ = _declaration(line, number, version, details)
                (info if kind == b"INFO" else fmt)[key] = (count, typ)
            elif (structured := _STRUCTURED.match(line)) and structured.group(1) in _KNOWN_STRUCTURED:
                kind, meta, _ = parse_structured(line, number, version, details)
                if kind == b"ALT":
                    alt_ids.add(meta[b"ID"])
            else:
                key, eq, value = line[2:].partition(b"=")
                if not eq or not key or not value or value == b"<>":
                    raise FormatError("VCF_META_MALFORMED", f"line {number}: meta line {shown(line, 40)} is not "
                                      "##key=value", number)
                url = value[1:-1] if key == b"pedigreeDB" and value.startswith(b"<") else value
                if key in (b"assembly", b"pedigreeDB") and b"://" in url and not _URL.match(url):
                    raise FormatError("VCF_META_URL_INVALID", f"line {number}: ##{key.decode()} is not a valid "
                                      f"URL: {url[:60].decode(errors='replace')}", number)
            continue
        if not line.startswith(b"#CHROM"):
            raise FormatError("VCF_HEADER_MISSING", f"line {number}: expected the #CHROM header line, found "
                              f"{shown(line, 40)}", number)
        header_columns = line.split(b"\t")
        if header_columns[:8] != FIXED:
            raise FormatError("VCF_HEADER_COLUMNS", f"line {number}: the header must start with the 8 fixed "
                              f"columns, tab-separated; it starts {shown(line, 60)}", number)
        if len(header_columns) > 8:
            if header_columns[8] != b"FORMAT" or len(header_columns) == 9:
                raise FormatError("VCF_HEADER_COLUMNS", f"line {number}: sample columns need FORMAT first",
                                  number)
            names = header_columns[9:]
            if len(set(names)) != len(names):
                seen: set[bytes] = set()
                repeated = next(name for name in names if name in seen or seen.add(name))  # type: ignore[func-returns-value]
                raise FormatError("VCF_DUPLICATE_SAMPLE", f"line {number}: sample name {shown(repeated)} repeats",
                                  number)
            samples = len(names)
        header_seen = True
        header_line = line
        break
    if not header_seen:
        raise FormatError("VCF_HEADER_MISSING", "no #CHROM header line", None)
    v43, v44 = version >= b"VCFv4.3", version >= b"VCFv4.4"
    sorting = version <= b"VCFv4.4"  # 4.5 drops the requirement (hts-specs examples)
    expected = 8 + (samples + 1 if samples else 0)
    raw = b"\n" if ends_with_newline[0] else b""  # the #CHROM line's end, if no record follows
    first_record = number + 1  # the records: the stream's lines read directly, without the header's generator
    for number, raw in enumerate(stream, start=first_record):
        line = raw[:-1] if raw[-1:] == b"\n" else raw
        if line[-1:] == b"\r":
            line = line[:-1]
        if not line:
            blank_at = blank_at or number
            continue
        if blank_at:
            raise FormatError("VCF_BLANK_LINE", f"blank line at line {blank_at} between records", blank_at)
        if line == header_line and not records:
            # GATK ReblockGVCF test output repeats it; htslib reads the copy as a record of contig '#CHROM'
            warn(details, "VCF_HEADER_REPEATED", f"line {number}: the #CHROM header line is repeated (a file has one "
                 "header line; tools that read the copy as a record fail on it)", number)
            continue
        columns = line.count(b"\t") + 1
        if columns != expected:
            raise FormatError("VCF_COLUMN_COUNT", f"line {number} has {columns} columns, expected {expected}",
                              number)
        fields = line.split(b"\t", 9)  # the sample columns stay together in fields[9]
        chrom, pos, _id, ref, alt, qual, _filter, info_field = fields[:8]
        if chrom != last_chrom:
            contig = chrom[1:-1] if chrom.startswith(b"<") and chrom.endswith(b">") else chrom  # <ID>: assembly
            if not _CONTIG.match(contig):
                raise FormatError("VCF_CHROM_INVALID", f"line {number}: CHROM {shown(chrom, 30)} is empty or has a "
                                  "character contig names may not contain", number)
        else:
            contig = last_contig  # type: ignore[assignment]
        if not pos.isdigit():
            raise FormatError("VCF_POS_INVALID", f"line {number}: POS {shown(pos, 20)} is not a non-negative integer",
                              number)
        position = int(pos)
        if not _REF.match(ref):
            raise FormatError("VCF_REF_INVALID", f"line {number}: REF {shown(ref, 30)} has characters outside ACGTN",
                              number)
        alts = [] if alt == b"." else alt.split(b",")
        for allele in alts:
            if not (_ALT_BASES.match(allele) or _SYMBOLIC.match(allele) or _BREAKEND.match(allele)):
                if allele not in alt_ids:
                    raise FormatError("VCF_ALT_INVALID", f"line {number}: ALT allele {shown(allele)} is not bases "
                                      "(A, C, G, T, N, *), a <symbolic> allele or a breakend", number)
                warn(details, "VCF_ALT_SYMBOLIC_UNBRACKETED", f"line {number}: ALT allele {shown(allele)} is an "
                     f"##ALT ID written without angle brackets (<{allele.decode(errors='replace')}>)", number)
            if allele == ref:
                raise FormatError("VCF_ALT_EQUALS_REF", f"line {number}: ALT allele equals REF", number)
            if v44 and (allele == b"<BND>" or allele.startswith(b"<BND:")):
                raise FormatError("VCF_ALT_INVALID", f"line {number}: VCF 4.4 writes breakends in bracket notation, "
                                  "not as a <BND> symbolic allele", number)
        if qual != b"." and (not _FLOAT.match(qual) or qual.startswith(b"-")):
            raise FormatError("VCF_QUAL_INVALID", f"line {number}: QUAL {shown(qual, 20)} is not a non-negative number",
                              number)
        if _id != b".":
            ids = _id.split(b";")
            if not all(ids) or b" " in _id or len(set(ids)) != len(ids):
                raise FormatError("VCF_ID_INVALID", f"line {number}: ID {shown(_id, 30)} has an empty, repeated or "
                                  "space-containing value", number)
        if _filter != b"." and _filter != b"PASS":
            filters = _filter.split(b";")
            if b"." in filters or not all(filters) or re.search(rb"\s", _filter):
                raise FormatError("VCF_FILTER_INVALID", f"line {number}: FILTER {shown(_filter, 30)} mixes '.' with "
                                  "values, or has empty or blank entries", number)
            if len(set(filters)) != len(filters):
                raise FormatError("VCF_FILTER_INVALID", f"line {number}: FILTER {shown(_filter, 30)} repeats a value",
                                  number)
            if b"0" in filters:  # "'0' is reserved and must not be used" (4.3+); "should not" (4.0-4.2)
                if v43:
                    raise FormatError("VCF_FILTER_INVALID", f"line {number}: FILTER '0' is reserved", number)
                warn(details, "VCF_FILTER_RESERVED", f"line {number}: FILTER '0' is reserved and should not be used",
                     number)
        if chrom != last_chrom:
            recent_sites.clear()
        if _id != b".":
            _check_duplicates(recent_sites, position, ref, alts, _id, chrom, number, details)
        seen_keys: dict[bytes, bytes] = {}
        n_alts = len(alts)
        quick = fast if n_alts <= _MAX_FAST_ALLELES else None
        tandem = v44 and any(a.startswith(b"<CNV:TR") for a in alts)  # needs the INFO values by key
        if info_field != b"." and not (quick and not tandem and quick.info_field(info_field, n_alts)):
            found = quick.info_entries(info_field, n_alts) if quick else None
            seen_keys = _check_info(info_field, info, alts, version, undeclared, number, implied, details) \
                if found is None else found
        if tandem:
            _check_tandem_repeats(seen_keys, alts, number)
        if samples:
            keys = fast.format_keys.get(fields[8]) if fast is not None else None
            if keys is None:
                keys = _format_keys(fields[8], fmt, version, undeclared, number, implied)
                if fast is not None and len(fast.format_keys) < _MAX_PATTERNS:
                    fast.format_keys[fields[8]] = keys
            if not (quick and quick.sample_columns(fields[8], keys, n_alts, fields[9])):
                _check_samples(fields[9].split(b"\t"), keys, fmt, alts, version, number, implied, details)
        if chrom != last_chrom and contig != last_contig:
            if contig in contig_order:
                # "All entries for a specific CHROM must form a contiguous block" (4.3+); "should" (4.0-4.2)
                message = (f"line {number}: contig {contig.decode(errors='replace')} reappears after another "
                           f"contig (its records began at line {contig_order[contig]}): records are not sorted")
                if v43:
                    raise FormatError("VCF_UNSORTED", message, number)
                warn(details, "VCF_CONTIG_NOT_CONTIGUOUS", message, number)
            # (No version ties the order of contigs to the ##contig lines: only POS within a contig is sorted.)
            contig_order.setdefault(contig, number)
            last_pos = 0
        elif chrom != last_chrom:
            pass  # CHROM and <CHROM> name the same contig
        elif position < last_pos and sorting:
            raise FormatError("VCF_UNSORTED", f"line {number}: POS {position} comes after {last_pos} on the same "
                              "contig: records are not sorted", number)
        last_pos = position
        last_chrom, last_contig = chrom, contig
        records += 1
    if not raw.endswith(b"\n"):
        # "The last data line must end with a line separator" (VCF 4.3/4.4 1.5); 4.0-4.2 do not say it, and
        # hts-specs' own VCF 4.5 examples (zero_length_LAA.vcf) end without one. A clinical upload that stops
        # without its final newline is more likely cut short: a warning where it is not an error.
        message = f"line {number}: the last line has no newline: the file may be truncated"
        if v43 and sorting:
            raise FormatError("VCF_NO_FINAL_NEWLINE", message, number)
        warn(details, "VCF_NO_FINAL_NEWLINE", message, number)
    if undeclared:
        details["undeclared_keys"] = sorted(undeclared)
    return records


# BCF: read through htslib, validated as the VCF text htslib would write for it (`bcftools view`), so every
# rule and code above applies; lines are those of that text (header lines first, then one per record).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


class _BcfText:
    """The VCF text of a BCF file, line by line, as htslib formats it; counts the lines handed out."""

    def __init__(self, variants: Any) -> None:  # a pysam.VariantFile
        self._variants = variants
        self.lines = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in str(self._variants.header).encode().splitlines(keepends=True):
            self.lines += 1
            yield line
        for record in self._variants:
            self.lines += 1
            yield str(record).encode()


def validate_bcf(path: str | Path, details: dict) -> int:
    """A BCF file (plain or BGZF), decoded record by record by htslib (pysam.VariantFile) and judged by the
    VCF rules. A BGZF BCF without its end-of-file block is a truncated copy (BCF is BGZF like BAM); a record
    htslib cannot decode is refused with the line it would have had."""
    import pysam

    details["container"] = "bcf"
    with open(path, "rb") as fh:
        head = fh.read(18)
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - len(BGZF_EOF)))
        tail = fh.read()
    if head[:2] == b"\x1f\x8b" and tail != BGZF_EOF:
        raise FormatError("BCF_MISSING_EOF", "the BCF file lacks its BGZF end-of-file block: it is truncated")
    text = None
    save = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(path), "r") as variants:
            if variants.format != "BCF":
                raise FormatError("BCF_UNREADABLE", f"htslib reads the file as {variants.format}, not BCF")
            text = _BcfText(variants)
            return validate_vcf(iter(text), details)  # type: ignore[arg-type]
    except (OSError, ValueError, StopIteration) as exc:
        line = text.lines + 1 if text is not None else None
        where = f"line {line}" if line else "the header"
        raise FormatError("BCF_UNREADABLE", f"{where}: htslib cannot decode the BCF data: {library_error(exc)}",
                          line) from None
    finally:
        pysam.set_verbosity(save)
