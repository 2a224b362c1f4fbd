"""Call-set metrics of one VCF/BCF: `bcftools stats` itself, run in-process, plus known/novel.

Why bcftools and not a loop of our own: the numbers are meant to *be* bcftools stats',
and the counting rules (htslib's allele types, `<*>`/`<NON_REF>` as reference, `*` as
overlap, records counted once per type they contain, PSC's genotype classes, IDD's
clipping) are bcftools' code, not a spec. pysam bundles bcftools, so
`pysam.bcftools.stats("-I", "-s", "-", path)` runs it without a bcftools install: one
streaming pass in C over plain, gzip/BGZF or BCF input, no index needed, memory flat in
the file's size (in a forked child, see `_bcftools`). A per-record Python loop over
pysam took 18x bcftools' time; this takes bcftools' time plus Python's start-up.

Which bcftools: pysam 0.24's bundle is bcftools/htslib 1.24. On VCF <= 4.3 every field
below equals `bcftools stats` 1.16 except per-sample `ts`/`tv`: from 1.24 bcftools
counts both ALTs of a het ALT/ALT call (C>T,A called 1/2 adds a ts and a tv; 1.16 took
only the lower ALT). VCF 4.4 files are read by the newer htslib the newer way.

Fields, as bcftools stats reports them (SN, TSTV, IDD and PSC lines):
- `records`, `no_alts`, `snps`, `mnps`, `indels`, `others`, `multiallelic_sites`,
  `multiallelic_snp_sites`: SN. A record counts once in each type its ALTs contain.
- `ts`, `tv` (per SNP ALT allele), `ts_first_alt`, `tv_first_alt`: TSTV; `ts_tv` and
  `ts_tv_first_alt` are their ratios (None without transversions).
- `indel_length_distribution`: IDD sites per length (ALT minus REF, deletions
  negative), one per indel ALT allele; bcftools clips lengths beyond +-60 to +-60.
- `per_sample`: PSC with `-s -` (so only when the file has samples): `hom_ref`,
  `hom_alt`, `het` (calls with a SNP or reference-like ALT), `hap_ref`, `hap_alt`,
  `missing` (any allele missing), `indels` (non-ref calls of an indel ALT), `ts`, `tv`.
- `known`: records whose ID is not '.', or, with `known_sites`, whose CHROM, POS and REF
  (case-insensitive) equal a known site's and that share an ALT with it; `novel`: the
  rest (records without ALT included), so `known + novel == records`. The ID split is
  bcftools' own `-I` (free, same pass); known sites are looked up only for the records
  without an ID, in a second streaming pass (`bcftools query`), in chunks.

`het_hom_ratio` = sum of het / sum of hom_alt over samples; `call_rate` = called
genotypes / (records x samples).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pysam
import pysam.bcftools

_SN_FIELDS = {
    "number of records:": "records",
    "number of no-ALTs:": "no_alts",
    "number of SNPs:": "snps",
    "number of MNPs:": "mnps",
    "number of indels:": "indels",
    "number of others:": "others",
    "number of multiallelic sites:": "multiallelic_sites",
    "number of multiallelic SNP sites:": "multiallelic_snp_sites",
}
# PSC columns after the set id and sample name, in bcftools' order
_PSC_COLUMNS = ("hom_ref", "hom_alt", "het", "ts", "tv", "indels", None, None, "hap_ref", "hap_alt", "missing")
_PER_SAMPLE = ("hom_ref", "hom_alt", "het", "hap_ref", "hap_alt", "missing", "indels", "ts", "tv")
# ID-less records looked up against the known sites at a time, and the largest gap (bp)
# between two of them that one region query of the known-sites index still spans
_CHUNK = 100_000
_MERGE_GAP = 1_000


def vcf_metrics(path: str | Path, *, known_sites: str | None = None) -> dict[str, Any]:
    """bcftools-stats counts of one VCF (plain, gzip/BGZF) or BCF; see the module docstring.

    `known` counts records with an ID, or with an allele present in `known_sites` (a
    VCF/BCF, indexed or not); `novel` the rest.
    Raises OSError when the file cannot be opened, ValueError when it cannot be parsed.
    """
    path = str(path)
    with open(path, "rb"):  # a missing or unreadable file is an OSError, as for every format
        pass
    # the header's sample names, read by bcftools too (pysam's VariantFile cannot open plain gzip)
    samples = _bcftools("query", "-l", path).splitlines()
    # -I: separate stats for records with an ID (set 0) and without (set 1); -s -: PSC
    # per sample, which bcftools refuses for a file without samples
    out = _bcftools("stats", "-I", *(("-s", "-") if samples else ()), path)
    counts, indel_lengths, psc = _parse_stats(out)

    c = {k: counts[0].get(k, 0) + counts[1].get(k, 0) for k in (*_SN_FIELDS.values(), "ts", "tv",
                                                                 "ts_first_alt", "tv_first_alt")}
    known = counts[0].get("records", 0)
    if known_sites and counts[1].get("records", 0):
        known += _known_site_records(path, known_sites)
    c["known"] = known
    c["novel"] = c["records"] - known

    m: dict[str, Any] = {"samples": len(samples), **c}
    m["ts_tv"] = round(c["ts"] / c["tv"], 4) if c["tv"] else None
    m["ts_tv_first_alt"] = round(c["ts_first_alt"] / c["tv_first_alt"], 4) if c["tv_first_alt"] else None
    m["indel_length_distribution"] = {str(k): indel_lengths[k] for k in sorted(indel_lengths)}
    m["per_sample"] = {s: {k: psc.get(s, {}).get(k, 0) for k in _PER_SAMPLE} for s in samples}
    het = sum(d["het"] for d in m["per_sample"].values())
    hom = sum(d["hom_alt"] for d in m["per_sample"].values())
    m["het_hom_ratio"] = round(het / hom, 4) if hom else None
    calls = c["records"] * len(samples)
    missing = sum(d["missing"] for d in m["per_sample"].values())
    m["call_rate"] = round((calls - missing) / calls, 6) if calls else None
    return m


def _bcftools(command: str, *args: str, writes_file: bool = False) -> str:
    """Run pysam's bundled bcftools and return its stdout (`writes_file`: it writes its own `-o`).

    htslib calls exit() on some malformed records (a GT allele beyond the ALTs, in
    bcf_calc_ac), which would end the calling process, a Dagster run worker included. So
    the command runs in a forked child (bcftools' code in the child, in C, as in-process;
    the fork costs milliseconds): a crash or exit there becomes a ValueError here.
    """
    with tempfile.TemporaryDirectory(prefix="genoflow-bcftools-") as tmp:
        stdout = os.path.join(tmp, "stdout")
        stderr = os.path.join(tmp, "stderr")
        tool = getattr(pysam.bcftools, command)
        kwargs: dict[str, Any] = {"catch_stdout": False} if writes_file else {"save_stdout": stdout}
        if not hasattr(os, "fork"):
            try:
                tool(*args, **kwargs)
            except pysam.utils.SamtoolsError as exc:
                raise ValueError(f"bcftools {command}: {str(exc).strip()[-500:]}") from exc
            return "" if writes_file else Path(stdout).read_text(errors="replace")
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's stack
            code = 3
            try:
                fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 2)  # htslib's own messages
                tool(*args, **kwargs)
                code = 0
            except BaseException as exc:  # reported to the parent through stderr
                os.write(2, f"\n{exc}".encode(errors="replace"))
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return "" if writes_file else Path(stdout).read_text(errors="replace")
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
        message = Path(stderr).read_text(errors="replace").strip()[-500:] if os.path.exists(stderr) else ""
        raise ValueError(f"bcftools {command} failed ({how}): {message}")


def _parse_stats(
    text: str,
) -> tuple[tuple[dict[str, int], dict[str, int]], dict[int, int], dict[str, dict[str, int]]]:
    """SN and TSTV per set (0: with ID, 1: without), IDD sites and PSC summed over both sets."""
    counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
    indel_lengths: dict[int, int] = {}
    psc: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        f = line.split("\t")
        kind = f[0]
        if kind == "SN" and f[2] in _SN_FIELDS:
            counts[int(f[1])][_SN_FIELDS[f[2]]] = int(f[3])
        elif kind == "TSTV":
            counts[int(f[1])].update(ts=int(f[2]), tv=int(f[3]), ts_first_alt=int(f[5]), tv_first_alt=int(f[6]))
        elif kind == "IDD":
            length = int(f[2])
            indel_lengths[length] = indel_lengths.get(length, 0) + int(f[3])
        elif kind == "PSC":
            d = psc.setdefault(f[2], {})
            for key, value in zip(_PSC_COLUMNS, f[3:], strict=False):
                if key:
                    d[key] = d.get(key, 0) + int(value)
    return counts, indel_lengths, psc


def _known_site_records(path: str, known_sites: str) -> int:
    """How many records without an ID share CHROM, POS, REF and an ALT with a known site."""
    with tempfile.TemporaryDirectory(prefix="genoflow-vcf-") as tmp:
        novel = os.path.join(tmp, "novel.tsv")
        # the same parser as the stats pass, so the same records, whatever the input's encoding
        _bcftools("query", "-i", 'ID="."', "-f", r"%CHROM\t%POS\t%REF\t%ALT\n", "-o", novel, path,
                  writes_file=True)
        sites = _KnownSites(known_sites)
        try:
            hits = 0
            with open(novel, encoding="utf-8", errors="surrogateescape") as fh:
                while chunk := list(islice(fh, _CHUNK)):
                    hits += sites.count_known(_parse_query(chunk))
            return hits
        finally:
            sites.close()


def _parse_query(lines: Iterable[str]) -> Iterator[tuple[str, int, str, tuple[str, ...]]]:
    for line in lines:
        chrom, pos, ref, alt = line.rstrip("\n").split("\t")
        if alt != ".":
            yield chrom, int(pos), ref.upper(), tuple(alt.upper().split(","))


class _KnownSites:
    """(chrom, pos, REF, ALT) of a known-sites VCF/BCF, upper case. An indexed file is read
    only around the positions asked for (a dbSNP-sized file never sits in memory); an
    unindexed one is loaded into a set once."""

    def __init__(self, path: str) -> None:
        self._vf = pysam.VariantFile(path)
        self._vf.subset_samples([])  # genotypes are never needed
        self._all: set[tuple[str, int, str, str]] | None = None
        if self._vf.index is None:
            self._all = {key for rec in self._vf for key in _keys(rec)}

    def count_known(self, records: Iterable[tuple[str, int, str, tuple[str, ...]]]) -> int:
        batch = list(records)
        present = self._all if self._all is not None else self._around(batch)
        return sum(1 for chrom, pos, ref, alts in batch
                   if any((chrom, pos, ref, alt) in present for alt in alts))

    def _around(self, batch: list[tuple[str, int, str, tuple[str, ...]]]) -> set[tuple[str, int, str, str]]:
        """Known sites in windows covering the batch's positions, one region query per window."""
        by_chrom: dict[str, set[int]] = {}
        for chrom, pos, _, _ in batch:
            by_chrom.setdefault(chrom, set()).add(pos)
        present: set[tuple[str, int, str, str]] = set()
        for chrom, positions in by_chrom.items():
            ordered = sorted(positions)
            start = end = ordered[0]
            for pos in [*ordered[1:], None]:
                if pos is not None and pos - end <= _MERGE_GAP:
                    end = pos
                    continue
                try:
                    present.update(k for rec in self._vf.fetch(chrom, start - 1, end) for k in _keys(rec))
                except ValueError:  # contig absent from the known-sites index
                    break
                if pos is not None:
                    start = end = pos
        return present

    def close(self) -> None:
        self._vf.close()


def _keys(rec: pysam.VariantRecord) -> Iterator[tuple[str, int, str, str]]:
    ref = rec.ref.upper() if rec.ref else ""
    for alt in rec.alts or ():
        yield rec.chrom, rec.pos, ref, alt.upper()
