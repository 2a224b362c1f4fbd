"""Nine-column feature files: GFF3 (Sequence Ontology specification 1.26, read as genometools `gt gff3` does)
and GTF 2.2 (GENCODE/Ensembl style).

Severity. What `gt gff3` refuses is an error; what only `gt gff3 -tidy` (or `gt gtf_to_gff3 -tidy`) reads,
skipping or repairing it with a warning, and what no downstream reader (bedtools, tabix, the annotation
step) needs, is a warning: a missing version pragma, attributes without a value or a tag, a bare token among
tag=value pairs, empty columns after the ninth, a wrong CDS phase, GTF's frameless CDS, stop codon inside
the CDS and transcript on two strands. An ID reused by a feature of another type is a warning too, although
gt refuses it: Glimmer writes its genes and mRNAs that way and every other reader reads them.

Memory. Both validators stream, but some rules need a map over features:
- GFF3 keeps, per ID, its sequence, first line, parents and type, plus a Name -> ID map (a Parent may name
  its feature by Name, as NCBI-derived files do), the Parents named before their definition, and the
  CDS coordinates of each parent (its phase chain is checked when the block ends). All of it is dropped
  at each `###` line, after which no earlier ID may be referred to, so files that use `###` stay small;
  without `###` it grows with the number of features (measured: 640 MB for 2.4 million lines holding
  1.4 million IDs; 30 MB for the same file with a `###` after each gene).
  Sequence names, ##sequence-region bounds and circular sequences are kept for the whole file.
- GTF keeps, per transcript_id, its sequence, strand and six numbers (CDS and stop-codon bounds): about
  250 bytes per transcript, growing with the number of transcripts, not of lines.
"""

from __future__ import annotations

import re
from array import array
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines, printable
from genoflow_dagster.formats.messages import shown
from genoflow_dagster.formats.result import warn

_INT = re.compile(rb"^[0-9]+$")
_SIGNED_INT = re.compile(rb"^[+-]?[0-9]+$")
_SCORE = re.compile(rb"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_VERSION = re.compile(rb"^##gff-version[ \t]+(\S+)\s*$")
_VERSION_3 = re.compile(rb"^3(\.[0-9]+){0,2}$")
_MD5_SEQID = re.compile(rb"^md5:[0-9a-fA-F]{32}:.")
_GAP_OP = re.compile(rb"^([MIDFR])([0-9]+)$")
# The feature types GTF 2.2 defines ("All other features will be ignored").
_GTF22_FEATURES = frozenset((b"CDS", b"start_codon", b"stop_codon", b"5UTR", b"3UTR", b"inter", b"inter_CNS",
                             b"intron_CNS", b"exon"))
_GTF_ITEMS = re.compile(rb'(?:"[^"]*"|[^;"])+')  # the items of a GTF column 9, split at ';' outside quotes
_GTF_ATTR = re.compile(rb'^\s*([A-Za-z_][A-Za-z0-9_]*)\s+("[^"]*"|[^;"\s]+)\s*$')
# Types whose Target is a protein: their Gap counts codons on the genome and allows frameshifts (F, R).
_PROTEIN_MATCHES = {b"protein_match", b"SO:0000349", b"translated_nucleotide_match", b"SO:0000181"}
_CDS = {b"CDS", b"SO:0000316"}
_MAX_SHARED_TYPES = 4096


def _text(value: bytes, limit: int = 60) -> str:
    """A value from the file for a message (quoted, %-escapes decoded, unprintable bytes as <0xNN>)."""
    return shown(unquote_to_bytes(value), limit)


def _columns(line: bytes, number: int, prefix: str, details: dict) -> list[bytes]:
    """The nine columns, with the rules GFF3 and GTF share."""
    fields = line.split(b"\t")
    if len(fields) == 1 and prefix == "GFF3":
        # Without any tab, whitespace runs separate the columns, as in the specification's own example.
        fields = line.split()
    if len(fields) > 9 and not any(fields[9:]):
        # UniProt ends every line with a tab: empty columns after the ninth, which gt gff3 -tidy drops.
        warn(details, f"{prefix}_TRAILING_EMPTY_COLUMN", f"line {number} ends with {len(fields) - 9} empty "
             "column(s) after the ninth (a trailing tab); the format has nine columns, the extra ones are ignored",
             number)
        fields = fields[:9]
    if len(fields) != 9:
        raise FormatError(f"{prefix}_COLUMN_COUNT", f"line {number} has {len(fields)} tab-separated columns, not 9",
                          number)
    seqid, _source, ftype, start, end, score, strand, phase, _attrs = fields
    if not seqid:
        raise FormatError(f"{prefix}_SEQID_INVALID", f"line {number}: the sequence name (column 1) is empty", number)
    if not ftype:
        raise FormatError(f"{prefix}_TYPE_MISSING", f"line {number}: the type column is empty", number)
    undefined = prefix == "GFF3" and start == end == b"."  # genometools: a feature without a range
    if not undefined:
        if not _INT.match(start) or not _INT.match(end) or int(start) < 1:
            raise FormatError(f"{prefix}_COORDINATE_INVALID", f"line {number}: start/end must be positive integers",
                              number)
        if int(start) > int(end):
            raise FormatError(f"{prefix}_START_AFTER_END", f"line {number}: start {int(start)} > end {int(end)}",
                              number)
    if score != b"." and not _SCORE.match(score):
        raise FormatError(f"{prefix}_SCORE_INVALID", f"line {number}: score {_text(score, 20)} is not a number or "
                          "'.'", number)
    if strand not in (b"+", b"-", b".", b"?"):
        raise FormatError(f"{prefix}_STRAND_INVALID", f"line {number}: strand must be +, -, . or ?", number)
    if phase not in (b".", b"0", b"1", b"2"):
        raise FormatError(f"{prefix}_PHASE_INVALID", f"line {number}: phase must be 0, 1, 2 or '.'", number)
    if ftype in _CDS and phase == b".":
        if prefix == "GFF3":  # GFF3 1.26, column 8: "The phase is REQUIRED for all CDS features."
            raise FormatError("GFF3_CDS_PHASE_MISSING", f"line {number}: this CDS has no phase ('.'); GFF3 "
                              "requires 0, 1 or 2 on every CDS", number)
        # GTF 2.2 defines the frame for coding features without requiring it in words; JGI writes '.'.
        warn(details, "GTF_CDS_PHASE_MISSING", f"line {number}: this CDS has no frame ('.'); GTF 2.2 gives CDS "
             "features a frame of 0, 1 or 2", number)
    return fields


def validate_gff3(stream: BinaryIO, details: dict) -> int:
    """GFF3: version pragma, sequence regions, columns, attributes, IDs, Parents and CDS phases.

    Raises FormatError (reason GFF3_*, 1-based line) at the first broken rule. Returns the feature count.
    """
    checker = _Gff3(details)
    for number, line in numbered_lines(stream):
        if number == 1 and not checker.version_line(line, number):
            # GFF3 1.26: "The first line of a GFF3 file must be a comment that identifies the version". Files cut
            # from larger ones and some producers (TransDecoder, EVM) lack it; gt gff3 -tidy adds it, and
            # bedtools, tabix and the annotation step never read it.
            warn(details, "GFF3_VERSION_MISSING", "line 1: the file does not begin with '##gff-version 3'; read as "
                 "GFF3 anyway (the pragma is required on the first line)", 1)
        if number == 1 and checker.version_seen:
            continue
        if line.startswith(b"##FASTA"):
            break
        if line.startswith(b">"):
            raise FormatError("GFF3_FASTA_WITHOUT_DIRECTIVE", f"line {number}: FASTA needs a ##FASTA directive first",
                              number)
        if line.startswith(b"#"):
            checker.directive(line, number)
        elif line.strip():
            checker.feature(line, number)
    checker.end_block()
    return checker.records


def _check_version(line: bytes, number: int) -> None:
    match = _VERSION.match(line)
    if not match:
        raise FormatError("GFF3_VERSION_INVALID", f"line {number}: the version pragma {_text(line, 40)} is not "
                          "'##gff-version 3'", number)
    if not _VERSION_3.match(match.group(1)):
        raise FormatError("GFF3_VERSION_UNSUPPORTED", f"line {number}: the file says it is GFF version "
                          f"{_text(match.group(1), 20)}; only GFF version 3 is accepted", number)


class _Gff3:
    """The state one GFF3 file needs while it streams (see the module docstring for its size)."""

    def __init__(self, details: dict) -> None:
        self.details = details
        self.version_seen = False
        self.records = 0
        self.seqids: dict[bytes, bytes] = {}  # one shared bytes object per sequence name
        self.regions: dict[bytes, tuple[int, int]] = {}  # ##sequence-region bounds
        self.circular: set[bytes] = set()  # sequences with an Is_circular=true feature
        # ID -> (seqid, first line, parents, type)
        self.ids: dict[bytes, tuple[bytes, int, tuple[bytes, ...], bytes]] = {}
        self.types: dict[bytes, bytes] = {}  # one shared bytes object per feature type (the first few thousand)
        self.pending: list[tuple[int, bytes]] = []  # (line, Parent) named before its definition
        self.names: dict[bytes, bytes] = {}  # Name -> ID, for Parents that name their feature by Name
        # (parent ID or None, CDS ID or None) -> [strand, array of start, end, phase, line per CDS]
        self.cds: dict[tuple[bytes | None, bytes | None], list] = {}
        self.frameshifted: set[bytes | None] = set()  # parents whose CDS carry an `exception` attribute

    def version_line(self, line: bytes, number: int) -> bool:
        """Checks a `##gff-version` pragma (a misspelt one is an error); False when `line` is not one."""
        if line[:13].lower() != b"##gff-version":
            return False
        _check_version(line, number)
        self.version_seen = True
        return True

    def directive(self, line: bytes, number: int) -> None:
        if line.startswith(b"###"):
            self.end_block()
        elif line[:13].lower() == b"##gff-version":
            if not self.version_seen and not self.records:  # after a first comment line: warned, checked here
                self.version_line(line, number)
                return
            where = "a second '##gff-version' line" if self.version_seen else "a '##gff-version' line after features"
            raise FormatError("GFF3_VERSION_REPEATED", f"line {number}: {where}; it belongs on the first line only "
                              "(were two files joined?)", number)
        elif line.startswith(b"##sequence-region"):
            self._sequence_region(line, number)

    def _sequence_region(self, line: bytes, number: int) -> None:
        parts = line.split()[1:]
        if len(parts) != 3 or not all(_SIGNED_INT.match(part) for part in parts[1:]):
            raise FormatError("GFF3_SEQUENCE_REGION_INVALID", f"line {number}: write '##sequence-region <seqid> "
                              "<start> <end>' with whole-number start and end", number)
        seqid, start, end = parts[0], int(parts[1]), int(parts[2])
        if start < 1 or end < 1:
            raise FormatError("GFF3_SEQUENCE_REGION_INVALID", f"line {number}: the sequence region of "
                              f"{_text(seqid)} has start {start} and end {end}; both must be 1 or more", number)
        if start > end:
            raise FormatError("GFF3_SEQUENCE_REGION_INVALID", f"line {number}: the sequence region of "
                              f"{_text(seqid)} starts at {start}, after its end {end}", number)
        if seqid in self.regions:
            raise FormatError("GFF3_SEQUENCE_REGION_DUPLICATE", f"line {number}: a second ##sequence-region for "
                              f"{_text(seqid)}", number)
        if seqid in self.seqids:
            raise FormatError("GFF3_SEQUENCE_REGION_LATE", f"line {number}: the ##sequence-region of {_text(seqid)} "
                              "comes after features on that sequence; it must come before them", number)
        self.regions[seqid] = (start, end)

    def feature(self, line: bytes, number: int) -> None:
        fields = _columns(line, number, "GFF3", self.details)
        seqid = self._seqid(fields[0], number)
        attributes = _gff3_attributes(fields[8], number, self.details)
        ftype, strand, phase = fields[2], fields[6], fields[7]
        if len(self.types) < _MAX_SHARED_TYPES:  # a file of random types must not grow this map per line
            ftype = self.types.setdefault(ftype, ftype)
        ranged = fields[3] != b"."
        start, end = (int(fields[3]), int(fields[4])) if ranged else (0, 0)
        if b"Is_circular" in attributes:
            if attributes[b"Is_circular"] != b"true":
                raise FormatError("GFF3_IS_CIRCULAR_INVALID", f"line {number}: Is_circular is "
                                  f"{_text(attributes[b'Is_circular'], 20)}; the only allowed value is 'true'", number)
            self.circular.add(seqid)
        if ranged and seqid in self.regions and seqid not in self.circular:
            low, high = self.regions[seqid]
            if start < low or end > high:
                raise FormatError("GFF3_OUTSIDE_SEQUENCE_REGION", f"line {number}: the feature {start}-{end} lies "
                                  f"outside the ##sequence-region {low}-{high} of {_text(seqid)}", number)
        if b"Target" in attributes:
            _check_target(attributes[b"Target"], number)
        if b"Gap" in attributes and ranged:
            _check_gap(attributes[b"Gap"], ftype, end - start + 1, attributes.get(b"Target"), number)
        feature_id = attributes.get(b"ID")
        parents = self._parents(attributes, feature_id, ftype, number)
        if feature_id is not None:
            self._define(feature_id, seqid, parents, ftype, number)
            name = attributes.get(b"Name")
            if name is not None and name != feature_id:
                self.names.setdefault(name, feature_id)
        if ftype in _CDS and ranged:
            for parent in parents or (None,):
                group = self.cds.setdefault((parent, feature_id), [strand, array("q")])
                group[1].extend((start, end, int(phase), number))
                if b"exception" in attributes:
                    # NCBI marks ribosomal slippage and translation discrepancies: the frame knowingly jumps.
                    self.frameshifted.add(parent)
        self.records += 1

    def _seqid(self, seqid: bytes, number: int) -> bytes:
        shared = self.seqids.get(seqid)
        if shared is not None:
            return shared
        if not printable(seqid):
            raise FormatError("GFF3_SEQID_INVALID", f"line {number}: sequence name {_text(seqid, 30)} holds a "
                              "control character or a byte that is not ASCII", number)
        if seqid.startswith(b"md5:") and not _MD5_SEQID.match(seqid):
            raise FormatError("GFF3_SEQID_INVALID", f"line {number}: an MD5 sequence name is 'md5:', 32 hex digits, "
                              f"':' and the name; {_text(seqid)} has the wrong separator or digest", number)
        self.seqids[seqid] = seqid
        return seqid

    def _parents(self, attributes: dict[bytes, bytes], feature_id: bytes | None, ftype: bytes,
                 number: int) -> tuple[bytes, ...]:
        """Each Parent as the ID it names (a Name is resolved to its feature's ID). A Parent not seen yet
        is kept as written and must be defined before the block ends (plain genometools allows that).
        A Parent naming the line's own ID refers to the earlier feature of another type holding that ID
        (Glimmer gives a gene and its mRNA one ID); otherwise the feature would be its own part."""
        if b"Parent" not in attributes:
            return ()
        resolved = []
        for parent in attributes[b"Parent"].split(b","):
            known = self.ids.get(parent)
            if parent == feature_id and (known is None or known[3] == ftype):
                raise FormatError("GFF3_PARENT_SELF", f"line {number}: the feature {_text(parent)} names itself as "
                                  "its Parent", number)
            if parent not in self.ids and parent in self.names:
                parent = self.names[parent]
            elif parent not in self.ids:
                self.pending.append((number, parent))
            resolved.append(parent)
        return tuple(resolved)

    def _define(self, feature_id: bytes, seqid: bytes, parents: tuple[bytes, ...], ftype: bytes,
                number: int) -> None:
        """Record an ID; lines repeating it are parts of one feature and must agree on sequence and Parent.
        A line of another type repeating an ID is a second feature under a taken ID: a warning (GFF3 1.26:
        IDs must be unique; gt gff3 refuses it, readers that index by line read it)."""
        known = self.ids.get(feature_id)
        if known is None:
            self.ids[feature_id] = (seqid, number, parents, ftype)
            return
        first_seqid, first_line, first_parents, first_type = known
        if first_type != ftype:
            warn(self.details, "GFF3_ID_REUSED", f"line {number}: ID {_text(feature_id)} is already the ID of the "
                 f"{_text(first_type)} at line {first_line}; this {_text(ftype)} is read as a separate feature (IDs "
                 "must be unique, and lines sharing one are parts of one feature of one type)", number)
            return
        if first_seqid != seqid:
            raise FormatError("GFF3_DUPLICATE_ID", f"line {number}: ID {_text(feature_id)} is already used at line "
                              f"{first_line} on sequence {_text(first_seqid)}; lines sharing an ID are one feature "
                              "and must be on the same sequence", number)
        if set(first_parents) != set(parents):
            raise FormatError("GFF3_MULTI_FEATURE_PARENT_MISMATCH", f"line {number}: ID {_text(feature_id)} is "
                              f"already used at line {first_line} with another Parent; lines sharing an ID are one "
                              "feature and must have the same Parent", number)

    def end_block(self) -> None:
        """At `###` or the end: every Parent must be defined and acyclic, the CDS phase chains must hold;
        then the IDs are forgotten."""
        if self.pending:
            self._check_pending()
        self._check_cds_phases()
        self.ids.clear()
        self.names.clear()
        self.cds.clear()
        self.frameshifted.clear()
        self.pending.clear()

    def _check_pending(self) -> None:
        for number, parent in self.pending:  # in line order
            if parent not in self.ids and parent not in self.names:
                raise FormatError("GFF3_PARENT_UNDEFINED", f"line {number}: Parent {_text(parent)} is not the ID of "
                                  "any feature (before the next '###' line, which ends what can be referred to)",
                                  number)
        # Only a Parent named before its definition can close a cycle: look for one from each such feature.
        done: set[bytes] = set()
        for feature_id in self.ids:
            if feature_id in done:
                continue
            on_path: set[bytes] = set()
            stack: list[tuple[bytes, int]] = [(feature_id, 0)]
            while stack:
                node, index = stack.pop()
                parents = self.ids[node][2] if node in self.ids else ()
                parents = tuple(p for p in parents if p != node)  # an ID reused by a part-of feature (warned)
                if index == 0:
                    on_path.add(node)
                if index < len(parents):
                    stack.append((node, index + 1))
                    parent = parents[index]
                    parent = parent if parent in self.ids else self.names.get(parent, parent)
                    if parent in on_path:
                        line = self.ids[node][1]
                        raise FormatError("GFF3_PARENT_CYCLE", f"line {line}: Parent {_text(parent)} of "
                                          f"{_text(node)} is also one of its descendants: the parts form a cycle",
                                          line)
                    if parent not in done and parent in self.ids:
                        stack.append((parent, 0))
                else:
                    on_path.discard(node)
                    done.add(node)

    def _check_cds_phases(self) -> None:
        """Each CDS's phase follows from the one before it in the transcript (genometools' CDS check).

        A parent's CDS lines sharing an ID are one chain; its CDS lines without a shared ID are another.
        A parent whose CDS carry NCBI's `exception` attribute (ribosomal slippage, a translation discrepancy)
        is not checked: its frame shifts on purpose. A wrong phase is a warning (the first per chain): gt gff3
        -tidy corrects it, and the annotation step reads no phases; lifted-over annotations carry them.
        """
        chains: dict[tuple[bytes | None, bytes | None], list] = {}
        for (parent, cds_id), (strand, values) in self.cds.items():
            if parent in self.frameshifted:
                continue
            if cds_id is not None and len(values) > 4:
                chains[(parent, cds_id)] = [strand, values]
            elif parent is not None:
                chain = chains.setdefault((parent, None), [strand, array("q")])
                chain[1].extend(values)
        errors = []
        for strand, values in chains.values():
            parts = sorted(zip(values[0::4], values[1::4], values[2::4], values[3::4], strict=True))
            if strand == b"-":
                parts.reverse()
            expected = None
            for start, end, phase, number in parts:
                if expected is not None and phase != expected:
                    errors.append((number, phase, expected))
                    break
                expected = (phase - (end - start + 1)) % 3
        for number, phase, expected in sorted(errors):
            warn(self.details, "GFF3_CDS_PHASE_WRONG", f"line {number}: this CDS has phase {phase}, but the CDS "
                 f"before it in the transcript leaves phase {expected}", number)


def _gff3_attributes(column: bytes, number: int, details: dict) -> dict[bytes, bytes]:
    """Column 9 as tag -> value, checking tag=value syntax, escaping and repeats.

    An attribute without a value (`Dbxref=`), and a token without '=' or without a tag among tag=value
    pairs (Glimmer's `Lack 3'-end`, `=genomic DNA`), are warnings and are skipped, as gt gff3 -tidy and the
    annotation step skip them (GFF3 1.26 says nothing of empty values). A column without any tag=value
    pair is not GFF3 attributes at all (GFF1/GFF2 group fields, AUGUSTUS' bare gene names) and stays an
    error, and so does a '.' followed by attributes (gt gff3 -tidy refuses it too).
    """
    attributes: dict[bytes, bytes] = {}
    if column == b".":
        return attributes
    for item in column.split(b";"):
        key, eq, value = item.partition(b"=")
        if not key or not value or b"=" in value or key in attributes or value.isspace():
            if not item.strip():
                continue  # `;;` or the trailing `;`
            if eq and key.strip() and not value.strip():
                warn(details, "GFF3_ATTRIBUTE_EMPTY", f"line {number}: attribute {_text(key, 30)} has no value; it "
                     "is ignored", number)
                continue
            if (not eq or not key.strip()) and item.strip() != b"." and _has_pair(column):
                what = "is not tag=value" if not eq else "has no tag"
                warn(details, "GFF3_ATTRIBUTE_NOT_TAG_VALUE", f"line {number}: attribute {_text(item.strip(), 40)} "
                     f"{what}; it is ignored", number)
                continue
            _attribute_error(item, key, eq, value, attributes, number)
        attributes[key] = value
    if b"%" in column and _BAD_ESCAPE.search(column):
        raise FormatError("GFF3_BAD_ESCAPE", f"line {number}: '%' not followed by two hex digits", number)
    return attributes


def _has_pair(column: bytes) -> bool:
    """Whether column 9 holds at least one well-formed tag=value pair."""
    for item in column.split(b";"):
        key, eq, value = item.partition(b"=")
        if key.strip() and eq and value.strip() and b"=" not in value:
            return True
    return False


def _attribute_error(item: bytes, key: bytes, eq: bytes, value: bytes, attributes: dict, number: int) -> None:
    if not eq or not key:
        raise FormatError("GFF3_ATTRIBUTE_MALFORMED", f"line {number}: attribute {_text(item, 40)} is not tag=value",
                          number)
    if key in attributes:
        raise FormatError("GFF3_ATTRIBUTE_DUPLICATE", f"line {number}: tag {_text(key, 30)} repeats", number)
    raise FormatError("GFF3_ATTRIBUTE_MALFORMED", f"line {number}: the value of {_text(key, 30)} holds an '=' that "
                      "is not escaped (write it as %3D)", number)


def _check_target(value: bytes, number: int) -> None:
    """Target=<id> <start> <end> [+|-], the range 1-based with start <= end; several are comma-separated."""
    for target in value.split(b","):
        _check_one_target(target, number)


def _check_one_target(value: bytes, number: int) -> None:
    parts = value.split(b" ")
    if len(parts) not in (3, 4) or not parts[0] or not _INT.match(parts[1]) or not _INT.match(parts[2]) \
            or (len(parts) == 4 and parts[3] not in (b"+", b"-")):
        raise FormatError("GFF3_TARGET_INVALID", f"line {number}: Target must be '<id> <start> <end> [+ or -]', "
                          f"not {_text(value)}", number)
    start, end = int(parts[1]), int(parts[2])
    if start < 1 or start > end:
        raise FormatError("GFF3_TARGET_INVALID", f"line {number}: the Target range {start}-{end} is not a range "
                          "(start must be 1 or more and not after end)", number)


def _check_gap(value: bytes, ftype: bytes, length: int, target: bytes | None, number: int) -> None:
    """Gap=M8 D3 M6 I1 M6: the CIGAR-like alignment must cover the feature and (with a Target) the target."""
    protein = ftype in _PROTEIN_MATCHES
    counts = {b"M": 0, b"I": 0, b"D": 0, b"F": 0, b"R": 0}
    for op in value.split(b" "):
        match = _GAP_OP.match(op)
        if not match:
            raise FormatError("GFF3_GAP_INVALID", f"line {number}: Gap operation {_text(op, 20)} is not M, I, D, F "
                              "or R followed by a length", number)
        if match.group(1) in (b"F", b"R") and not protein:
            raise FormatError("GFF3_GAP_INVALID", f"line {number}: frameshifts (F, R) in a Gap are only allowed "
                              "in protein matches", number)
        counts[match.group(1)] += int(match.group(2))
    scale = 3 if protein else 1
    on_genome = scale * (counts[b"M"] + counts[b"D"]) + counts[b"F"] - counts[b"R"]
    if on_genome != length:
        raise FormatError("GFF3_GAP_INVALID", f"line {number}: the Gap covers {on_genome} bases of the sequence but "
                          f"the feature is {length} long", number)
    parts = target.split(b" ") if target and b"," not in target else []
    if len(parts) >= 3:
        on_target = counts[b"M"] + counts[b"I"]
        target_length = int(parts[2]) - int(parts[1]) + 1
        if on_target != target_length:
            raise FormatError("GFF3_GAP_INVALID", f"line {number}: the Gap covers {on_target} of the target but the "
                              f"Target range is {target_length} long", number)


def validate_gtf(stream: BinaryIO, details: dict) -> int:
    """GTF 2.2: nine columns, `key "value";` attributes with gene_id and transcript_id, and per transcript one
    strand and a stop codon right after the CDS (GTF's CDS excludes the stop codon).

    GTF 2.2 ignores feature types other than its nine; a line of another type (AUGUSTUS writes its gene and
    transcript lines as a bare `g1`) whose attributes name no gene_id is a warning and is skipped.

    Raises FormatError (reason GTF_*, 1-based line); records warnings in `details`. Returns the feature count.
    """
    records = 0
    # transcript_id -> [seqid, strand, None or array(CDS low, CDS high, stop low, its line, stop high, its line)]
    transcripts: dict[bytes, list] = {}
    seqids: dict[bytes, bytes] = {}  # one shared bytes object per sequence name
    for number, line in numbered_lines(stream):
        if not line.strip() or line.startswith(b"#"):
            continue
        fields = _columns(line, number, "GTF", details)
        ftype, strand = fields[2], fields[6]
        try:
            gene_id, transcript_id = _gtf_ids(fields[8], number)
        except FormatError as exc:
            if ftype in _GTF22_FEATURES:
                raise
            _skip_other_feature(details, ftype, fields[8], number, exc.message)
            records += 1
            continue
        if gene_id is None and ftype not in _GTF22_FEATURES:
            _skip_other_feature(details, ftype, fields[8], number, "it has no gene_id")
            records += 1
            continue
        if gene_id is None:
            raise FormatError("GTF_GENE_ID_MISSING", f"line {number}: every GTF feature needs gene_id", number)
        if transcript_id == b"":
            # GTF 2.2: "If empty, no transcript is associated with this feature" (seqkit's GenBank conversion).
            records += 1
            continue
        if transcript_id is None:
            if ftype != b"gene" and ftype not in _GTF22_FEATURES:
                _skip_other_feature(details, ftype, fields[8], number, "it has no transcript_id")
            elif ftype != b"gene":
                raise FormatError("GTF_TRANSCRIPT_ID_MISSING", f"line {number}: {_text(ftype)} needs transcript_id",
                                  number)
            records += 1
            continue
        seqid = seqids.setdefault(fields[0], fields[0])
        state = transcripts.get(transcript_id)
        if state is None:
            state = transcripts[transcript_id] = [seqid, strand, None]
        elif state[0] is not seqid:
            state[2] = False  # the same transcript_id on two sequences (X/Y PAR copies): too ambiguous to check
        elif state[1] != strand and state[2] is not False:
            # Not a GTF 2.2 rule in words, but a transcript on two strands is two loci under one transcript_id
            # (seqkit's GenBank conversion names two speA genes alike) or a broken model: a warning, after
            # which the transcript's coding features are not checked.
            warn(details, "GTF_STRAND_INCONSISTENT", f"line {number}: transcript {_text(transcript_id)} is on "
                 f"strand {_text(state[1])} but this {_text(ftype)} is on {_text(strand)}; its coding features "
                 "are not checked", number)
            state[2] = False  # warned once per transcript
        if (ftype == b"CDS" or ftype == b"stop_codon") and state[2] is not False:
            _track_coding(state, ftype == b"CDS", int(fields[3]), int(fields[4]), number)
        records += 1
    _check_stop_codons(transcripts, details)
    return records


def _skip_other_feature(details: dict, ftype: bytes, column: bytes, number: int, why: str) -> None:
    why = why.removeprefix(f"line {number}: ")
    warn(details, "GTF_FEATURE_SKIPPED", f"line {number}: this {_text(ftype, 30)} line is skipped ({why}; attributes "
         f"{_text(column, 40)}): GTF 2.2 defines only CDS, start_codon, stop_codon, 5UTR, 3UTR, inter, inter_CNS, "
         "intron_CNS and exon, and ignores other features", number)


def _gtf_ids(column: bytes, number: int) -> tuple[bytes | None, bytes | None]:
    """gene_id and transcript_id, checking that every attribute is `key "value"` or `key value`.

    A quoted value may hold a ';' (free-text notes): when splitting at every ';' leaves a broken item,
    the column is split again at the ';' outside quotes only.
    """
    gene_id = transcript_id = None
    items = column.strip().rstrip(b";").split(b";")
    if b'"' in column and not all(_GTF_ATTR.match(item) or not item.strip() for item in items):
        items = _GTF_ITEMS.findall(column.strip().rstrip(b";"))
    for item in items:
        match = _GTF_ATTR.match(item)
        if match is None:
            if not item.strip():
                continue
            raise FormatError("GTF_ATTRIBUTE_MALFORMED",
                              f"line {number}: attribute {_text(item.strip(), 40)} is not key \"value\"", number)
        key = match.group(1)
        if key == b"gene_id" and gene_id is None:
            gene_id = match.group(2).strip(b'"')
        elif key == b"transcript_id" and transcript_id is None:
            transcript_id = match.group(2).strip(b'"')
    return gene_id, transcript_id


_NONE = -1  # no CDS / stop codon seen yet (coordinates are 1 or more)


def _track_coding(state: list, cds: bool, start: int, end: int, number: int) -> None:
    bounds = state[2]
    if bounds is None:
        bounds = state[2] = array("q", (_NONE,) * 6)
    if cds:
        bounds[0] = start if bounds[0] == _NONE else min(bounds[0], start)
        bounds[1] = max(bounds[1], end)
    else:
        if bounds[2] == _NONE or start < bounds[2]:
            bounds[2], bounds[3] = start, number
        if end > bounds[4]:
            bounds[4], bounds[5] = end, number


def _check_stop_codons(transcripts: dict[bytes, list], details: dict) -> None:
    """The stop codon follows the last CDS base (+ strand) or precedes the first (- strand).

    A stop codon inside the CDS (GeneMark and GFF3 converters count it in the CDS; GTF 2.2: "the stop codon
    is not included in the CDS") is a warning, as gt gtf_to_gff3 -tidy has it; one away from the CDS, an
    error: the coding sequence is not where the file says.
    """
    errors = []
    inside_cds = []
    for transcript_id, (_seqid, strand, bounds) in transcripts.items():
        if not bounds or bounds[0] == _NONE or bounds[2] == _NONE or strand not in (b"+", b"-"):
            continue
        cds_low, cds_high, stop_low, low_line, stop_high, high_line = bounds
        if strand == b"+":
            inside, flanking, line = stop_low <= cds_high, stop_low == cds_high + 1, low_line
        else:
            inside, flanking, line = stop_high >= cds_low, stop_high == cds_low - 1, high_line
        name = _text(transcript_id)
        if inside:
            inside_cds.append((line, f"line {line}: the stop codon of transcript {name} lies inside its CDS; in GTF "
                               "the CDS ends before the stop codon"))
        elif not flanking:
            errors.append((line, "GTF_STOP_CODON_NOT_FLANKING", f"line {line}: the stop codon of transcript {name} "
                           "does not follow its CDS directly"))
    if errors:
        line, reason, message = min(errors)
        raise FormatError(reason, message, line)
    for line, message in sorted(inside_cds):
        warn(details, "GTF_STOP_CODON_IN_CDS", message, line)
