"""Call-set metrics of one VCF/BCF, counted the way `bcftools stats` (1.16) counts them.

Allele types come from htslib itself (pysam's `alleles_variant_types`, i.e.
`bcf_get_variant_type`): `<*>`, `<NON_REF>` and `<X>` are reference alleles, `*`
is an OVERLAP allele, symbolic alleles such as `<DEL>` are OTHER. A record's type is
the union of its ALT alleles' types, and then, as in bcftools stats:
- `no_alts`: the union is empty (no ALT, or only reference-like ALTs);
- `snps`, `mnps`, `indels`, `others`: records whose union *contains* that type, so a
  record with a SNP and an indel ALT counts once in each;
- `multiallelic_sites`: more than one ALT; `multiallelic_snp_sites`: more than one ALT
  and a union of exactly SNP (a `*` allele disqualifies, a `<NON_REF>` does not);
- `ts`, `tv`: per SNP ALT allele (a C>T,A site adds one of each); `ts_tv` = ts/tv.
- `per_sample` mirrors bcftools' PSC: a genotype with any missing allele is
  `missing`; one allele is `hap_ref`/`hap_alt`; 0/0 is `hom_ref` on any record; a call
  with an indel ALT counts in `indels`; `het` (0/1 and 1/2) and `hom_alt` count calls whose
  ALTs include a SNP or are reference-like (`<NON_REF>`), never calls of only `*`, MNP,
  indel or symbolic ALTs; ts/tv come from the lower called ALT when it is a SNP.

`het_hom_ratio` = sum of het / sum of hom_alt over samples; `call_rate` = called
genotypes / (records x samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pysam

_TS = {frozenset("AG"), frozenset("CT")}
_TYPE_BITS = {"REF": 0, "SNP": 1, "MNP": 2, "INDEL": 4, "OTHER": 8, "BND": 16, "OVERLAP": 32}
_SNP, _MNP, _INDEL, _OTHER, _BND = 1, 2, 4, 8, 16


class _KnownSites:
    """Membership of (chrom, pos, ref, alt) in a known-sites VCF: indexed files are
    queried per record (dbSNP-sized files never sit in memory), small unindexed ones are
    loaded into a set."""

    def __init__(self, path: str) -> None:
        self._vf = pysam.VariantFile(path)
        self._set: set[tuple[str, int, str, str]] | None = None
        try:
            self._vf.fetch(next(iter(self._vf.header.contigs), "1"), 0, 1)
        except (ValueError, StopIteration):
            self._set = set()
            for rec in self._vf.fetch():
                for alt in rec.alts or ():
                    self._set.add((rec.chrom, rec.pos, rec.ref.upper(), alt.upper()))

    def contains(self, chrom: str, pos: int, ref: str, alts: tuple[str, ...]) -> bool:
        keys = {(chrom, pos, ref.upper(), a.upper()) for a in alts}
        if self._set is not None:
            return not keys.isdisjoint(self._set)
        try:
            for rec in self._vf.fetch(chrom, pos - 1, pos):
                if rec.pos == pos and any((chrom, pos, rec.ref.upper(), a.upper()) in keys for a in rec.alts or ()):
                    return True
        except ValueError:  # contig absent from the known-sites index
            return False
        return False

    def close(self) -> None:
        self._vf.close()


def vcf_metrics(path: str | Path, *, known_sites: str | None = None) -> dict[str, Any]:
    """bcftools-stats-equivalent counts of one VCF (plain, gzip/BGZF) or BCF; see the module docstring.

    `known` counts records with an ID or an allele present in `known_sites`; `novel` the rest.
    Raises ValueError/OSError when pysam cannot read the file.
    """
    c = dict.fromkeys(("records", "no_alts", "snps", "mnps", "indels", "others",
                       "multiallelic_sites", "multiallelic_snp_sites", "ts", "tv",
                       "ts_first_alt", "tv_first_alt", "known", "novel"), 0)
    indel_lengths: dict[int, int] = {}
    known = _KnownSites(known_sites) if known_sites else None
    with pysam.VariantFile(str(path)) as vf:
        samples = list(vf.header.samples)
        psc = {s: dict.fromkeys(("hom_ref", "hom_alt", "het", "hap_ref", "hap_alt", "missing", "indels",
                                 "ts", "tv"), 0) for s in samples}
        for rec in vf:
            c["records"] += 1
            alleles = rec.alleles or (rec.ref,)
            types = rec.alleles_variant_types or ("REF",)
            bits = [_TYPE_BITS.get(t, _OTHER) for t in types]
            line = 0
            for b in bits[1:]:
                line |= b
            if line == 0:
                c["no_alts"] += 1
            if line & _SNP:
                c["snps"] += 1
            if line & _MNP:
                c["mnps"] += 1
            if line & _INDEL:
                c["indels"] += 1
            if line & _OTHER:  # breakends (BND) are in no SN category of bcftools 1.16
                c["others"] += 1
            if len(alleles) > 2:
                c["multiallelic_sites"] += 1
                if line == _SNP:
                    c["multiallelic_snp_sites"] += 1
            ref = alleles[0].upper()
            for i in range(1, len(alleles)):
                if bits[i] == _SNP:
                    ts = frozenset((ref[0], alleles[i][0].upper())) in _TS
                    c["ts" if ts else "tv"] += 1
                    if i == 1:
                        c["ts_first_alt" if ts else "tv_first_alt"] += 1
                elif bits[i] & _INDEL:
                    d = len(alleles[i]) - len(alleles[0])
                    indel_lengths[d] = indel_lengths.get(d, 0) + 1
            rid = rec.id
            is_known = bool(rid and rid != ".") or (
                known is not None and len(alleles) > 1 and known.contains(rec.chrom, rec.pos, alleles[0], alleles[1:])
            )
            c["known" if is_known else "novel"] += 1
            if samples and "GT" in rec.format:
                _sample_stats(rec, alleles, bits, line, psc)
    if known is not None:
        known.close()

    m: dict[str, Any] = {"samples": len(samples), **c}
    m["ts_tv"] = round(c["ts"] / c["tv"], 4) if c["tv"] else None
    m["ts_tv_first_alt"] = round(c["ts_first_alt"] / c["tv_first_alt"], 4) if c["tv_first_alt"] else None
    m["indel_length_distribution"] = {str(k): indel_lengths[k] for k in sorted(indel_lengths)}
    m["per_sample"] = {s: {k: v for k, v in d.items()} for s, d in psc.items()}
    het = sum(d["het"] for d in psc.values())
    hom = sum(d["hom_alt"] for d in psc.values())
    m["het_hom_ratio"] = round(het / hom, 4) if hom else None
    calls = c["records"] * len(samples)
    missing = sum(d["missing"] for d in psc.values())
    m["call_rate"] = round((calls - missing) / calls, 6) if calls else None
    return m


def _sample_stats(rec: pysam.VariantRecord, alleles: tuple[str, ...], bits: list[int], line: int,
                  psc: dict[str, dict[str, int]]) -> None:
    """One record's genotypes into the PSC counters, following htslib's bcf_gt_type."""
    ref = alleles[0].upper()
    for name, call in rec.samples.items():
        gt = call.get("GT")
        if not gt or any(a is None for a in gt):
            psc[name]["missing"] += 1
            continue
        alts = sorted({a for a in gt if a > 0})
        has_ref = any(a == 0 for a in gt)
        d = psc[name]
        if len(gt) == 1:
            d["hap_ref" if has_ref else "hap_alt"] += 1
            continue
        if not alts:
            d["hom_ref"] += 1
            continue
        kind = 0
        for a in alts[:2]:
            if a < len(bits):
                kind |= bits[a]
        if kind & _INDEL:
            d["indels"] += 1
        # het/hom are SNP counts: the called ALTs must include a SNP, or be reference-like
        # (<NON_REF>, <*>), as bcftools does; '*', MNP, indel-only or symbolic calls are not counted.
        if kind and not kind & _SNP:
            continue
        het = has_ref or len(alts) > 1
        d["het" if het else "hom_alt"] += 1
        # bcftools takes ts/tv from the lower ALT index of the genotype, when that allele is a SNP
        if alts[0] < len(alleles) and bits[alts[0]] == _SNP:
            ts = frozenset((ref[0], alleles[alts[0]][0].upper())) in _TS
            d["ts" if ts else "tv"] += 1
