"""Reference consistency: do an uploaded alignment's or call set's contigs belong to the configured reference?

A BAM aligned to GRCh37 and processed against another genome is not a QC
problem that a metric shows: flagstat still counts mapped reads, calling still
runs, and the result is silently meaningless. So the contigs a file declares
are compared with the reference before any compute is spent on it.

What is read (headers only, never the whole file where a header suffices):
- SAM/BAM/CRAM: the @SQ lines (SN, LN and M5 where present), through pysam.
- VCF: the `##contig` lines (ID, length); when the header has none, the CHROMs
  its records use, streamed line by line, with the largest POS seen per contig
  (a position past the reference's end is as telling as a wrong length).
  BCF always carries its contig dictionary in the header.

The rules (a "mismatch" fails the comparison):
- a file contig absent from the reference is a mismatch: whatever was aligned
  or called there has no place in this reference;
- a name that matches only after adding or removing the `chr` prefix
  (`1`/`chr1`, `MT`/`chrM`, `M`/`chrM`) is a mismatch too, named as such: the
  data may well be the same assembly, but every lookup by name would miss;
- the same name with a different length is a mismatch (another assembly:
  chr1 is 249,250,621 bp in GRCh37 and 248,956,422 bp in GRCh38);
- an `M5` (SAM spec: MD5 of the upper-case sequence without whitespace) that
  differs from the reference sequence's is a mismatch (same name and length,
  different sequence). Reference M5s are computed once per reference file and
  cached beside it (`<fasta>.m5`), only when a file carries M5 tags;
- a reference contig absent from the file is fine: a BAM of chr22, or a panel
  VCF, legitimately covers part of the genome (and if nothing overlaps, every
  file contig is absent, which the first rule already fails);
- a file that declares no contig at all (an unaligned BAM, a VCF without
  contigs or records) has nothing to compare and passes, saying so.

Plain Python (no Dagster): the `qc_metrics` asset calls it per file and stores
the verdict in the sample's QC summary; the gate, the report and the cohort
table read that stored verdict.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genoflow_dagster.formats.io import open_decompressed
from genoflow_dagster.qc.alignment import fai_lengths

# Statuses of a comparison; "not_graded" is for a sample graded without a configured reference.
PASS, FAIL, NOT_GRADED = "pass", "fail", "not_graded"
NAMES_SHOWN = 5  # contigs named in a message before "and N more"
M5_CHUNK = 8 << 20  # bases fetched at a time while hashing a reference contig

_CONTIG_LINE = re.compile(rb"^##contig=<(.*)>\s*$")
_KEY_VALUE = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^,]*)')


@dataclass(frozen=True)
class FileContig:
    """One contig as a file declares or uses it; `max_pos` only when read from VCF records."""

    name: str
    length: int | None = None
    m5: str | None = None
    max_pos: int | None = None


@dataclass(frozen=True)
class FileContigs:
    """The contigs of one file and where they were read from (`@SQ header`, `##contig header`, `records`)."""

    source: str
    contigs: tuple[FileContig, ...]


@dataclass(frozen=True)
class ContigMismatch:
    """One file contig that does not fit the reference.

    kind: `absent` (no such contig), `prefix` (only the `chr` prefix differs),
    `length`, `m5` (different sequence), `beyond_end` (records past the reference's end).
    """

    contig: str
    kind: str
    file_length: int | None = None
    reference_contig: str | None = None
    reference_length: int | None = None


@dataclass(frozen=True)
class ReferenceMatch:
    """The verdict for one file against one reference."""

    file: str
    status: str  # pass | fail | not_graded
    message: str
    source: str = ""
    contigs: int = 0
    matched: int = 0
    m5_compared: int = 0
    mismatches: tuple[ContigMismatch, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mismatches"] = [asdict(m) for m in self.mismatches]
        return data


class ReferenceContigs:
    """The configured reference's contigs (name -> length) and, on demand, their M5 digests."""

    def __init__(self, lengths: dict[str, int], *, label: str,
                 m5_source: Callable[[], dict[str, str]] | None = None) -> None:
        self.lengths = dict(lengths)
        self.label = label
        self._m5_source = m5_source
        self._m5: dict[str, str] | None = None

    @classmethod
    def from_fasta(cls, fasta: str | Path, *, name: str | None = None) -> ReferenceContigs:
        """From an indexed FASTA (the .fai is written beside it when missing). `name` is the file name
        shown in messages when the reference has several contigs (default: the FASTA's own name)."""
        fasta = Path(fasta)
        lengths = fai_lengths(fasta)
        return cls(lengths, label=reference_label(lengths, name or fasta.name),
                   m5_source=lambda: cached_reference_m5(fasta))

    def m5(self, contig: str) -> str | None:
        if self._m5_source is None:
            return None
        if self._m5 is None:
            self._m5 = self._m5_source()
        return self._m5.get(contig)


def reference_label(lengths: dict[str, int], file_name: str) -> str:
    """How messages name a reference: its contig when it has one (`MN908947.3`), else the file
    name and the number of contigs (`GRCh38.fa (195 contigs)`)."""
    if len(lengths) == 1:
        return next(iter(lengths))
    return f"{file_name} ({len(lengths):,} contigs)"


def cached_reference_m5(fasta: str | Path) -> dict[str, str]:
    """M5 (SAM spec: MD5 of the upper-case sequence, no whitespace) of every contig, computed once and
    kept in `<fasta>.m5` (tab-separated name and digest) beside the FASTA and its index."""
    fasta = Path(fasta)
    cache = Path(str(fasta) + ".m5")
    if cache.is_file() and cache.stat().st_mtime >= fasta.stat().st_mtime:
        digests = {}
        for line in cache.read_text().splitlines():
            name, _, digest = line.partition("\t")
            if digest:
                digests[name] = digest
        return digests
    digests = reference_m5(fasta)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(f"{name}\t{digest}\n" for name, digest in digests.items()))
        tmp.replace(cache)
    except OSError:  # a read-only reference folder: the digests are still right, only not kept
        tmp.unlink(missing_ok=True)
    return digests


def reference_m5(fasta: str | Path) -> dict[str, str]:
    """M5 of every contig of an indexed FASTA, hashed in chunks (a 250 Mb chromosome never sits in memory)."""
    import pysam

    fai_lengths(Path(fasta))
    digests: dict[str, str] = {}
    with pysam.FastaFile(str(fasta)) as fa:
        for name, length in zip(fa.references, fa.lengths, strict=True):
            md5 = hashlib.md5(usedforsecurity=False)
            for start in range(0, length, M5_CHUNK):
                md5.update(fa.fetch(name, start, min(start + M5_CHUNK, length)).upper().encode("ascii"))
            digests[name] = md5.hexdigest()
    return digests


def alignment_contigs(path: str | Path) -> FileContigs:
    """The @SQ lines of a SAM/BAM/CRAM (SN, LN, M5). Raises ValueError when the header cannot be read."""
    import pysam

    try:
        with pysam.AlignmentFile(str(path), check_sq=False) as aln:
            sq = aln.header.to_dict().get("SQ") or []
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the alignment header: {exc}") from exc
    contigs = tuple(FileContig(name=str(s["SN"]), length=_int_or_none(s.get("LN")),
                               m5=_m5_or_none(s.get("M5"))) for s in sq if "SN" in s)
    return FileContigs(source="@SQ header", contigs=contigs)


def vcf_contigs(path: str | Path) -> FileContigs:
    """The contigs of a VCF (plain, gzip/BGZF, bzip2) or BCF: its `##contig` lines, or, when it has none,
    the CHROMs its records use (streamed) with the largest POS of each. Raises ValueError on unreadable input."""
    try:
        with open_decompressed(path) as stream:
            if stream.read(3) == b"BCF":
                return _bcf_contigs(path)
        with open_decompressed(path) as stream:
            return _text_vcf_contigs(stream)
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read the VCF: {exc}") from exc


def _bcf_contigs(path: str | Path) -> FileContigs:
    import pysam

    with pysam.VariantFile(str(path)) as vcf:
        contigs = tuple(FileContig(name=c.name, length=c.length) for c in vcf.header.contigs.values())
    return FileContigs(source="##contig header", contigs=contigs)


def _text_vcf_contigs(stream: Iterable[bytes]) -> FileContigs:
    declared: list[FileContig] = []
    lines = iter(stream)
    for line in lines:
        if not line.startswith(b"#"):
            # a header without a #CHROM line: this is the first record
            return _record_contigs(declared, _chain(line, lines))
        if line.startswith(b"#CHROM"):
            break
        match = _CONTIG_LINE.match(line)
        if match:
            fields = dict(_KEY_VALUE.findall(match.group(1).decode("utf-8", "replace")))
            name = fields.get("ID", "").strip('"')
            if name:
                declared.append(FileContig(name=name, length=_int_or_none(fields.get("length", "").strip('"'))))
    return _record_contigs(declared, lines)


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterable[bytes]:
    yield first
    yield from rest


def _record_contigs(declared: list[FileContig], records: Iterable[bytes]) -> FileContigs:
    if declared:
        return FileContigs(source="##contig header", contigs=tuple(declared))
    max_pos: dict[str, int] = {}
    for line in records:
        chrom, _, rest = line.partition(b"\t")
        if not chrom or chrom.startswith(b"#"):
            continue
        pos_field = rest.split(b"\t", 1)[0]
        name = chrom.decode("utf-8", "replace")
        pos = int(pos_field) if pos_field.isdigit() else 0
        if pos > max_pos.get(name, -1):
            max_pos[name] = pos
    return FileContigs(source="records", contigs=tuple(FileContig(name=n, max_pos=p) for n, p in max_pos.items()))


def _chr_alias(name: str) -> list[str]:
    """The names a contig may go by with or without the `chr` prefix (`MT`/`chrM` included)."""
    if name.lower().startswith("chr"):
        base = name[3:]
        return [base, "MT"] if base in ("M", "m") else [base]
    return ["chr" + name, "chrM"] if name == "MT" else ["chr" + name]


def match_contigs(contigs: FileContigs, reference: ReferenceContigs, *, file: str) -> ReferenceMatch:
    """Compare one file's contigs with the reference by the rules of the module docstring."""
    if not contigs.contigs:
        what = "no @SQ lines (unaligned)" if contigs.source == "@SQ header" else "no contigs and no records"
        return ReferenceMatch(file=file, status=PASS, source=contigs.source,
                              message=f"{file}: nothing to compare with {reference.label}: the file has {what}")
    mismatches: list[ContigMismatch] = []
    matched = m5_compared = 0
    for contig in contigs.contigs:
        ref_length = reference.lengths.get(contig.name)
        if ref_length is None:
            alias = next((a for a in _chr_alias(contig.name) if a in reference.lengths), None)
            kind = "prefix" if alias else "absent"
            mismatches.append(ContigMismatch(contig.name, kind, contig.length, alias,
                                             reference.lengths.get(alias) if alias else None))
            continue
        if contig.length is not None and contig.length != ref_length:
            mismatches.append(ContigMismatch(contig.name, "length", contig.length, contig.name, ref_length))
            continue
        if contig.max_pos is not None and contig.max_pos > ref_length:
            mismatches.append(ContigMismatch(contig.name, "beyond_end", contig.max_pos, contig.name, ref_length))
            continue
        if contig.m5:
            ref_m5 = reference.m5(contig.name)
            if ref_m5 is not None:
                m5_compared += 1
                if ref_m5 != contig.m5:
                    mismatches.append(ContigMismatch(contig.name, "m5", contig.length, contig.name, ref_length))
                    continue
        matched += 1
    status = FAIL if mismatches else PASS
    if mismatches:
        message = f"{file}: " + "; ".join(_describe(mismatches, len(contigs.contigs), matched, reference.label))
    else:
        checked = "names, lengths and M5" if m5_compared else "names and lengths" if any(
            c.length is not None for c in contigs.contigs) else "names"
        message = (f"{file}: {matched:,} contig(s) match {reference.label} ({checked}, "
                   f"from the {contigs.source})")
    return ReferenceMatch(file=file, status=status, message=message, source=contigs.source,
                          contigs=len(contigs.contigs), matched=matched, m5_compared=m5_compared,
                          mismatches=tuple(mismatches))


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:NAMES_SHOWN])
    more = len(items) - NAMES_SHOWN
    return f"{shown} and {more:,} more" if more > 0 else shown


def _describe(mismatches: list[ContigMismatch], total: int, matched: int, label: str) -> list[str]:
    by_kind: dict[str, list[ContigMismatch]] = {}
    for m in mismatches:
        by_kind.setdefault(m.kind, []).append(m)
    parts: list[str] = []
    prefix = by_kind.get("prefix", [])
    if prefix:
        lacking = [m for m in prefix if not m.contig.lower().startswith("chr")]
        if lacking:
            parts.append(f"the file names contigs without the 'chr' prefix the reference uses "
                         f"({_names([f'{m.contig} vs {m.reference_contig}' for m in lacking])})")
        extra = [m for m in prefix if m.contig.lower().startswith("chr")]
        if extra:
            parts.append(f"the file names contigs with a 'chr' prefix the reference does not use "
                         f"({_names([f'{m.contig} vs {m.reference_contig}' for m in extra])})")
    absent = by_kind.get("absent", [])
    if absent:
        names = _names([m.contig for m in absent])
        if len(absent) == total == 1:
            parts.append(f"its only contig, {names}, is not in the reference {label}: is this the right reference?")
        elif len(absent) == total:
            parts.append(f"none of its {total:,} contigs is in the reference {label} ({names}): "
                         f"is this the right reference?")
        else:
            parts.append(f"{len(absent):,} of its {total:,} contigs are not in the reference {label} ({names})")
    length = by_kind.get("length", [])
    if length:
        parts.append(f"{len(length):,} contig(s) differ in length from {label} (" + _names(
            [f"{m.contig}: {m.file_length:,} bp in the file, {m.reference_length:,} in the reference"
             for m in length]) + "): another assembly?")
    beyond = by_kind.get("beyond_end", [])
    if beyond:
        parts.append(f"records lie past the end of {len(beyond):,} reference contig(s) (" + _names(
            [f"{m.contig} at {m.file_length:,}, length {m.reference_length:,}" for m in beyond]) + ")")
    m5 = by_kind.get("m5", [])
    if m5:
        parts.append(f"{len(m5):,} contig(s) have the same name and length but a different sequence (M5) "
                     f"than {label} ({_names([m.contig for m in m5])})")
    return parts


def sample_verdict(matches: list[dict[str, Any]], *, reference: str | None,
                   not_graded_reason: str | None = None) -> dict[str, Any]:
    """One verdict for a sample from its files' comparisons (`ReferenceMatch.to_dict()`, as stored):
    what the gate, the report and the cohort table read.

    `{"status": pass|fail|not_graded, "message", "reference", "files"}`; `not_graded_reason`
    (no reference configured) overrides everything else: never a pass for a check that did not run
    (the verdict then also holds `"graded": False` and that `not_graded_reason`).
    """
    if not_graded_reason:
        return {"status": NOT_GRADED, "reference": reference, "files": [],
                "message": f"not graded: {not_graded_reason}", "graded": False,
                "not_graded_reason": not_graded_reason}
    if not matches:
        return {"status": PASS, "reference": reference, "files": [],
                "message": "nothing to compare: no uploaded alignment or call set"}
    failed = [m for m in matches if m["status"] == FAIL]
    message = "; ".join(m["message"] for m in (failed or matches))
    return {"status": FAIL if failed else PASS, "reference": reference, "message": message, "files": matches}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _m5_or_none(value: Any) -> str | None:
    text = str(value or "").strip().lower()
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None
