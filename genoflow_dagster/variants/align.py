"""Short-read alignment with minimap2 (mappy, preset ``sr``) into a sorted, indexed BAM.

mappy returns hits, not SAM: this module turns them into proper records
(pair flags, mate fields, TLEN, soft clips, NM/MC/RG tags), keeping unmapped
reads and dropping secondary and supplementary hits. Reads stream from the
FASTQ files in batches; nothing holds the whole file. The BAM is written
unsorted to a temporary file, sorted and indexed under temporary names, and
renamed into place last, so `out_bam` either exists complete or not at all.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mappy
import pysam

PRESET = "sr"
BATCH_PAIRS = 2_000
LOG_EVERY_READS = 200_000
# FR pairs further apart than this are not "proper": about twice the widest common library insert.
MAX_PROPER_INSERT = 1_000
BAI_MAX_CONTIG = 2**29 - 1  # .bai cannot address beyond 512 Mbp; larger contigs need .csi

FLAG_PAIRED = 0x1
FLAG_PROPER = 0x2
FLAG_UNMAPPED = 0x4
FLAG_MATE_UNMAPPED = 0x8
FLAG_REVERSE = 0x10
FLAG_MATE_REVERSE = 0x20
FLAG_READ1 = 0x40
FLAG_READ2 = 0x80

_Read = tuple[str, str, str | None]  # name, sequence, quality string (None for FASTA input)
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def ensure_faidx(fasta: str | Path) -> Path:
    """Create (or refresh, when older than the FASTA) the samtools .fai index; return its path."""
    fasta = Path(fasta)
    fai = Path(str(fasta) + ".fai")
    if not fai.is_file() or fai.stat().st_mtime < fasta.stat().st_mtime:
        pysam.faidx(str(fasta))
    return fai


def build_reference_index(fasta: str | Path, out_mmi: str | Path) -> Path:
    """Build the minimap2 index (short-read preset) for `fasta` at `out_mmi`, atomically.

    Raises ValueError when mappy cannot read the FASTA.
    """
    out_mmi = Path(out_mmi)
    tmp = out_mmi.with_name(f".{out_mmi.name}.{os.getpid()}.tmp")
    try:
        aligner = mappy.Aligner(str(fasta), preset=PRESET, fn_idx_out=str(tmp))
        if not aligner or not tmp.is_file():
            raise ValueError(f"minimap2 could not index {fasta}")
        del aligner
        tmp.replace(out_mmi)
    finally:
        tmp.unlink(missing_ok=True)
    return out_mmi


def read_fai(fasta: str | Path) -> list[tuple[str, int]]:
    """(name, length) of each contig, in FASTA order."""
    contigs = []
    with open(ensure_faidx(fasta)) as fh:
        for line in fh:
            name, length = line.split("\t")[:2]
            contigs.append((name, int(length)))
    return contigs


def align_reads(
    reference: str | Path,
    r1: str | Path,
    r2: str | Path | None,
    out_bam: str | Path,
    *,
    sample_id: str,
    reference_fasta: str | Path,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
    read_group: str | None = None,
    log_every: int = LOG_EVERY_READS,
) -> dict[str, Any]:
    """Align single or paired FASTQ (plain or gzip) to `reference` (.mmi or FASTA); write a sorted, indexed BAM.

    `reference_fasta` supplies the contig lengths for the header (its .fai).
    The read group is `read_group` (default: the sample id) with SM=sample_id.
    `threads` goes to sorting and indexing: mappy holds the GIL while mapping
    (measured: two Python threads map no faster than one), so mapping stays
    on one thread here and scales out by running samples in separate processes.
    Returns counts (reads, mapped, paired, properly_paired, ...), seconds and
    the mappy version. Raises FileNotFoundError for a missing FASTQ, ValueError
    on a reference that cannot be loaded or on R1/R2 files whose read names or
    counts disagree.
    """
    started = time.monotonic()
    say = log or (lambda _message: None)
    out_bam = Path(out_bam)
    for path in (r1, r2):
        # mappy.fastx_read yields nothing for a missing file: that must not become an empty BAM
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"reads file not found: {path}")
    threads = max(1, int(threads))
    aligner = mappy.Aligner(str(reference), preset=PRESET)
    if not aligner:
        raise ValueError(f"minimap2 could not load the reference {reference}")
    contigs = read_fai(reference_fasta)
    missing = set(aligner.seq_names) - {name for name, _ in contigs}
    if missing:
        raise ValueError(f"index {reference} has contigs not in {reference_fasta}: {sorted(missing)[:5]}")
    rg_id = read_group or sample_id
    header = pysam.AlignmentHeader.from_dict(
        {
            "HD": {"VN": "1.6", "SO": "unsorted"},
            "SQ": [{"SN": name, "LN": length} for name, length in contigs],
            "RG": [{"ID": rg_id, "SM": sample_id, "LB": sample_id, "PL": "ILLUMINA"}],
            "PG": [{"ID": "minimap2", "PN": "minimap2", "VN": mappy.__version__,
                    "CL": f"mappy.Aligner(preset={PRESET!r}).map"}],
        }
    )
    tid = {name: i for i, (name, _) in enumerate(contigs)}
    counts = {"reads": 0, "pairs": 0, "mapped": 0, "paired": 0, "properly_paired": 0, "supplementary_skipped": 0}

    tmp_unsorted = out_bam.with_name(f".{out_bam.name}.{os.getpid()}.unsorted.bam")
    tmp_sorted = out_bam.with_name(f".{out_bam.name}.{os.getpid()}.sorted.bam")
    use_csi = any(length > BAI_MAX_CONTIG for _, length in contigs)
    index_suffix = ".csi" if use_csi else ".bai"
    tmp_index = Path(str(tmp_sorted) + index_suffix)
    say(f"aligning {Path(r1).name}" + (f" + {Path(r2).name}" if r2 else "") + f" with mappy {mappy.__version__} "
        f"(preset {PRESET}, {threads} thread(s))")
    try:
        with pysam.AlignmentFile(str(tmp_unsorted), "wbu", header=header) as bam:
            records = _reads(r1, r2)
            mapper = _Mapper(aligner)
            next_log = log_every
            for batch_hits in _map_batches(mapper, records):
                for reads, hits in batch_hits:
                    for segment in _to_segments(header, reads, hits, tid, rg_id, counts):
                        bam.write(segment)
                if counts["reads"] >= next_log:
                    rate = counts["reads"] / max(time.monotonic() - started, 1e-9)
                    say(f"{counts['reads']:,} reads aligned, {counts['mapped']:,} mapped ({rate:,.0f} reads/s)")
                    next_log += log_every
        sort_args = ["-@", str(threads), "-m", "512M", "-T", str(tmp_sorted) + ".chunk", "-o", str(tmp_sorted)]
        pysam.sort(*sort_args, str(tmp_unsorted), catch_stdout=False)
        index_args = ["-c"] if use_csi else ["-b"]
        pysam.index(*index_args, "-@", str(threads), str(tmp_sorted), str(tmp_index), catch_stdout=False)
        # Index first, BAM last: a BAM at `out_bam` always has its (newer) index beside it.
        for stale in (".bai", ".csi"):
            Path(str(out_bam) + stale).unlink(missing_ok=True)
        tmp_index.replace(str(out_bam) + index_suffix)
        tmp_sorted.replace(out_bam)
    finally:
        for path in (tmp_unsorted, tmp_sorted, tmp_index):
            path.unlink(missing_ok=True)
        for chunk in out_bam.parent.glob(f"{tmp_sorted.name}.chunk*"):
            chunk.unlink(missing_ok=True)

    seconds = time.monotonic() - started
    stats: dict[str, Any] = {
        **counts,
        "mapped_percent": round(100.0 * counts["mapped"] / counts["reads"], 3) if counts["reads"] else 0.0,
        "seconds": round(seconds, 3),
        "reads_per_second": round(counts["reads"] / seconds, 1) if seconds > 0 else None,
        "aligner": "minimap2 (mappy)",
        "mappy_version": mappy.__version__,
        "preset": PRESET,
        "threads": threads,
        "bam": str(out_bam),
        "index": str(out_bam) + index_suffix,
    }
    say(f"aligned {counts['reads']:,} reads in {seconds:.1f} s: {stats['mapped_percent']:.2f}% mapped, "
        f"{counts['properly_paired']:,} properly paired")
    return stats


# --- reading ------------------------------------------------------------------------------------


def _strip_mate(name: str) -> str:
    return name[:-2] if name.endswith(("/1", "/2")) else name


def _reads(r1: str | Path, r2: str | Path | None) -> Iterator[tuple[_Read, _Read | None]]:
    """Yield (read1, read2) in lockstep (read2 None for single-end); mismatched mates raise ValueError."""
    first = mappy.fastx_read(str(r1), read_comment=False)
    if r2 is None:
        for name, seq, qual in first:
            yield (name, seq, qual), None
        return
    second = mappy.fastx_read(str(r2), read_comment=False)
    for number, (a, b) in enumerate(itertools.zip_longest(first, second), start=1):
        if a is None or b is None:
            shorter = r1 if a is None else r2
            raise ValueError(f"{Path(shorter).name} ends at read {number - 1}; its mate file has more reads")
        name1, name2 = _strip_mate(a[0]), _strip_mate(b[0])
        if name1 != name2:
            raise ValueError(f"read {number}: mate names differ ({a[0]!r} vs {b[0]!r})")
        yield (name1, a[1], a[2]), (name2, b[1], b[2])


def _batched(iterable: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(iterable, size)):
        yield batch


# --- mapping ------------------------------------------------------------------------------------


class _Mapper:
    """The aligner with its reusable ThreadBuffer (mappy's per-caller scratch memory)."""

    def __init__(self, aligner: mappy.Aligner):
        self.aligner = aligner
        self.buf = mappy.ThreadBuffer()

    def map_batch(self, batch: list[tuple[_Read, _Read | None]]) -> list[tuple[tuple[_Read, _Read | None], list]]:
        out = []
        for pair in batch:
            a, b = pair
            hits = self.aligner.map(a[1], b[1], buf=self.buf) if b else self.aligner.map(a[1], buf=self.buf)
            out.append((pair, list(hits)))
        return out


def _map_batches(mapper: _Mapper, records: Iterator) -> Iterator[list]:
    for batch in _batched(records, BATCH_PAIRS):
        yield mapper.map_batch(batch)


# --- records ------------------------------------------------------------------------------------


def _revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def _primary(hits: list, read_num: int, counts: dict[str, int]) -> Any | None:
    """The first primary hit of one mate; further primary hits are supplementary pieces (not written)."""
    chosen = None
    for hit in hits:
        if hit.read_num != read_num or not hit.is_primary:
            continue
        if chosen is None:
            chosen = hit
        else:
            counts["supplementary_skipped"] += 1
    return chosen


def _to_segments(
    header: pysam.AlignmentHeader,
    pair: tuple[_Read, _Read | None],
    hits: list,
    tid: dict[str, int],
    rg_id: str,
    counts: dict[str, int],
) -> list[pysam.AlignedSegment]:
    read1, read2 = pair
    if read2 is None:
        hit = _primary(hits, 1, counts)
        counts["reads"] += 1
        counts["mapped"] += hit is not None
        segment = _segment(header, read1, hit, tid, rg_id, 0)
        return [segment]

    counts["reads"] += 2
    counts["pairs"] += 1
    counts["paired"] += 2
    h1, h2 = _primary(hits, 1, counts), _primary(hits, 2, counts)
    counts["mapped"] += (h1 is not None) + (h2 is not None)
    proper = _is_proper(h1, h2)
    counts["properly_paired"] += 2 * proper
    base = FLAG_PAIRED | (FLAG_PROPER if proper else 0)
    s1 = _segment(header, read1, h1, tid, rg_id, base | FLAG_READ1)
    s2 = _segment(header, read2, h2, tid, rg_id, base | FLAG_READ2)
    _set_mate(s1, s2, h2)
    _set_mate(s2, s1, h1)
    if h1 is not None and h2 is not None and h1.ctg == h2.ctg:
        left = min(h1.r_st, h2.r_st)
        span = max(h1.r_en, h2.r_en) - left
        first_is_1 = h1.r_st <= h2.r_st
        s1.template_length = span if first_is_1 else -span
        s2.template_length = -span if first_is_1 else span
    return [s1, s2]


def _is_proper(h1: Any | None, h2: Any | None) -> bool:
    """Both mapped to one contig, forward/reverse facing each other, insert within MAX_PROPER_INSERT."""
    if h1 is None or h2 is None or h1.ctg != h2.ctg or h1.strand == h2.strand:
        return False
    forward, reverse = (h1, h2) if h1.strand > 0 else (h2, h1)
    if forward.r_st > reverse.r_en:
        return False
    return max(h1.r_en, h2.r_en) - min(h1.r_st, h2.r_st) <= MAX_PROPER_INSERT


def _segment(
    header: pysam.AlignmentHeader, read: _Read, hit: Any | None, tid: dict[str, int], rg_id: str, flag: int
) -> pysam.AlignedSegment:
    name, seq, qual = read
    segment = pysam.AlignedSegment(header)
    segment.query_name = name
    if hit is None:
        segment.flag = flag | FLAG_UNMAPPED
        segment.reference_id = -1
        segment.reference_start = -1
        segment.mapping_quality = 0
        segment.query_sequence = seq
        if qual is not None:
            segment.query_qualities = pysam.qualitystring_to_array(qual)
    else:
        length = len(seq)
        if hit.strand < 0:
            seq = _revcomp(seq)
            qual = qual[::-1] if qual is not None else None
            clip_left, clip_right = length - hit.q_en, hit.q_st
            flag |= FLAG_REVERSE
        else:
            clip_left, clip_right = hit.q_st, length - hit.q_en
        cigar = [(op, n) for n, op in hit.cigar]
        if clip_left:
            cigar.insert(0, (4, clip_left))
        if clip_right:
            cigar.append((4, clip_right))
        segment.flag = flag
        segment.reference_id = tid[hit.ctg]
        segment.reference_start = hit.r_st
        segment.mapping_quality = hit.mapq
        segment.cigartuples = cigar
        segment.query_sequence = seq
        if qual is not None:
            segment.query_qualities = pysam.qualitystring_to_array(qual)
        segment.set_tag("NM", hit.NM, value_type="i")
    segment.set_tag("RG", rg_id, value_type="Z")
    return segment


def _set_mate(segment: pysam.AlignedSegment, mate: pysam.AlignedSegment, mate_hit: Any | None) -> None:
    """Mate fields per the SAM spec; an unmapped read with a mapped mate takes the mate's position."""
    if mate_hit is None:
        segment.flag |= FLAG_MATE_UNMAPPED
        if segment.is_unmapped:
            segment.next_reference_id = -1
            segment.next_reference_start = -1
        else:
            segment.next_reference_id = segment.reference_id
            segment.next_reference_start = segment.reference_start
        return
    if segment.is_unmapped:
        segment.reference_id = mate.reference_id
        segment.reference_start = mate.reference_start
    segment.next_reference_id = mate.reference_id
    segment.next_reference_start = mate.reference_start
    if mate_hit.strand < 0:
        segment.flag |= FLAG_MATE_REVERSE
    with contextlib.suppress(ValueError):
        segment.set_tag("MC", mate.cigarstring, value_type="Z")
