"""Annotate a call set: overlapping gene, known/novel, genotype, zygosity, depth; and summarise it.

Streaming: the VCF is read one record at a time. Gene lookup uses per-contig
arrays sorted by start with `bisect`, plus the longest gene length on the
contig as the look-back bound, so nested and overlapping genes are all found
without an interval tree. Known sites are looked up through their tabix/CSI
index when they have one (a dbSNP-sized file never sits in memory), else
loaded into a set of (chrom, pos, ref, alt) keys.
"""

from __future__ import annotations

import bisect
import gzip
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pysam

COLUMNS = [
    "sample_id", "chrom", "pos", "ref", "alt", "variant_type", "qual", "filter", "genotype",
    "zygosity", "depth", "gene", "known", "variant_id",
]
TRANSITIONS = frozenset({("A", "G"), ("G", "A"), ("C", "T"), ("T", "C")})
GENE_FEATURES = frozenset({"gene", "ncRNA_gene", "pseudogene"})  # Ensembl GFF3 types a gene line can have
_GTF_ATTR = re.compile(r'\s*([^\s;]+)\s+"?([^";]*)"?\s*')


@dataclass
class GeneIntervals:
    """Genes per contig, sorted by start (1-based, inclusive), for point lookups."""

    starts: dict[str, list[int]] = field(default_factory=dict)
    ends: dict[str, list[int]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    max_length: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(v) for v in self.names.values())

    def genes_at(self, chrom: str, start: int, end: int | None = None) -> list[str]:
        """Names of genes overlapping [start, end] (1-based, inclusive), in start order, without repeats."""
        end = start if end is None else end
        starts = self.starts.get(chrom)
        if not starts:
            return []
        ends, names = self.ends[chrom], self.names[chrom]
        hi = bisect.bisect_right(starts, end)
        lo = bisect.bisect_left(starts, start - self.max_length[chrom])
        found: list[str] = []
        for i in range(lo, hi):
            if ends[i] >= start and names[i] not in found:
                found.append(names[i])
        return found


def load_gene_intervals(annotation_path: str | Path) -> GeneIntervals:
    """Gene features from a GTF or GFF3 (plain or gzip), named by gene_name/Name, else gene_id/ID.

    GTF vs GFF3 is decided per line by the attribute syntax (`key "value";`
    vs `key=value;`). Files without `gene` lines (some GTFs list only
    transcripts/exons) fall back to each gene's span over its other features.
    Raises ValueError when no gene can be read at all.
    """
    genes: list[tuple[str, int, int, str]] = []
    spans: dict[tuple[str, str], list[int]] = {}  # fallback: (chrom, name) -> [min start, max end]
    opener = gzip.open if _is_gzip(annotation_path) else open
    with opener(annotation_path, "rt") as fh:
        for line in fh:
            if not line.strip() or line.startswith("#"):
                if line.startswith("##FASTA"):
                    break
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 9:
                continue
            chrom, feature, attributes = fields[0], fields[2], _attributes(fields[8])
            try:
                start, end = int(fields[3]), int(fields[4])
            except ValueError:
                continue
            name = _gene_name(attributes)
            if feature in GENE_FEATURES and name:
                genes.append((chrom, start, end, name))
            else:
                key_name = attributes.get("gene_name") or attributes.get("gene") or attributes.get("gene_id")
                if key_name:
                    span = spans.setdefault((chrom, key_name), [start, end])
                    span[0], span[1] = min(span[0], start), max(span[1], end)
    if not genes:
        genes = [(chrom, s, e, name) for (chrom, name), (s, e) in spans.items()]
    if not genes:
        raise ValueError(f"no gene features found in {Path(annotation_path).name}")
    intervals = GeneIntervals()
    for chrom, start, end, name in sorted(genes):
        intervals.starts.setdefault(chrom, []).append(start)
        intervals.ends.setdefault(chrom, []).append(end)
        intervals.names.setdefault(chrom, []).append(name)
        intervals.max_length[chrom] = max(intervals.max_length.get(chrom, 0), end - start + 1)
    return intervals


def _is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.strip().split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" in part and '"' not in part.split("=", 1)[0]:
            key, value = part.split("=", 1)  # GFF3
            out[key.strip()] = _unescape(value.strip())
        else:
            match = _GTF_ATTR.fullmatch(part)
            if match:
                out.setdefault(match[1], match[2])
    return out


def _unescape(value: str) -> str:
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), value)


def _gene_name(attributes: dict[str, str]) -> str | None:
    for key in ("gene_name", "Name", "gene", "gene_id", "ID"):
        value = attributes.get(key)
        if value:
            return value.removeprefix("gene:") if key == "ID" else value
    return None


class KnownSites:
    """Membership of (chrom, pos, ref, alt) in a known-sites VCF; indexed lookups when possible."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._vcf = pysam.VariantFile(self.path)
        self._indexed = self._vcf.index is not None
        self._keys: set[tuple[str, int, str, str]] | None = None
        if not self._indexed:
            # pysam types REF as optional (a record built in memory may lack it); one read from a file has it
            self._keys = {(r.chrom, r.pos, r.ref or "", alt) for r in self._vcf for alt in (r.alts or ())}
            self._vcf.close()

    def __contains__(self, key: tuple[str, int, str, str]) -> bool:
        chrom, pos, ref, alt = key
        if self._keys is not None:
            return key in self._keys
        try:
            records = self._vcf.fetch(chrom, pos - 1, pos)
        except ValueError:
            return False
        return any(r.pos == pos and r.ref == ref and alt in (r.alts or ()) for r in records)

    def close(self) -> None:
        if self._keys is None:
            self._vcf.close()


def variant_type(ref: str, alt: str) -> str:
    """SNV, MNV (same length > 1), INS/DEL (anchored, one side a prefix of the other), else OTHER."""
    if not alt or alt.startswith("<") or alt in ("*", ".") or "[" in alt or "]" in alt:
        return "OTHER"
    if len(ref) == len(alt):
        return "SNV" if len(ref) == 1 else "MNV"
    if len(ref) < len(alt) and alt.startswith(ref):
        return "INS"
    if len(alt) < len(ref) and ref.startswith(alt):
        return "DEL"
    return "OTHER"


def zygosity(alleles: tuple[int | None, ...] | None) -> str:
    if not alleles or any(a is None for a in alleles):
        return "missing"
    if all(a == 0 for a in alleles):
        return "hom_ref"
    if len(set(alleles)) == 1:
        return "hom_alt"
    return "het"


def _genotype_text(alleles: tuple[int | None, ...] | None, phased: bool) -> str | None:
    if not alleles:
        return None
    return ("|" if phased else "/").join("." if a is None else str(a) for a in alleles)


def iter_annotated(
    vcf_path: str | Path,
    *,
    sample_id: str,
    genes: GeneIntervals | None = None,
    known: KnownSites | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per (record, ALT allele), streaming. The first sample column is this sample's."""
    with pysam.VariantFile(str(vcf_path)) as vcf:
        has_sample = len(vcf.header.samples) > 0
        has_gt = "GT" in vcf.header.formats
        has_format_dp = "DP" in vcf.header.formats
        has_info_dp = "DP" in vcf.header.info
        for record in vcf:
            call = record.samples[0] if has_sample else None
            alleles = call.get("GT") if call is not None and has_gt else None
            gt = _genotype_text(alleles, bool(call.phased)) if call is not None and alleles else None
            depth = None
            if call is not None and has_format_dp:
                depth = call.get("DP")
            if depth is None and has_info_dp:
                depth = record.info.get("DP")
            # pysam's stub types FILTER keys as int | str (it also looks filters up by index); they are names
            filters: list[str] = list(record.filter.keys())  # type: ignore[arg-type]
            ref = record.ref or ""  # optional in pysam's types; a record read from a file always has REF
            alts = record.alts or ()
            end = record.pos + max(len(ref), 1) - 1
            gene_names = genes.genes_at(record.chrom, record.pos, end) if genes is not None else []
            has_id = record.id not in (None, ".", "")
            for index, alt in enumerate(alts, start=1):
                row_alleles = alleles
                if alleles and len(alts) > 1:
                    # an unsplit multiallelic site: describe this ALT (other ALTs count as non-ref here)
                    row_alleles = tuple(None if a is None else (1 if a == index else (0 if a == 0 else 2))
                                        for a in alleles)
                yield {
                    "sample_id": sample_id,
                    "chrom": record.chrom,
                    "pos": record.pos,
                    "ref": ref,
                    "alt": alt,
                    "variant_type": variant_type(ref, alt),
                    "qual": None if record.qual is None else float(record.qual),
                    "filter": ";".join(filters) if filters else ".",
                    "genotype": gt,
                    "zygosity": zygosity(row_alleles) if call is not None else "missing",
                    "depth": None if depth is None else int(depth),
                    "gene": ",".join(gene_names) if gene_names else None,
                    "known": has_id or (known is not None and (record.chrom, record.pos, ref, alt) in known),
                    "variant_id": f"{record.chrom}:{record.pos}:{ref}:{alt}",
                }


def annotate_variants(
    vcf_path: str | Path,
    *,
    annotation_path: str | Path | None = None,
    known_sites: str | Path | None = None,
    sample_id: str,
) -> pd.DataFrame:
    """The annotated variant table (columns `COLUMNS`), one row per ALT allele.

    `known` is True when the record has an ID or its (chrom, pos, ref, alt)
    is in `known_sites`; both sides should be normalised the same way
    (`normalise_vcf`) for that comparison to be exact. `gene` joins the names
    of every gene the REF span overlaps with commas, or is None.
    """
    genes = load_gene_intervals(annotation_path) if annotation_path else None
    known = KnownSites(known_sites) if known_sites else None
    try:
        rows = list(iter_annotated(vcf_path, sample_id=sample_id, genes=genes, known=known))
    finally:
        if known is not None:
            known.close()
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype(
        {
            "sample_id": "string",
            "chrom": "string",
            "pos": "int64",
            "ref": "string",
            "alt": "string",
            "variant_type": "string",
            "qual": "float64",
            "filter": "string",
            "genotype": "string",
            "zygosity": "string",
            "depth": "Int64",
            "gene": "string",
            "known": "bool",
            "variant_id": "string",
        }
    )


def summarise_variants(df: pd.DataFrame) -> dict[str, Any]:
    """Call-set statistics: counts by type, Ts/Tv (SNVs), het/hom, call rate, known/novel, genes hit.

    Ratios are None when their denominator is zero. `call_rate` is the share
    of rows with a complete genotype (None for an empty table).
    """
    total = len(df)
    types = Counter(df["variant_type"].astype(str)) if total else Counter()
    ts = tv = 0
    if total:
        snvs = df[df["variant_type"] == "SNV"]
        for ref, alt in zip(snvs["ref"].astype(str), snvs["alt"].astype(str), strict=True):
            if (ref.upper(), alt.upper()) in TRANSITIONS:
                ts += 1
            else:
                tv += 1
    zyg = Counter(df["zygosity"].astype(str)) if total else Counter()
    het, hom_alt = zyg.get("het", 0), zyg.get("hom_alt", 0)
    known = int(df["known"].astype(bool).sum()) if total else 0
    genes_hit: set[str] = set()
    if total:
        for value in df["gene"].dropna().astype(str):
            genes_hit.update(value.split(","))
    return {
        "variants": total,
        "by_type": {k: int(types.get(k, 0)) for k in ("SNV", "MNV", "INS", "DEL", "OTHER")},
        "snvs": int(types.get("SNV", 0)),
        "indels": int(types.get("INS", 0) + types.get("DEL", 0)),
        "ts": ts,
        "tv": tv,
        "ts_tv": round(ts / tv, 4) if tv else None,
        "het": int(het),
        "hom_alt": int(hom_alt),
        "hom_ref": int(zyg.get("hom_ref", 0)),
        "missing": int(zyg.get("missing", 0)),
        "het_hom_ratio": round(het / hom_alt, 4) if hom_alt else None,
        "call_rate": round((total - zyg.get("missing", 0)) / total, 4) if total else None,
        "known": known,
        "novel": total - known,
        "genes_hit": len(genes_hit),
        "genes": sorted(genes_hit),
    }


def empty_variants() -> pd.DataFrame:
    """The variant table of a sample with no call set: the columns, no rows."""
    return pd.DataFrame(columns=COLUMNS)
