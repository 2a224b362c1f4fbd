"""Alignment metrics for SAM/BAM/CRAM: `samtools flagstat` categories, `samtools stats`
summaries, MAPQ and coverage, in one streaming pass over numpy batches of records.

How: `qc.bam_stream` turns the file into batches of raw BAM records (a BAM is
inflated in-process; SAM and CRAM go through pysam's bundled `samtools view -u`
in a child process, so htslib still parses them) and every metric below is a
handful of vectorised operations per batch of ~13,000 records. On the benchmark
BAM (2M records, one core) that is about 2x the speed of `samtools stats` with
flat memory (~100 MB: one batch, a few 1 Mb depth windows).

Why not the alternatives (measured on the same BAM, back to back):
- a per-record Python loop over pysam objects (the previous version): ~10 us a
  record, 0.30x `samtools stats`;
- pysam's bundled samtools in-process, parsing its output: `stats` alone took as
  long as the samtools CLI and `flagstat` added a quarter of that; its MAPQ
  section leaves out duplicates and QC-failed reads and its COV histogram is not
  `samtools depth`'s, so MAPQ and depth still needed a pysam pass of their own (a
  bare loop over flags and blocks took half the time of `samtools stats`): 0.4x
  at best. And the bundled samtools is 1.24, whose SN lines differ from samtools
  1.16's (the reference here) on corpus files: insert sizes by orientation,
  average length rounding;
- a compiled loop would be as fast but needs a build step; numpy is already here.

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

`mapq_distribution` and `mean_mapq` are over primary mapped records.

The `samtools stats` summaries follow samtools 1.16 (checked on every corpus alignment):
secondary records and records without SEQ are left out; `average_length` and
`average_quality` (a missing QUAL counts as 255, as its 0xff bytes) come from the
other non-supplementary records, quality only from unpaired reads and mates that are
exactly one of READ1/READ2; `bases_mapped_cigar` (M/I/=/X), `mismatches` (NM, integer
types only, as htslib's bam_aux2i) and `error_rate` from every mapped one, supplementary
included; the insert size from mapped, non-supplementary reads with a mapped mate,
histogrammed by orientation, halved per bin (each pair was seen twice, rounding down),
mean and SD over the main 99% (`insert_size_summary`).

Coverage counts what `samtools depth` counts by default: aligned (M/=/X) bases of
records that are not unmapped, secondary, QC-failed or duplicates; deletions and
skips are not coverage. `mean_depth` is the mean over all reference bases (zero-depth
ones included), `breadth_Nx` the *percent* of reference bases with depth >= N. Depth is
a difference array over the reference in 1 Mb windows; while the reads arrive in
coordinate order (whatever the header says) windows behind the current read are
summed and freed. At the first read out of order the scan starts again in unsorted
mode, which keeps block boundaries in memory up to SPILL_EVENTS and then spills them
to a temporary file bucketed by reference range, so memory stays flat there too.

Given a targets BED, the same windows feed the target metrics of `qc.targets`
(on-target reads, depth and breadth over the targets, per-amplicon depth), whose
definitions live there.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from genoflow_dagster.progress import ProgressCallback
from genoflow_dagster.qc.bam_stream import Batch, Header, bam_batches
from genoflow_dagster.qc.targets import AMPLICON_FLOOR, Targets, TargetScan, load_targets

WINDOW = 1 << 20
BREADTH_LEVELS = (1, 10, 30)
ISIZE_CAP = 8000  # samtools stats -i default: larger inserts are counted at 8000
ISIZE_MAIN_BULK = 0.99
SPILL_EVENTS = 1 << 21  # unsorted input: block boundaries held in memory before spilling (8 bytes each)
BUCKET_WINDOWS = 8  # unsorted input: windows per spill bucket (summed together at the end)

_PAIRED, _PROPER, _UNMAP, _MUNMAP = 0x1, 0x2, 0x4, 0x8
_REVERSE, _MREVERSE = 0x10, 0x20
_READ1, _READ2, _SECONDARY, _QCFAIL, _DUP, _SUPP = 0x40, 0x80, 0x100, 0x200, 0x400, 0x800
_NO_COVERAGE = _UNMAP | _SECONDARY | _QCFAIL | _DUP  # samtools depth's default filter
_CIGAR_MIDNX = np.zeros(16, dtype=bool)  # ops that consume the reference: M D N = X
_CIGAR_MIDNX[[0, 2, 3, 7, 8]] = True
_CIGAR_ALIGNED = np.zeros(16, dtype=bool)  # M = X: coverage
_CIGAR_ALIGNED[[0, 7, 8]] = True
_CIGAR_MAPPED_BASES = np.zeros(16, dtype=bool)  # M I = X: samtools stats "bases mapped (cigar)"
_CIGAR_MAPPED_BASES[[0, 1, 7, 8]] = True
_FLAG_KEYS = 1 << 14  # flagstat histogram key: the 12 defined flag bits, mate on another contig, MAPQ >= 5


class _NotSorted(Exception):
    """Reads out of coordinate order in a scan that assumed sorted input."""


def fai_lengths(fasta: str | Path) -> dict[str, int]:
    """Contig lengths from the FASTA's samtools .fai index (built beside the FASTA when missing)."""
    fai = Path(str(fasta) + ".fai")
    if not fai.is_file():
        import pysam

        pysam.faidx(str(fasta))  # writes the .fai next to the FASTA
    lengths: dict[str, int] = {}
    with open(fai) as fh:
        for line in fh:
            parts = line.split("\t")
            if len(parts) >= 2:
                lengths[parts[0]] = int(parts[1])
    return lengths


class _Coverage:
    """Depth over the header's contigs laid end to end (one global coordinate), from aligned blocks.

    An event is a block boundary: its global position times two, plus one for an end.
    Sorted mode: events go straight into difference-array windows, and windows behind the
    latest read are summed and freed; a read out of order raises _NotSorted. Unsorted mode:
    events are kept by bucket of BUCKET_WINDOWS windows, spilled to a temporary file past
    SPILL_EVENTS, and the buckets are summed one after another at the end.
    """

    def __init__(self, contig_lengths: np.ndarray, *, sorted_mode: bool) -> None:
        self.lengths = contig_lengths.astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.genome = int(self.offsets[-1])
        self.sorted_mode = sorted_mode
        self.total_depth = 0
        self.covered = dict.fromkeys(BREADTH_LEVELS, 0)
        self.windows: dict[int, np.ndarray] = {}
        self.next_window = 0
        self.carry = 0
        self.last_start = 0
        self.pending: dict[int, list[np.ndarray]] = {}  # unsorted mode: events by bucket, not yet spilled
        self.pending_n = 0
        self.spill: Any = None
        self.segments: dict[int, list[tuple[int, int]]] = {}
        self.targets: TargetScan | None = None  # fed each summed window when a targets BED is given

    def add(self, tid: np.ndarray, pos: np.ndarray, blk_tid: np.ndarray, blk_start: np.ndarray,
            blk_end: np.ndarray) -> None:
        """One batch: the reads' (tid, pos) in file order and their aligned blocks."""
        if self.sorted_mode and len(tid):
            starts = self.offsets[tid] + np.clip(pos, 0, self.lengths[tid])
            if starts[0] < self.last_start or (len(starts) > 1 and (np.diff(starts) < 0).any()):
                raise _NotSorted
            self.last_start = int(starts[-1])
        if len(blk_tid):
            length = self.lengths[blk_tid]
            base = self.offsets[blk_tid]
            gs = base + np.clip(blk_start, 0, length)
            ge = base + np.clip(blk_end, 0, length)
            keep = gs < ge
            # One event per block boundary: position * 2, +1 for a start (bit 0 clear), -1 for an end.
            events = np.concatenate([gs[keep] * 2, ge[keep] * 2 + 1])
            events = events[events < 2 * self.genome]  # an end at the very end changes nothing
            if self.sorted_mode:
                self._apply(events)
            else:
                self._stash(events)
        if self.sorted_mode:
            self._sum_windows(self.last_start // WINDOW)

    def _apply(self, events: np.ndarray) -> None:
        if not len(events):
            return
        pos = events >> 1
        sign = 1 - 2 * (events & 1).astype(np.int32)
        win = pos // WINDOW
        if win[0] != win[-1] or (win != win[0]).any():
            order = np.argsort(win, kind="stable")
            pos, sign, win = pos[order], sign[order], win[order]
        bounds = np.flatnonzero(np.diff(win)) + 1
        for a, b in zip([0, *bounds.tolist()], [*bounds.tolist(), len(win)], strict=True):
            w = int(win[a])
            if w < self.next_window:
                raise _NotSorted
            arr = self.windows.get(w)
            if arr is None:
                arr = self.windows[w] = np.zeros(WINDOW, dtype=np.int32)
            np.add.at(arr, pos[a:b] - w * WINDOW, sign[a:b])

    def _stash(self, events: np.ndarray) -> None:
        """Unsorted mode: keep a batch's events by bucket, spilling them all past SPILL_EVENTS."""
        bucket = (events >> 1) // (WINDOW * BUCKET_WINDOWS)
        order = np.argsort(bucket, kind="stable")
        events, bucket = events[order], bucket[order]
        bounds = (np.flatnonzero(np.diff(bucket)) + 1).tolist()
        for a, b in zip([0, *bounds], [*bounds, len(events)], strict=True):
            self.pending.setdefault(int(bucket[a]), []).append(events[a:b])
        self.pending_n += len(events)
        if self.pending_n >= SPILL_EVENTS:
            self._spill()

    def _spill(self) -> None:
        if self.spill is None:
            self.spill = tempfile.TemporaryFile(prefix="genoflow-depth-")  # noqa: SIM115 - closed in finish()
        for b, parts in self.pending.items():
            data = np.concatenate(parts)
            self.segments.setdefault(b, []).append((self.spill.tell(), len(data)))
            self.spill.write(data.tobytes())
        self.pending.clear()
        self.pending_n = 0

    def _sum_windows(self, stop: int) -> None:
        """Add windows [next_window, stop) to the totals and free them."""
        stop = min(stop, (self.genome + WINDOW - 1) // WINDOW)
        while self.next_window < stop:
            w = self.next_window
            size = min(WINDOW, self.genome - w * WINDOW)
            diff = self.windows.pop(w, None)
            if diff is None:
                if self.carry:
                    self.total_depth += self.carry * size
                    for level in BREADTH_LEVELS:
                        if self.carry >= level:
                            self.covered[level] += size
                    if self.targets is not None:
                        self.targets.add_window(w, None, self.carry)
            else:
                cov = np.cumsum(diff[:size], dtype=np.int64)
                if self.carry:
                    cov += self.carry
                self.carry = int(cov[-1])
                self.total_depth += int(cov.sum())
                for level in BREADTH_LEVELS:
                    self.covered[level] += int(np.count_nonzero(cov >= level))
                if self.targets is not None:
                    self.targets.add_window(w, cov, 0)
            self.next_window += 1
            if not self.windows and not self.carry and self.next_window < stop:
                # Nothing pending: the windows up to the next read are empty.
                self.next_window = stop

    def finish(self) -> None:
        n_windows = (self.genome + WINDOW - 1) // WINDOW
        if not self.sorted_mode:
            # Bucket by bucket in reference order: only one bucket's windows are ever allocated.
            try:
                for b in sorted(set(self.segments) | set(self.pending)):
                    for offset, count in self.segments.get(b, []):
                        self.spill.seek(offset)
                        self._apply(np.frombuffer(self.spill.read(8 * count), dtype=np.int64))
                    for part in self.pending.get(b, []):
                        self._apply(part)
                    self._sum_windows(min(n_windows, (b + 1) * BUCKET_WINDOWS))
            finally:
                self.pending.clear()
                if self.spill is not None:
                    self.spill.close()
        self._sum_windows(n_windows)


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 4) if den else None


class _Scan:
    """Accumulators of every metric, fed one Batch at a time."""

    def __init__(self, header: Header, coverage: _Coverage | None) -> None:
        self.n_ref = len(header.names)
        self.coverage = coverage
        self.targets = coverage.targets if coverage is not None else None
        self.flag_hist = np.zeros(_FLAG_KEYS, dtype=np.int64)
        self.mapq_hist = np.zeros(256, dtype=np.int64)
        self.isize_hist = np.zeros(3 * (ISIZE_CAP + 1), dtype=np.int64)
        self.read_len_sum = 0
        self.seq_reads = 0
        self.qual_sum = 0
        self.bases_mapped_cigar = 0
        self.mismatches = 0

    def add(self, b: Batch) -> None:
        flag = b.flag.astype(np.int64)
        tid, mtid = b.tid.astype(np.int64), b.mtid.astype(np.int64)
        if ((tid < -1) | (tid >= self.n_ref) | (mtid < -1) | (mtid >= self.n_ref)).any():
            raise ValueError("BAM record names a reference the header does not list")
        mapq = b.mapq
        unmapped = (flag & _UNMAP) != 0

        # flagstat: one histogram over (flag, mate on another contig, MAPQ >= 5); categories at the end.
        key = flag & 0xFFF | (mtid != tid).astype(np.int64) << 12 | (mapq >= 5).astype(np.int64) << 13
        self.flag_hist += np.bincount(key, minlength=_FLAG_KEYS)
        self.mapq_hist += np.bincount(mapq[(flag & (_SECONDARY | _SUPP | _UNMAP)) == 0], minlength=256)

        # samtools stats summaries
        seq = ((flag & _SECONDARY) == 0) & (b.l_seq > 0)
        original = seq & ((flag & _SUPP) == 0)
        self.read_len_sum += int(b.l_seq[original].sum())
        self.seq_reads += int(np.count_nonzero(original))
        mates = flag & (_READ1 | _READ2)
        qual = original & (((flag & _PAIRED) == 0) | (mates == _READ1) | (mates == _READ2))  # as samtools 1.16
        self.qual_sum += int(b.byte_sums(b.qual_start[qual], b.l_seq[qual]).sum())
        mapped = seq & ~unmapped
        rec, op, length, n_ops = b.cigar()
        self.bases_mapped_cigar += int(length[_CIGAR_MAPPED_BASES[op] & mapped[rec]].sum())
        nm, _ = b.int_tag(b"NM")
        self.mismatches += int(nm[mapped].sum())
        ins = mapped & ((flag & _PAIRED) != 0) & ((flag & (_MUNMAP | _SUPP)) == 0)
        self._add_inserts(b, flag, tid, mtid, ins)

        if self.coverage is not None:
            covered = ((flag & _NO_COVERAGE) == 0) & (tid >= 0)
            consume = np.where(_CIGAR_MIDNX[op], length, 0)
            before = np.concatenate([[0], np.cumsum(consume)])
            first = np.cumsum(n_ops) - n_ops
            ref_start = b.pos.astype(np.int64)[rec] + before[:-1] - before[first][rec]
            block = _CIGAR_ALIGNED[op] & covered[rec] & (length > 0)
            brec = rec[block]
            self.coverage.add(tid[covered], b.pos[covered].astype(np.int64), tid[brec], ref_start[block],
                              ref_start[block] + length[block])
            if self.targets is not None:
                self._add_target_reads(b, flag, tid, before[first + n_ops] - before[first])

    def _add_target_reads(self, b: Batch, flag: np.ndarray, tid: np.ndarray, span: np.ndarray) -> None:
        """Primary mapped records' alignment spans (`span`: reference bases each CIGAR consumes), as
        htslib's bam_endpos (at least one base)."""
        assert self.coverage is not None and self.targets is not None
        primary = ((flag & (_UNMAP | _SECONDARY | _SUPP)) == 0) & (tid >= 0)
        t = tid[primary]
        contig = self.coverage.lengths[t]
        pos = b.pos[primary].astype(np.int64)
        start = self.coverage.offsets[t] + np.clip(pos, 0, contig)
        end = self.coverage.offsets[t] + np.clip(pos + np.maximum(span[primary].astype(np.int64), 1), 0, contig)
        self.targets.add_reads(start, end)

    def _add_inserts(self, b: Batch, flag: np.ndarray, tid: np.ndarray, mtid: np.ndarray, sel: np.ndarray) -> None:
        """Mapped reads with a mapped mate into samtools stats' insert-size histograms, by orientation."""
        flag, tid, mtid = flag[sel], tid[sel], mtid[sel]
        isize = np.minimum(np.abs(b.tlen[sel].astype(np.int64)), ISIZE_CAP)
        keep = (isize != 0) | (tid == mtid)  # mates on different contigs carry no insert size
        flag, isize = flag[keep], isize[keep]
        pos_fst = b.mpos[sel][keep].astype(np.int64) - b.pos[sel][keep].astype(np.int64)
        is_fst = np.where(flag & _READ1, 1, -1)
        is_fwd = np.where(flag & _REVERSE, -1, 1)
        is_mfwd = np.where(flag & _MREVERSE, -1, 1)
        fst_fwd = is_fst * is_fwd > 0
        orient = np.where(is_fwd * is_mfwd > 0, 2,
                          np.where(is_fst * pos_fst >= 0, np.where(fst_fwd, 0, 1), np.where(fst_fwd, 1, 0)))
        self.isize_hist += np.bincount(orient * (ISIZE_CAP + 1) + isize, minlength=len(self.isize_hist))

    def metrics(self) -> dict[str, Any]:
        keys = np.arange(_FLAG_KEYS)
        flag, other_chr, mapq5 = keys & 0xFFF, (keys >> 12) & 1, (keys >> 13) & 1
        h = self.flag_hist

        def count(mask: np.ndarray) -> int:
            return int(h[mask].sum())

        secondary = (flag & _SECONDARY) != 0
        supplementary = ~secondary & ((flag & _SUPP) != 0)
        primary = ~secondary & ~supplementary
        mapped = (flag & _UNMAP) == 0
        paired = primary & ((flag & _PAIRED) != 0)
        mate_mapped = paired & mapped & ((flag & _MUNMAP) == 0)
        c = {
            "total": int(h.sum()),
            "qc_failed": count((flag & _QCFAIL) != 0),
            "primary": count(primary),
            "secondary": count(secondary),
            "supplementary": count(supplementary),
            "duplicates": count((flag & _DUP) != 0),
            "primary_duplicates": count(primary & ((flag & _DUP) != 0)),
            "mapped": count(mapped),
            "primary_mapped": count(primary & mapped),
            "paired": count(paired),
            "read1": count(paired & ((flag & _READ1) != 0)),
            "read2": count(paired & ((flag & _READ2) != 0)),
            "properly_paired": count(paired & mapped & ((flag & _PROPER) != 0)),
            "with_mate_mapped": count(mate_mapped),
            "singletons": count(paired & mapped & ((flag & _MUNMAP) != 0)),
            "mate_on_other_chr": count(mate_mapped & (other_chr == 1)),
            "mate_on_other_chr_mapq5": count(mate_mapped & (other_chr == 1) & (mapq5 == 1)),
        }
        m: dict[str, Any] = dict(c)
        m["mapped_percent"] = _pct(c["mapped"], c["total"])
        m["primary_mapped_percent"] = _pct(c["primary_mapped"], c["primary"])
        m["properly_paired_percent"] = _pct(c["properly_paired"], c["paired"])
        m["singletons_percent"] = _pct(c["singletons"], c["paired"])
        n_mapq = int(self.mapq_hist.sum())
        m["mean_mapq"] = round(float((np.arange(256) * self.mapq_hist).sum()) / n_mapq, 4) if n_mapq else None
        m["mapq_distribution"] = {str(q): int(self.mapq_hist[q]) for q in np.flatnonzero(self.mapq_hist)}
        m["average_length"] = round(self.read_len_sum / self.seq_reads, 4) if self.seq_reads else None
        m["average_quality"] = round(self.qual_sum / self.read_len_sum, 4) if self.read_len_sum else None
        m["bases_mapped_cigar"] = self.bases_mapped_cigar
        m["mismatches"] = self.mismatches
        m["error_rate"] = round(self.mismatches / self.bases_mapped_cigar, 10) if self.bases_mapped_cigar else None
        m["insert_size_mean"], m["insert_size_sd"] = insert_size_summary(self.isize_hist.reshape(3, ISIZE_CAP + 1))
        return m


def alignment_metrics(
    path: str | Path,
    *,
    reference_fasta: str | None = None,
    reference_lengths: dict[str, int] | None = None,
    targets_bed: str | Path | Targets | None = None,
    amplicon_floor: int = AMPLICON_FLOOR,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Flagstat, stats-like, MAPQ and coverage metrics of one SAM/BAM/CRAM (see the module docstring).

    `reference_lengths` wins over the header's @SQ lengths, which win over the FASTA's
    .fai. CRAM needs `reference_fasta`; htslib is kept off the network (REF_PATH).
    No index is needed and any record order is accepted.
    With `targets_bed` (a BED path, validated first, or loaded `Targets`) the target
    metrics of qc/targets.py are added (on-target reads, depth and breadth over the
    targets, per-amplicon depth against `amplicon_floor`); without it `targets_bed` is None.
    `progress` is called as the records are read (see `bam_batches`).
    Raises ValueError for unreadable or malformed input, or an unusable targets BED.
    """
    path = str(path)
    targets = load_targets(targets_bed) if isinstance(targets_bed, str | Path) else targets_bed
    if reference_fasta and "REF_PATH" not in os.environ:
        # htslib would otherwise ask the EBI reference server for unknown MD5s.
        os.environ["REF_PATH"] = str(Path(reference_fasta).resolve().parent / "md5" / "%s")
    try:
        return _metrics(path, reference_fasta, reference_lengths, targets, amplicon_floor, sorted_mode=True,
                        progress=progress)
    except _NotSorted:
        return _metrics(path, reference_fasta, reference_lengths, targets, amplicon_floor, sorted_mode=False,
                        progress=progress)


def _metrics(path: str, reference_fasta: str | None, reference_lengths: dict[str, int] | None,
             targets: Targets | None, amplicon_floor: int, *, sorted_mode: bool,
             progress: ProgressCallback | None = None) -> dict[str, Any]:
    batches = bam_batches(path, reference_fasta, progress)
    try:
        header = next(batches)
        assert isinstance(header, Header)
        lengths = dict(reference_lengths or {})
        if not lengths:
            lengths = {k: v for k, v in zip(header.names, header.lengths, strict=True) if v > 0}
        if not lengths and reference_fasta:
            lengths = fai_lengths(reference_fasta)
        ref_total = sum(lengths.values())
        coverage = None
        if ref_total:
            contig_lengths = np.array([lengths.get(name, 0) for name in header.names], dtype=np.int64)
            coverage = _Coverage(contig_lengths, sorted_mode=sorted_mode)
            if targets is not None:
                coverage.targets = TargetScan(targets, list(header.names), coverage.lengths, coverage.offsets, WINDOW,
                                              amplicon_floor=amplicon_floor)
        elif targets is not None:
            raise ValueError("target metrics need the contig lengths (no @SQ lengths, reference or FASTA given)")
        scan = _Scan(header, coverage)
        for batch in batches:
            assert isinstance(batch, Batch)
            scan.add(batch)
    finally:
        batches.close()
    metrics = scan.metrics()
    if coverage is not None:
        coverage.finish()
        metrics["reference_length"] = ref_total
        metrics["mean_depth"] = round(coverage.total_depth / ref_total, 4)
        for level in BREADTH_LEVELS:
            metrics[f"breadth_{level}x"] = round(100.0 * coverage.covered[level] / ref_total, 4)
        metrics.update(coverage.targets.metrics() if coverage.targets is not None else {"targets_bed": None})
    else:
        metrics["reference_length"] = None
        metrics["mean_depth"] = None
        for level in BREADTH_LEVELS:
            metrics[f"breadth_{level}x"] = None
        metrics["targets_bed"] = None
    return metrics


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
