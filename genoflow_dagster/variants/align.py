"""Short-read alignment with minimap2 (mappy, preset ``sr``) into a sorted, indexed BAM.

mappy returns hits, not SAM. This module writes the records `minimap2 -ax sr`
writes for the same reads and reference (flag, POS, MAPQ, CIGAR, mate fields,
TLEN, NM, and the SA tags of split reads), following minimap2's own SAM
writer (format.c) and pairing rules (pe.c) rather than the SAM spec's
latitude, so a BAM from GenoFlow and one from the CLI can be compared record
by record. Three things mappy leaves to the caller:

- Read 2 of a pair: mappy maps the reverse complement of read 2 (minimap2's
  fragment mode wants both mates on one strand) and flips the strand of its
  hits back but not their query interval, which still counts from the end of
  read 2. The interval is turned back here before clips are placed; used as
  it is, a read-through adapter's clip lands on the wrong end.
- Supplementary alignments (the other pieces of a split read) are written
  with flag 0x800, hard clips and their own SEQ slice, and every piece names
  the others in an `SA` tag; secondary hits are dropped, as `-x sr` does.
- Proper pairs: minimap2 marks the pair its pairing step chose; mappy does not
  expose the mark, so it is recomputed from the same rule (forward mate
  first, reverse mate starting at most max(800 - both read lengths, 100) bp
  after the forward mate ends, one contig).

Mapping runs in worker processes over batches of reads (mappy holds the GIL,
so threads do not help): the parent reads the FASTQ once and hands batches to
`threads` forked workers, which share the loaded index copy-on-write and
return their records as SAM text. The parent writes them, in
input order, into a pipe read by `samtools sort` in a child process, so
sorting overlaps mapping as in `minimap2 | samtools sort`.
The BAM is sorted and indexed under temporary names and renamed into place
last, so `out_bam` either exists complete or not at all.
"""

from __future__ import annotations

import concurrent.futures
import errno
import itertools
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import mappy
import pysam

PRESET = "sr"
BATCH_PAIRS = 4_000
LOG_EVERY_READS = 200_000
BAI_MAX_CONTIG = 2**29 - 1  # .bai cannot address beyond 512 Mbp; larger contigs need .csi
BAM_COMPRESSION_LEVEL = 2
# minimap2's `sr` preset: fragments up to 800 bp; the pairing gap never drops below max_gap (100).
MAX_FRAG_LEN = 800
MIN_PAIR_GAP = 100
PAIRING_BONUS = 33  # minimap2's pe_bonus

FLAG_PAIRED = 0x1
FLAG_PROPER = 0x2
FLAG_UNMAPPED = 0x4
FLAG_MATE_UNMAPPED = 0x8
FLAG_REVERSE = 0x10
FLAG_MATE_REVERSE = 0x20
FLAG_READ1 = 0x40
FLAG_READ2 = 0x80
FLAG_SUPPLEMENTARY = 0x800

_Read = tuple[str, str, str | None]  # name, sequence, quality string (None for FASTA input)
_Template = tuple[str, _Read, _Read | None]  # R1's name as read (minimap2 hashes it), read 1, read 2 or None
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
    With `threads` > 1, `threads` + 1 forked worker processes map (with 1,
    this process maps) and `threads` sort and index. Returns counts (reads, mapped, paired,
    properly_paired, supplementary, ...), seconds and the mappy version.
    Raises FileNotFoundError for a missing FASTQ, ValueError on a reference
    that cannot be loaded or on R1/R2 files whose read names or counts disagree.
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
    header_text = _header_text(contigs, rg_id, sample_id)

    tmp_sam = out_bam.with_name(f".{out_bam.name}.{os.getpid()}.sam.fifo")
    tmp_sorted = out_bam.with_name(f".{out_bam.name}.{os.getpid()}.sorted.bam")
    # One worker more than `threads`: this process (reading the FASTQ) and the sorter leave gaps that a
    # third mapper fills (1M pairs on 2 cores: 2 mappers 53.6 s, 3 mappers 46.3 s wall).
    mapping_workers = threads + 1 if threads > 1 else 1
    use_csi = any(length > BAI_MAX_CONTIG for _, length in contigs)
    index_suffix = ".csi" if use_csi else ".bai"
    tmp_index = Path(str(tmp_sorted) + index_suffix)
    say(f"aligning {Path(r1).name}" + (f" + {Path(r2).name}" if r2 else "") + f" with mappy {mappy.__version__} "
        f"(preset {PRESET}, {mapping_workers} mapping process(es))")
    counts: Counter[str] = Counter()
    # BGZF level 2: pysam's htslib compresses with zlib, where the default level 6 spends about 2.4x the CPU
    # of level 2 to make the BAM 9% smaller (600k 150-bp records: 16.7 vs 6.1 CPU s, 134 vs 147 MB).
    sort_args = ["-@", str(threads), "-m", "768M", "-l", str(BAM_COMPRESSION_LEVEL), "-T", str(tmp_sorted) + ".chunk",
                 "-o", str(tmp_sorted)]
    sorter = None
    try:
        # samtools sort reads the records through a pipe while the workers map, as `minimap2 | samtools sort`
        # does: its parsing overlaps the mapping instead of following it.
        os.mkfifo(tmp_sam)
        sorter = _start_sorter(sort_args, tmp_sam)
        with _open_pipe(tmp_sam, sorter) as sam:
            sam.write(header_text.encode())
            next_log = log_every
            for chunk, batch_counts in _mapped_batches(aligner, _reads(r1, r2), rg_id, mapping_workers):
                try:
                    sam.write(chunk)
                except BrokenPipeError:
                    sorter.join(5)
                    raise RuntimeError(f"samtools sort stopped reading the aligned records (exit code "
                                       f"{sorter.exitcode}); is the disk full?") from None
                counts.update(batch_counts)
                if counts["reads"] >= next_log:
                    rate = counts["reads"] / max(time.monotonic() - started, 1e-9)
                    say(f"{counts['reads']:,} reads aligned, {counts['mapped']:,} mapped ({rate:,.0f} reads/s)")
                    next_log += log_every
        mapped_at = time.monotonic()
        say(f"sorting {counts['reads']:,} reads")
        sorter.join()
        if sorter.exitcode != 0:
            raise RuntimeError(f"samtools sort failed (exit code {sorter.exitcode}) on the aligned reads")
        index_args = ["-c"] if use_csi else ["-b"]
        pysam.index(*index_args, "-@", str(threads), str(tmp_sorted), str(tmp_index), catch_stdout=False)
        # Index first, BAM last: a BAM at `out_bam` always has its (newer) index beside it.
        for stale in (".bai", ".csi"):
            Path(str(out_bam) + stale).unlink(missing_ok=True)
        tmp_index.replace(str(out_bam) + index_suffix)
        tmp_sorted.replace(out_bam)
    finally:
        if sorter is not None and sorter.is_alive():
            sorter.kill()
            sorter.join()
        for path in (tmp_sam, tmp_sorted, tmp_index):
            path.unlink(missing_ok=True)
        for chunk_file in out_bam.parent.glob(f"{tmp_sorted.name}.chunk*"):
            chunk_file.unlink(missing_ok=True)

    seconds = time.monotonic() - started
    stats: dict[str, Any] = {
        "reads": counts["reads"],
        "pairs": counts["pairs"],
        "mapped": counts["mapped"],
        "paired": counts["paired"],
        "properly_paired": counts["properly_paired"],
        "supplementary": counts["supplementary"],
        "mapped_percent": round(100.0 * counts["mapped"] / counts["reads"], 3) if counts["reads"] else 0.0,
        "seconds": round(seconds, 3),
        "mapping_seconds": round(mapped_at - started, 3),
        "reads_per_second": round(counts["reads"] / seconds, 1) if seconds > 0 else None,
        "aligner": "minimap2 (mappy)",
        "mappy_version": mappy.__version__,
        "preset": PRESET,
        "threads": threads,
        "mapping_workers": mapping_workers,
        "bam": str(out_bam),
        "index": str(out_bam) + index_suffix,
    }
    say(f"aligned {counts['reads']:,} reads in {seconds:.1f} s: {stats['mapped_percent']:.2f}% mapped, "
        f"{counts['properly_paired']:,} properly paired, {counts['supplementary']:,} supplementary records")
    return stats


def _start_sorter(sort_args: list[str], fifo: Path) -> multiprocessing.process.BaseProcess:
    """A child process running `samtools sort` on the records written to `fifo`."""
    context: multiprocessing.context.ForkContext | multiprocessing.context.SpawnContext
    if "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("spawn")
    process = context.Process(target=_sort, args=(sort_args, str(fifo)), name="samtools-sort", daemon=True)
    process.start()
    return process


def _open_pipe(fifo: Path, reader: multiprocessing.process.BaseProcess) -> BinaryIO:
    """Open `fifo` for writing once `reader` has opened it; a reader that died instead raises RuntimeError.

    (A plain open() would wait for ever for a reader that is gone.)
    """
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if not reader.is_alive():
                raise RuntimeError(f"samtools sort stopped before reading (exit code {reader.exitcode})") from None
            time.sleep(0.005)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "wb", buffering=1 << 20)


def _sort(sort_args: list[str], source: str) -> None:
    pysam.sort(*sort_args, source, catch_stdout=False)


def _header_text(contigs: list[tuple[str, int]], rg_id: str, sample_id: str) -> str:
    lines = ["@HD\tVN:1.6\tSO:unsorted"]
    lines += [f"@SQ\tSN:{name}\tLN:{length}" for name, length in contigs]
    lines.append(f"@RG\tID:{rg_id}\tSM:{sample_id}\tLB:{sample_id}\tPL:ILLUMINA")
    lines.append(f"@PG\tID:minimap2\tPN:minimap2\tVN:{mappy.__version__}\tCL:mappy.Aligner(preset='{PRESET}').map")
    return "\n".join(lines) + "\n"


# --- reading ------------------------------------------------------------------------------------


def _template_name(name: str) -> str:
    """minimap2 drops a trailing '/<digit>' from paired read names (mm_qname_len)."""
    return name[:-2] if len(name) >= 3 and name[-2] == "/" and name[-1].isdigit() else name


def _reads(r1: str | Path, r2: str | Path | None) -> Iterator[_Template]:
    """Yield (R1 name as read, read1, read2) in lockstep (read2 None for single-end).

    Mismatched mates raise ValueError.
    """
    first = mappy.fastx_read(str(r1), read_comment=False)
    if r2 is None:
        for name, seq, qual in first:
            yield name, (name, seq, qual), None
        return
    second = mappy.fastx_read(str(r2), read_comment=False)
    for number, (a, b) in enumerate(itertools.zip_longest(first, second), start=1):
        if a is None or b is None:
            shorter = r1 if a is None else r2
            raise ValueError(f"{Path(shorter).name} ends at read {number - 1}; its mate file has more reads")
        name1, name2 = _template_name(a[0]), _template_name(b[0])
        if name1 != name2:
            raise ValueError(f"read {number}: mate names differ ({a[0]} vs {b[0]})")
        yield a[0], (name1, a[1], a[2]), (name2, b[1], b[2])


def _batched(iterable: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(iterable, size)):
        yield batch


# --- mapping ------------------------------------------------------------------------------------

# The aligner of this process: set before the workers are forked, so they share its index pages.
_ALIGNER: mappy.Aligner | None = None
_BUFFER: mappy.ThreadBuffer | None = None


def _mapped_batches(aligner: mappy.Aligner, records: Iterator[_Template], rg_id: str,
                    workers: int) -> Iterator[tuple[bytes, Counter[str]]]:
    """(SAM text, counts) for each batch of reads, in input order."""
    global _ALIGNER, _BUFFER
    _ALIGNER, _BUFFER = aligner, None
    batches = _batched(records, BATCH_PAIRS)
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        for batch in batches:
            yield _map_batch(batch, rg_id)
        return
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: list[concurrent.futures.Future] = []
        try:
            for batch in batches:
                pending.append(pool.submit(_map_batch, batch, rg_id))
                if len(pending) >= 2 * workers:  # bounded: at most 2 batches per worker in flight
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()


def _map_batch(batch: list[_Template], rg_id: str) -> tuple[bytes, Counter[str]]:
    global _BUFFER
    aligner = _ALIGNER
    assert aligner is not None
    if _BUFFER is None:
        _BUFFER = mappy.ThreadBuffer()
    counts: Counter[str] = Counter()
    lines: list[str] = []
    # The read name goes to mappy as it does in the CLI: minimap2 breaks ties between equally good
    # placements (MAPQ 0 repeats) with a hash of it.
    for name, read1, read2 in batch:
        if read2 is None:
            hits = [_Hit.of(h, len(read1[1]), False) for h in aligner.map(read1[1], name=name, buf=_BUFFER)]
            lines += _single_records(read1, hits, rg_id, counts)
        else:
            mapped = [h for h in aligner.map(read1[1], read2[1], name=name, buf=_BUFFER) if h.is_primary]
            if len(mapped) == 2 and mapped[0].read_num == 1 and mapped[1].read_num == 2:
                lines.append(_plain_pair(read1, read2, mapped[0], mapped[1], rg_id, counts))
            else:
                length2 = len(read2[1])
                hits = [_Hit.of(h, length2, h.read_num == 2) for h in mapped]
                lines += _pair_records(read1, read2, hits, rg_id, counts)
    return "".join(lines).encode(), counts


def _plain_pair(read1: _Read, read2: _Read, h1: Any, h2: Any, rg_id: str, counts: Counter[str]) -> str:
    """The common case written directly: both mates mapped, one piece each (same records as _pair_records)."""
    name, seq1, qual1 = read1
    seq2, qual2 = read2[1], read2[2]
    len1, len2 = len(seq1), len(seq2)
    rev1, rev2 = h1.strand < 0, h2.strand < 0
    # read 2's interval is counted from its end (see the module docstring)
    q1s, q1e = h1.q_st, h1.q_en
    q2s, q2e = len2 - h2.q_en, len2 - h2.q_st
    cigar1 = _clipped(h1.cigar_str, rev1, q1s, q1e, len1, "S")
    cigar2 = _clipped(h2.cigar_str, rev2, q2s, q2e, len2, "S")
    ctg1, ctg2, pos1, pos2 = h1.ctg, h2.ctg, h1.r_st, h2.r_st
    proper = _proper_pair(ctg1, rev1, pos1, h1.r_en, ctg2, rev2, pos2, h2.r_en, len1 + len2)
    tlen1 = tlen2 = 0
    if ctg1 == ctg2:
        tlen1 = _tlen(rev1, pos1, h1.r_en, rev2, pos2, h2.r_en)
        tlen2 = -tlen1
        rnext1 = rnext2 = "="
    else:
        rnext1, rnext2 = ctg2, ctg1
    flag1 = FLAG_PAIRED | FLAG_READ1 | (FLAG_PROPER if proper else 0)
    flag2 = FLAG_PAIRED | FLAG_READ2 | (FLAG_PROPER if proper else 0)
    if rev1:
        flag1 |= FLAG_REVERSE
        flag2 |= FLAG_MATE_REVERSE
        seq1, qual1 = seq1.translate(_COMPLEMENT)[::-1], qual1[::-1] if qual1 is not None else None
    if rev2:
        flag2 |= FLAG_REVERSE
        flag1 |= FLAG_MATE_REVERSE
        seq2, qual2 = seq2.translate(_COMPLEMENT)[::-1], qual2[::-1] if qual2 is not None else None
    counts["reads"] += 2
    counts["pairs"] += 1
    counts["paired"] += 2
    counts["mapped"] += 2
    counts["properly_paired"] += 2 * proper
    return (f"{name}\t{flag1}\t{ctg1}\t{pos1 + 1}\t{h1.mapq}\t{cigar1}\t{rnext1}\t{pos2 + 1}\t{tlen1}\t{seq1}\t"
            f"{qual1 or '*'}\tNM:i:{h1.NM}\tRG:Z:{rg_id}\tMC:Z:{cigar2}\n"
            f"{name}\t{flag2}\t{ctg2}\t{pos2 + 1}\t{h2.mapq}\t{cigar2}\t{rnext2}\t{pos1 + 1}\t{tlen2}\t{seq2}\t"
            f"{qual2 or '*'}\tNM:i:{h2.NM}\tRG:Z:{rg_id}\tMC:Z:{cigar1}\n")


class _Hit(NamedTuple):
    """One primary or supplementary alignment, in the read's own orientation (as the CLI reports it)."""

    read_num: int
    ctg: str
    r_st: int
    r_en: int
    rev: bool
    q_st: int
    q_en: int
    mapq: int
    cigar: str
    nm: int
    primary: bool  # minimap2's parent == id: a primary or a supplementary piece, never secondary

    @classmethod
    def of(cls, hit: Any, read_length: int, flip: bool) -> _Hit:
        rev = hit.strand < 0
        q_st, q_en = hit.q_st, hit.q_en
        if flip:  # read 2 was mapped reverse-complemented; mappy flips its strand back, not its interval
            q_st, q_en = read_length - hit.q_en, read_length - hit.q_st
        return cls(hit.read_num, hit.ctg, hit.r_st, hit.r_en, rev, q_st, q_en, hit.mapq, hit.cigar_str,
                   hit.NM, bool(hit.is_primary))


def _pieces(hits: list[_Hit], read_num: int) -> list[_Hit]:
    """The read's primary and supplementary alignments in minimap2's order; the first is the primary."""
    return [h for h in hits if h.read_num == read_num and h.primary]


def _is_proper(h1: _Hit | None, h2: _Hit | None, qlen_sum: int) -> bool:
    if h1 is None or h2 is None:
        return False
    return _proper_pair(h1.ctg, h1.rev, h1.r_st, h1.r_en, h2.ctg, h2.rev, h2.r_st, h2.r_en, qlen_sum)


def _proper_pair(ctg1: str, rev1: bool, st1: int, en1: int, ctg2: str, rev2: bool, st2: int, en2: int,
                 qlen_sum: int) -> bool:
    """minimap2's pairing rule (mm_pair): FR on one contig, the reverse mate starting after the forward one."""
    if ctg1 != ctg2 or rev1 == rev2:
        return False
    (fwd_st, fwd_en), rev_st = ((st2, en2), st1) if rev1 else ((st1, en1), st2)
    return fwd_st <= rev_st and rev_st - fwd_en <= max(MAX_FRAG_LEN - qlen_sum, MIN_PAIR_GAP)


def _tlen(rev: bool, st: int, en: int, mate_rev: bool, mate_st: int, mate_en: int) -> int:
    """minimap2's TLEN: from this record's 5' end to its mate's, counting both ends (0 when they coincide)."""
    tlen = (mate_en - 1 if mate_rev else mate_st) - (en - 1 if rev else st)
    return tlen + 1 if tlen > 0 else tlen - 1 if tlen < 0 else 0


def _pair_primaries(pieces1: list[_Hit], pieces2: list[_Hit], qlen_sum: int) -> tuple[list[_Hit], list[_Hit], bool]:
    """Each mate's pieces with its primary first, and whether the primaries are a proper pair.

    minimap2 pairs the mates' pieces and makes the best-scoring proper pair
    the primaries (pe.c), which need not be the first pieces mappy lists when
    a mate is split. The alignment score is not exposed by mappy, so it is
    recomputed from the CIGAR and NM with the `sr` scoring.
    """
    if not pieces1 or not pieces2:
        return pieces1, pieces2, False
    if _is_proper(pieces1[0], pieces2[0], qlen_sum) or (len(pieces1) == 1 and len(pieces2) == 1):
        return pieces1, pieces2, _is_proper(pieces1[0], pieces2[0], qlen_sum)
    best: tuple[int, int, int] | None = None
    # a pair scoring more than the pairing bonus below the mates' best pieces is not considered (pe.c)
    threshold = max(map(_score, pieces1)) + max(map(_score, pieces2)) - PAIRING_BONUS
    for i, a in enumerate(pieces1):
        for j, b in enumerate(pieces2):
            if _is_proper(a, b, qlen_sum):
                score = _score(a) + _score(b)
                if score >= threshold and (best is None or score > best[0]):
                    best = (score, i, j)
    if best is None:
        return pieces1, pieces2, False
    _, i, j = best
    return ([pieces1[i], *pieces1[:i], *pieces1[i + 1:]], [pieces2[j], *pieces2[:j], *pieces2[j + 1:]], True)


_CIGAR_RUN = re.compile(r"(\d+)([MIDNSHP=X])")


def _score(hit: _Hit) -> int:
    """The `sr` preset's alignment score of a hit: match 2, mismatch -8, gaps min(12 + 2l, 24 + l)."""
    matched = gaps = gap_bases = 0
    for length, op in _CIGAR_RUN.findall(hit.cigar):
        n = int(length)
        if op in "M=X":
            matched += n
        elif op in "ID":
            gaps += min(12 + 2 * n, 24 + n)
            gap_bases += n
    mismatches = hit.nm - gap_bases
    return 2 * (matched - mismatches) - 8 * mismatches - gaps


# --- records ------------------------------------------------------------------------------------


def _revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def _cigar(hit: _Hit, length: int, clip: str) -> str:
    return _clipped(hit.cigar, hit.rev, hit.q_st, hit.q_en, length, clip)


def _clipped(cigar: str, rev: bool, q_st: int, q_en: int, length: int, clip: str) -> str:
    """The alignment's CIGAR with the read's unaligned ends as clips; a reverse hit's 3' end is on the left."""
    left, right = (length - q_en, q_st) if rev else (q_st, length - q_en)
    return (f"{left}{clip}" if left else "") + cigar + (f"{right}{clip}" if right else "")


def _sa_tag(pieces: list[_Hit], this: _Hit, length: int) -> str:
    """minimap2's SA:Z: the read's other pieces, each with a CIGAR of clips and one M, I or D run."""
    fields = []
    for q in pieces:
        if q is this:
            continue
        qspan, rspan = q.q_en - q.q_st, q.r_en - q.r_st
        if qspan < rspan:
            ops = f"{qspan}M{rspan - qspan}D"
        else:
            ops = f"{rspan}M" + (f"{qspan - rspan}I" if qspan > rspan else "")
        clip5, clip3 = (length - q.q_en, q.q_st) if q.rev else (q.q_st, length - q.q_en)
        cigar = (f"{clip5}S" if clip5 else "") + ops + (f"{clip3}S" if clip3 else "")
        fields.append(f"{q.ctg},{q.r_st + 1},{'-' if q.rev else '+'},{cigar},{q.mapq},{q.nm};")
    return "\tSA:Z:" + "".join(fields) if fields else ""


def _records(read: _Read, pieces: list[_Hit], flag: int,
             mate_fields: Callable[[_Hit | None], tuple[str, int, str, int, int]], tags: str, counts: Counter[str]
             ) -> list[str]:
    """SAM lines for one read: its primary (or unmapped) record and its supplementary pieces."""
    name, seq, qual = read
    qual = qual if qual is not None else "*"
    if not pieces:
        rname, pos, rnext, pnext, tlen = mate_fields(None)
        return [f"{name}\t{flag | FLAG_UNMAPPED}\t{rname}\t{pos}\t0\t*\t{rnext}\t{pnext}\t{tlen}\t{seq}\t{qual}"
                f"{tags}\n"]
    counts["mapped"] += 1
    counts["supplementary"] += len(pieces) - 1
    length = len(seq)
    lines = []
    for number, hit in enumerate(pieces):
        record_flag = flag | (FLAG_REVERSE if hit.rev else 0)
        if number == 0:
            cigar = _cigar(hit, length, "S")
            s, q = seq, qual
        else:
            record_flag = (record_flag & ~FLAG_PROPER) | FLAG_SUPPLEMENTARY
            cigar = _cigar(hit, length, "H")
            s, q = seq[hit.q_st:hit.q_en], qual[hit.q_st:hit.q_en] if qual != "*" else "*"
        if hit.rev:
            s, q = _revcomp(s), q[::-1] if q != "*" else "*"
        _, _, rnext, pnext, tlen = mate_fields(hit)
        lines.append(f"{name}\t{record_flag}\t{hit.ctg}\t{hit.r_st + 1}\t{hit.mapq}\t{cigar}\t{rnext}\t{pnext}\t"
                     f"{tlen}\t{s}\t{q}\tNM:i:{hit.nm}{tags}{_sa_tag(pieces, hit, length)}\n")
    return lines


def _single_records(read: _Read, hits: list[_Hit], rg_id: str, counts: Counter[str]) -> list[str]:
    counts["reads"] += 1
    return _records(read, _pieces(hits, 1), 0, lambda _hit: ("*", 0, "*", 0, 0), f"\tRG:Z:{rg_id}", counts)


def _pair_records(read1: _Read, read2: _Read, hits: list[_Hit], rg_id: str, counts: Counter[str]) -> list[str]:
    counts["reads"] += 2
    counts["pairs"] += 1
    counts["paired"] += 2
    pieces1, pieces2, proper = _pair_primaries(_pieces(hits, 1), _pieces(hits, 2), len(read1[1]) + len(read2[1]))
    pieces = (pieces1, pieces2)
    primary = (pieces1[0] if pieces1 else None, pieces2[0] if pieces2 else None)
    counts["properly_paired"] += 2 * proper
    lines = []
    for index, read in enumerate((read1, read2)):
        mate = primary[1 - index]
        flag = FLAG_PAIRED | (FLAG_READ1 if index == 0 else FLAG_READ2)
        if proper:
            flag |= FLAG_PROPER
        if mate is None:
            flag |= FLAG_MATE_UNMAPPED
        elif mate.rev:
            flag |= FLAG_MATE_REVERSE
        tags = f"\tRG:Z:{rg_id}"
        if mate is not None:
            mate_length = len((read1, read2)[1 - index][1])
            tags += f"\tMC:Z:{_cigar(mate, mate_length, 'S')}"
        lines += _records(read, pieces[index], flag, _mate_fields_for(mate), tags, counts)
    return lines


def _mate_fields_for(mate: _Hit | None) -> Callable[[_Hit | None], tuple[str, int, str, int, int]]:
    """RNAME/POS for an unmapped read and RNEXT/PNEXT/TLEN for any record of it, as minimap2 writes them."""

    def fields(hit: _Hit | None) -> tuple[str, int, str, int, int]:
        if hit is None:  # unmapped: placed at its mate, if the mate is mapped
            if mate is None:
                return "*", 0, "*", 0, 0
            return mate.ctg, mate.r_st + 1, "=", mate.r_st + 1, 0
        if mate is None:
            return hit.ctg, hit.r_st + 1, "=", hit.r_st + 1, 0
        if hit.ctg != mate.ctg:
            return hit.ctg, hit.r_st + 1, mate.ctg, mate.r_st + 1, 0
        tlen = _tlen(hit.rev, hit.r_st, hit.r_en, mate.rev, mate.r_st, mate.r_en)
        return hit.ctg, hit.r_st + 1, "=", mate.r_st + 1, tlen

    return fields
