"""Alignment metrics for SAM/BAM/CRAM: `samtools flagstat` categories, `samtools stats`
summaries and coverage, in one streaming pass with pysam.

Flag categories follow samtools 1.16 `bam_stat.c` exactly, summed over QC-passed
and QC-failed reads (flagstat prints the two columns separately):
- `total`: every record; `secondary` (0x100), `supplementary` (0x800, not secondary);
  `primary`: neither.
- `mapped`: any record without 0x4 (secondary/supplementary included);
  `primary_mapped`: primary without 0x4; `duplicates`: any record with 0x400,
  `primary_duplicates`: primary ones.
- Pair categories count *primary* records with 0x1 only: `paired`, `read1`, `read2`,
  `properly_paired` (0x2 and mapped), `with_mate_mapped` (itself and mate mapped),
  `singletons` (mapped, mate unmapped), `mate_on_other_chr` (both mapped, mate's
  reference differs) and `mate_on_other_chr_mapq5` (the same with MAPQ >= 5).
- `mapped_percent` = mapped / total, `properly_paired_percent` = properly_paired / paired,
  as flagstat prints them.

The `samtools stats` summaries follow samtools 1.16 (checked on every corpus alignment):
secondary records and records without SEQ are left out; `average_length` and
`average_quality` (a missing QUAL counts as 255, as its 0xff bytes) come from the
other non-supplementary records, quality only from unpaired reads and mates that are
exactly one of READ1/READ2; `bases_mapped_cigar` (M/I/=/X), `mismatches` (NM) and
`error_rate` from every mapped one, supplementary included; the insert size from mapped,
non-supplementary reads with a mapped mate, histogrammed by orientation, halved per bin
(each pair was seen twice, rounding down), mean and SD over the main 99% (`insert_size_summary`).

Coverage counts what `samtools depth` counts by default: aligned (M/=/X) bases of
records that are not unmapped, secondary, QC-failed or duplicates; deletions and
skips are not coverage. It is built per contig with a difference array in 1 Mb
windows, which a coordinate-sorted input frees as soon as reads start past them.
`mean_depth` is the mean over all reference bases, `breadth_Nx` the *percent* of
reference bases with depth >= N.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pysam

WINDOW = 1 << 20
BREADTH_LEVELS = (1, 10, 30)
ISIZE_CAP = 8000  # samtools stats -i default: larger inserts are counted at 8000
ISIZE_MAIN_BULK = 0.99

_PAIRED, _PROPER, _UNMAP, _MUNMAP = 0x1, 0x2, 0x4, 0x8
_REVERSE, _MREVERSE = 0x10, 0x20
_READ1, _READ2, _SECONDARY, _QCFAIL, _DUP, _SUPP = 0x40, 0x80, 0x100, 0x200, 0x400, 0x800


def _fai_lengths(fasta: str) -> dict[str, int]:
    fai = Path(fasta + ".fai")
    if not fai.is_file():
        pysam.faidx(fasta)  # writes the .fai next to the FASTA
    lengths: dict[str, int] = {}
    with open(fai) as fh:
        for line in fh:
            parts = line.split("\t")
            if len(parts) >= 2:
                lengths[parts[0]] = int(parts[1])
    return lengths


class _Coverage:
    """Depth per contig from aligned blocks, in fixed windows of a difference array.

    With a coordinate-sorted input (`SO:coordinate`) windows behind the current read
    are summed and freed as the stream advances, so memory is a few windows. Otherwise
    every touched window is kept until the end (memory up to 4 bytes per reference base).
    """

    def __init__(self, lengths: dict[str, int], *, sorted_input: bool) -> None:
        self.lengths = lengths
        self.sorted_input = sorted_input
        self.total_depth = 0
        self.covered = dict.fromkeys(BREADTH_LEVELS, 0)
        self.windows: dict[str, dict[int, np.ndarray]] = {}
        self.contig: str | None = None
        self.next_window = 0  # sorted mode: first window of `contig` not yet summed
        self.carry = 0
        self.pending: list[tuple[int, int]] = []
        self.done: set[str] = set()

    def add(self, contig: str, start: int, blocks: list[tuple[int, int]]) -> None:
        if contig != self.contig:
            self._apply()
            if self.sorted_input:
                self._finish_sorted_contig()
                if contig in self.done:
                    raise ValueError(f"header says SO:coordinate but {contig} reappears after another contig")
            self.contig = contig
        self.pending.extend(blocks)
        if len(self.pending) >= 200_000:
            self._apply()
        if self.sorted_input and start // WINDOW > self.next_window:
            self._apply()
            self._sum_windows(contig, start // WINDOW)

    def _apply(self) -> None:
        if not self.pending or self.contig is None:
            return
        length = self.lengths.get(self.contig, 0)
        ev = np.asarray(self.pending, dtype=np.int64)
        self.pending.clear()
        windows = self.windows.setdefault(self.contig, {})
        for pos, sign in ((np.clip(ev[:, 0], 0, length), 1), (np.clip(ev[:, 1], 0, length), -1)):
            win = pos // WINDOW
            for w in np.unique(win).tolist():
                if self.sorted_input and w < self.next_window:
                    raise ValueError("header says SO:coordinate but the reads are not sorted")
                arr = windows.get(w)
                if arr is None:
                    arr = windows[w] = np.zeros(WINDOW, dtype=np.int32)
                arr += (sign * np.bincount(pos[win == w] - w * WINDOW, minlength=WINDOW)[:WINDOW]).astype(np.int32)

    def _sum_windows(self, contig: str, stop: int) -> None:
        """Add windows [next_window, stop) of `contig` to the totals and free them."""
        length = self.lengths.get(contig, 0)
        stop = min(stop, (length + WINDOW - 1) // WINDOW)
        windows = self.windows.get(contig, {})
        while self.next_window < stop:
            w = self.next_window
            size = min(WINDOW, length - w * WINDOW)
            diff = windows.pop(w, None)
            if diff is None:
                if self.carry:
                    self.total_depth += self.carry * size
                    for level in BREADTH_LEVELS:
                        if self.carry >= level:
                            self.covered[level] += size
            else:
                cov = np.cumsum(diff[:size], dtype=np.int64) + self.carry
                self.carry = int(cov[-1])
                self.total_depth += int(cov.sum())
                for level in BREADTH_LEVELS:
                    self.covered[level] += int(np.count_nonzero(cov >= level))
            self.next_window += 1

    def _finish_sorted_contig(self) -> None:
        if self.contig is not None:
            self._sum_windows(self.contig, 1 << 62)
            self.windows.pop(self.contig, None)
            self.done.add(self.contig)
        self.next_window = 0
        self.carry = 0

    def finish(self) -> None:
        self._apply()
        if self.sorted_input:
            self._finish_sorted_contig()
            self.contig = None
            return
        for contig in list(self.windows):
            self.contig, self.next_window, self.carry = contig, 0, 0
            self._sum_windows(contig, 1 << 62)
            self.windows.pop(contig, None)
        self.contig = None


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 4) if den else None


def alignment_metrics(
    path: str | Path,
    *,
    reference_fasta: str | None = None,
    reference_lengths: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Flagstat, stats-like and coverage metrics of one SAM/BAM/CRAM (see the module docstring).

    `reference_lengths` wins over the header's @SQ lengths, which win over the FASTA's
    .fai. CRAM needs `reference_fasta`; htslib is kept off the network (REF_PATH).
    Raises ValueError for unreadable input, or a header claiming SO:coordinate over unsorted reads.
    """
    path = str(path)
    if reference_fasta and "REF_PATH" not in os.environ:
        # htslib would otherwise ask the EBI reference server for unknown MD5s.
        os.environ["REF_PATH"] = str(Path(reference_fasta).resolve().parent / "md5" / "%s")
    kwargs: dict[str, Any] = {"check_sq": False}
    if reference_fasta:
        kwargs["reference_filename"] = reference_fasta
    with pysam.AlignmentFile(path, "r", **kwargs) as bam:
        header_lengths = {name: int(ln) for name, ln in zip(bam.references, bam.lengths, strict=True)}
        lengths = dict(reference_lengths or {})
        if not lengths:
            lengths = {k: v for k, v in header_lengths.items() if v > 0}
        if not lengths and reference_fasta:
            lengths = _fai_lengths(reference_fasta)
        sorted_input = bam.header.to_dict().get("HD", {}).get("SO") == "coordinate"
        coverage = _Coverage(lengths, sorted_input=sorted_input) if lengths else None
        metrics = _scan(bam, coverage)
    ref_total = sum(lengths.values()) if lengths else 0
    if coverage is not None and ref_total:
        coverage.finish()
        metrics["reference_length"] = ref_total
        metrics["mean_depth"] = round(coverage.total_depth / ref_total, 4)
        for level in BREADTH_LEVELS:
            metrics[f"breadth_{level}x"] = round(100.0 * coverage.covered[level] / ref_total, 4)
    else:
        metrics["reference_length"] = None
        metrics["mean_depth"] = None
        for level in BREADTH_LEVELS:
            metrics[f"breadth_{level}x"] = None
    return metrics


def _scan(bam: pysam.AlignmentFile, coverage: _Coverage | None) -> dict[str, Any]:
    c = dict.fromkeys(
        ("total", "qc_failed", "primary", "secondary", "supplementary", "duplicates", "primary_duplicates",
         "mapped", "primary_mapped", "paired", "read1", "read2", "properly_paired", "with_mate_mapped",
         "singletons", "mate_on_other_chr", "mate_on_other_chr_mapq5"),
        0,
    )
    mapq_hist = np.zeros(256, dtype=np.int64)
    read_len_sum = 0
    qual_sum = 0
    bases_mapped_cigar = 0
    mismatches = 0
    seq_reads = 0
    # Insert sizes as samtools stats histograms them: inward, outward, other orientation.
    isize_hist = np.zeros((3, ISIZE_CAP + 1), dtype=np.int64)
    refs = bam.references
    for rec in bam.fetch(until_eof=True):
        flag = rec.flag
        c["total"] += 1
        if flag & _QCFAIL:
            c["qc_failed"] += 1
        unmapped = flag & _UNMAP
        if not unmapped:
            c["mapped"] += 1
        if flag & _DUP:
            c["duplicates"] += 1
        if flag & _SECONDARY:
            c["secondary"] += 1
        elif flag & _SUPP:
            c["supplementary"] += 1
        else:
            c["primary"] += 1
            if not unmapped:
                c["primary_mapped"] += 1
            if flag & _DUP:
                c["primary_duplicates"] += 1
            if flag & _PAIRED:
                c["paired"] += 1
                if flag & _PROPER and not unmapped:
                    c["properly_paired"] += 1
                if flag & _READ1:
                    c["read1"] += 1
                if flag & _READ2:
                    c["read2"] += 1
                if flag & _MUNMAP and not unmapped:
                    c["singletons"] += 1
                if not unmapped and not flag & _MUNMAP:
                    c["with_mate_mapped"] += 1
                    if rec.next_reference_id != rec.reference_id:
                        c["mate_on_other_chr"] += 1
                        if rec.mapping_quality >= 5:
                            c["mate_on_other_chr_mapq5"] += 1
            if not unmapped:
                mapq_hist[rec.mapping_quality] += 1
        # samtools stats summaries: secondary records and records without SEQ are left out; lengths and
        # qualities come from original (non-supplementary) records, mapped-base figures from every other one.
        qlen = rec.query_length
        if flag & _SECONDARY or not qlen:
            pass
        else:
            if not flag & _SUPP:
                read_len_sum += qlen
                seq_reads += 1
                if not flag & _PAIRED or (flag & (_READ1 | _READ2)) in (_READ1, _READ2):  # as samtools 1.16
                    quals = rec.query_qualities
                    # a missing QUAL ('*') is stored as 0xff bytes, which samtools stats averages as 255
                    qual_sum += int(np.frombuffer(quals, dtype=np.uint8).sum()) if quals is not None else 255 * qlen
            if not unmapped:
                cig = rec.get_cigar_stats()[0]
                bases_mapped_cigar += int(cig[0] + cig[1] + cig[7] + cig[8])
                if rec.has_tag("NM"):
                    mismatches += int(rec.get_tag("NM"))
                if flag & _PAIRED and not flag & (_MUNMAP | _SUPP):
                    _add_insert(isize_hist, rec, flag)
        if coverage is not None and not flag & (_UNMAP | _SECONDARY | _QCFAIL | _DUP) and rec.reference_id >= 0:
            coverage.add(refs[rec.reference_id], rec.reference_start, rec.get_blocks())

    m: dict[str, Any] = dict(c)
    m["mapped_percent"] = _pct(c["mapped"], c["total"])
    m["primary_mapped_percent"] = _pct(c["primary_mapped"], c["primary"])
    m["properly_paired_percent"] = _pct(c["properly_paired"], c["paired"])
    m["singletons_percent"] = _pct(c["singletons"], c["paired"])
    n_mapq = int(mapq_hist.sum())
    m["mean_mapq"] = round(float((np.arange(256) * mapq_hist).sum()) / n_mapq, 4) if n_mapq else None
    m["mapq_distribution"] = {str(q): int(mapq_hist[q]) for q in np.flatnonzero(mapq_hist)}
    m["average_length"] = round(read_len_sum / seq_reads, 4) if seq_reads else None
    m["average_quality"] = round(qual_sum / read_len_sum, 4) if read_len_sum else None
    m["bases_mapped_cigar"] = bases_mapped_cigar
    m["mismatches"] = mismatches
    m["error_rate"] = round(mismatches / bases_mapped_cigar, 10) if bases_mapped_cigar else None
    m["insert_size_mean"], m["insert_size_sd"] = insert_size_summary(isize_hist)
    return m


def _add_insert(hist: np.ndarray, rec: pysam.AlignedSegment, flag: int) -> None:
    """One mapped read with a mapped mate into samtools stats' insert-size histograms (by orientation)."""
    isize = min(abs(rec.template_length), ISIZE_CAP)
    if not isize and rec.reference_id != rec.next_reference_id:
        return  # mates on different contigs carry no insert size
    pos_fst = rec.next_reference_start - rec.reference_start
    is_fst = 1 if flag & _READ1 else -1
    is_fwd = -1 if flag & _REVERSE else 1
    is_mfwd = -1 if flag & _MREVERSE else 1
    if is_fwd * is_mfwd > 0:
        hist[2, isize] += 1
    elif is_fst * pos_fst >= 0:
        hist[0 if is_fst * is_fwd > 0 else 1, isize] += 1
    elif is_fst * pos_fst < 0:
        hist[1 if is_fst * is_fwd > 0 else 0, isize] += 1


def insert_size_summary(hist: np.ndarray) -> tuple[float | None, float | None]:
    """samtools stats' "insert size average" and "standard deviation", from the main bulk only.

    Each pair was counted once per mate: every orientation's count is halved,
    rounding down. The bulk runs from size 0 to the first size where the
    cumulative count passes 99% of all; the mean is over the bulk, the SD over
    its sizes from 1 (as samtools computes them).
    """
    counts = (hist // 2).sum(axis=0)
    total = int(counts.sum())
    if not total:
        return None, None
    cumulative = np.cumsum(counts)
    last = int(np.argmax(cumulative / total > ISIZE_MAIN_BULK))
    bulk = counts[: last + 1]
    n = int(cumulative[last])
    sizes = np.arange(last + 1)
    mean = float((sizes * bulk).sum()) / n
    sd = math.sqrt(float((bulk[1:] * (sizes[1:] - mean) ** 2).sum()) / n)
    return round(mean, 4), round(sd, 4)
