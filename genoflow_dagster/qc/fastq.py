"""FASTQ metrics: `seqkit stats -a` numbers plus FastQC-style module data, in one streaming pass.

How it stays fast without a per-read Python loop: a plain file is scanned in
place through a sliding read-only map, a gzip stream is decompressed in blocks
of a few MB into one reused buffer, and a C loop (`fastq_kernel.scan_qc`) walks
the whole 4-line records and adds every per-base and per-read counter in place.
Memory stays flat: the counters are bounded by the longest read (positions past
`POSITION_CAP` are pooled into the last bin) and by 256 symbols, whatever the
file size; duplication tracks 100,000 distinct sequences at most (about 10 MB).

Definitions follow `seqkit stats -a` (checked against seqkit 2.3):
- `gc_percent`: G+C (either case) over *all* bases, N and IUPAC codes included
  in the denominator; `S` is not counted as G/C.
- `q20_percent`/`q30_percent`: bases with Phred >= 20 / >= 30 over all bases.
- `mean_length`: total bases / reads (seqkit prints it to 1 decimal).
- `mean_quality`: arithmetic mean Phred over all bases (seqkit >= 2.6 `AvgQual`
  is the same sum over all bases; 2.3 does not print it).
- `n_percent`: N (either case) over all bases.

FASTQ wrapped over several lines (legal, rare), and anything else that is not
plain 4-line records, is handed from that record on to a simple line-oriented
parser with the same counters (numpy per batch of reads).

The module data are FastQC's own numbers (0.11.9, default options, grouping on;
tests/test_qc_fastqc_equivalence.py runs FastQC and compares every table), by
FastQC's rules, on reads upper-cased as FastQC reads them:
- base groups (`base_groups`): positions alone up to 75 bp, else 1-9 alone and
  equal groups (2, 5, 10, 20, 50, ... wide) fewer than 75 in all, the first
  widened to start at 10. A group's quality mean / median / quartiles / 10th and
  90th percentiles are the averages of its positions' own statistics, the
  percentiles only over positions with more than 100 bases (none: None, FastQC's
  NaN); a position's percentile k is the first Phred whose running count reaches
  bases * k // 100.
- base content: A/C/G/T % of A+C+G+T per group (U counts as none of them); N %
  of all bases per group.
- per-sequence GC: reads cut to whole hundreds past 100 bp (thousands past
  1,000), G+C over all bytes of what is left, spread by FastQC's GCModel, so the
  table does not sum to the number of reads; empty reads are left out.
- length distribution: `length_distribution` per exact length, and
  `length_distribution_groups` FastQC's binned table.
- duplication and overrepresented sequences: reads over 75 bp cut to 50; the
  first 100,000 distinct sequences are tracked and counted to the end of the
  file (in C: `fastq_kernel.dup_update`); the deduplicated % corrects each
  duplication level for the sequences tracking missed, as FastQC does
  (`deduplicated_percent`); every tracked sequence above 0.1% of all reads is
  overrepresented, however few reads there are.
- adapter content: % of reads with the adapter at or before each position, over
  positions 1 .. longest read - 11, averaged per base group.

Known differences, by design: positions past POSITION_CAP (10,000) are pooled,
so reads longer than 10 kb get other groups; the quality offset is 33 unless
said otherwise, where FastQC guesses it from the lowest quality byte
(`quality_offset=None` guesses too); `possible_source` names sources from a
short list of its own; there is no per-tile quality module; FastQC warns on
adapter content when no read is longer than 12 bp, which is not graded here.
Newer FastQC (0.12 and its current source) differs from 0.11.9: poly-A and
poly-G adapters instead of SOLiD (`ADAPTERS` has all seven), every read over
50 bp cut to 50 for duplication, trailing all-zero adapter groups dropped.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import math
import mmap
import operator
import os
import stat
from array import array
from collections import Counter
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from genoflow_dagster.progress import ProgressCallback
from genoflow_dagster.qc import fastq_kernel as kernel
from genoflow_dagster.qc.fastq_kernel import (
    ADAPTER_K,
    BASE_CLASS,
    DRAIN,
    GROW,
    IRREGULAR,
    adapter_motifs,
    dup_unseen,
    dup_update,
    scan_basic,
    scan_qc,
)

if TYPE_CHECKING:
    import numpy as np
    from _typeshed import WriteableBuffer
    from isal import isal_zlib

_GzipReader: type[isal_zlib._GzipReader] | None
try:
    from isal.isal_zlib import _GzipReader  # what isal's IGzipFile reads through, minus its Python layers
except ImportError:  # pragma: no cover
    _GzipReader = None

# numpy is imported by the line parser only: the compiled path, counters (array.array) and the
# summary below do without it, which saves its import (about 0.1 s) on every run.

BLOCK_BYTES = 4 * 1024 * 1024
MAP_BYTES = 8 * 1024 * 1024  # plain files are scanned in place, through read-only maps of this many bytes
GZIP_READ_BYTES = 512 * 1024
POSITION_CAP = 10_000  # per-position counters stop growing here; longer tails are pooled in the last bin
DUP_UNIQUE = 100_000  # duplication / overrepresentation track the first 100,000 distinct sequences, counted
# over the whole file (FastQC's OBSERVATION_CUTOFF)
DUP_SLOTS = 1 << 18  # their open-addressing index (uint32), under 40% full
DUP_BATCH = 8192  # reads handed from scan_qc to dup_update at a time
DUP_TRUNCATE_OVER = 75  # ... and, as FastQC 0.11, truncate reads longer than 75 bp to 50 bp for that
DUP_TRUNCATE_TO = 50  # (newer FastQC truncates every read longer than 50 bp)
DUP_STRIDE = DUP_TRUNCATE_OVER + 1  # bytes per tracked sequence in the arena: its length, then the bases
OVERREPRESENTED_MIN_PERCENT = 0.1  # FastQC lists sequences above its warn limit, which is this

# FastQC's adapter lists (Configuration/adapter_list.txt of 0.11 and 0.12, together): the first
# 12 bp of each adapter. 0.11 has the SOLiD adapter, 0.12 poly-A and poly-G instead.
ADAPTERS: dict[str, bytes] = {
    "Illumina Universal Adapter": b"AGATCGGAAGAG",
    "Illumina Small RNA 3' Adapter": b"TGGAATTCTCGG",
    "Illumina Small RNA 5' Adapter": b"GATCGTCGGACT",
    "Nextera Transposase Sequence": b"CTGTCTCTTATA",
    "SOLID Small RNA Adapter": b"CGCCTTGGCCGT",
    "PolyA": b"AAAAAAAAAAAA",
    "PolyG": b"GGGGGGGGGGGG",
}

_ADAPTER_MOTIFS = adapter_motifs(list(ADAPTERS.values()))
GC_DIM = 512  # reads whose GC length (`gc_length`) is below this keep their (length, GC) pair in a dense table
_OVERFLOW = 4096  # longer reads' pairs come back from C in batches of this many

# A few well-known contaminants, to name the likely source of an overrepresented sequence.
CONTAMINANTS: dict[str, bytes] = {
    "Illumina Universal Adapter": b"AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC",
    "Illumina Single End PCR Primer 1": b"AATGATACGGCGACCACCGAGATCTACACTCTTTCCCTACACGACGCTCTTCCGATCT",
    "Nextera Transposase Sequence": b"CTGTCTCTTATACACATCT",
    "Illumina Small RNA 3' Adapter": b"TGGAATTCTCGGGTGCCAAGG",
    "PhiX / PolyA": b"AAAAAAAAAAAAAAAAAAAA",
    "PolyG (2-colour no-signal)": b"GGGGGGGGGGGGGGGGGGGG",
}

# Symbol classes for per-position base content: A C G T N other (lower case as upper, U as T).
_NBASE = 6
_CODE_TABLE = bytes(c & 7 for c in BASE_CLASS)  # for bytes.translate, several times faster than a numpy lookup


def _codes(seq: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.frombuffer(seq.tobytes().translate(_CODE_TABLE), dtype=np.uint8)


def _zeros(n: int) -> array:
    return array("q", bytes(8 * n))


_QDIM = 256  # raw quality byte value; Phred = byte - offset


class FastqFormatError(ValueError):
    """Raised when the stream is not 4-line FASTQ and cannot be parsed by the fallback either."""


class _ByteSource(Protocol):
    """What the scanners read FASTQ bytes from: the raw reader of a plain file (`_HashingReader`,
    `_MappedReader`), or a gzip reader over it (isal's `_GzipReader` or `IGzipFile`, `gzip.GzipFile`)."""

    def read(self, size: int, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class _HashingReader:
    """A read-only file object that feeds every byte it returns into a SHA-256, so the
    checksum of the stored (possibly compressed) bytes comes out of the same pass."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def readinto(self, b: WriteableBuffer) -> int:
        n = self._raw.readinto(b) or 0  # straight into the caller's buffer: no intermediate bytes
        if n:
            with memoryview(b) as view:
                self.sha.update(view[:n])
            self.size += n
        return n

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _MappedReader:
    """A regular file read through sequential read-only maps of MAP_BYTES (no copy into a
    buffer for plain FASTQ, which is scanned in place), each byte fed once, in order, to an
    optional SHA-256. Only one map is held at a time, so resident memory stays flat."""

    def __init__(self, raw: io.BufferedReader, *, hashed: bool) -> None:
        self._raw = raw
        self._fd = raw.fileno()
        self.total = os.fstat(self._fd).st_size
        self.sha = hashlib.sha256() if hashed else None
        self.size = 0  # bytes mapped (and hashed) so far, from the start
        self.pos = 0  # where readinto goes on
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._base = 0

    def window(self, offset: int, length: int) -> tuple[memoryview, int]:
        """A view of the file from `offset` (rounded down to a page) on, `length` bytes or to the
        end, and the file offset it starts at. Valid until the next call."""
        self.release()
        base = offset - offset % mmap.ALLOCATIONGRANULARITY
        length = min(self.total - base, length)
        self._map = mmap.mmap(self._fd, length, access=mmap.ACCESS_READ, offset=base)
        self._view = memoryview(self._map)
        self._base = base
        if base + length > self.size:
            if self.sha is not None:
                self.sha.update(self._view[self.size - base:])
            self.size = base + length
        return self._view, base

    def release(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._map is not None:
            self._map.close()
            self._map = None

    def readinto(self, b: WriteableBuffer) -> int:
        if self.pos >= self.total:
            return 0
        view = self._view
        if view is None or not self._base <= self.pos < self._base + len(view):
            view, _ = self.window(self.pos, MAP_BYTES)
        at = self.pos - self._base
        with memoryview(b) as out:
            n = min(len(out), len(view) - at)
            out[:n] = view[at:at + n]
        self.pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        out = bytearray(n if n >= 0 else max(self.total - self.pos, 0))
        got = self.readinto(out) if out else 0
        return bytes(out[:got])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.release()
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def drain(self) -> None:
        """Hash the rest of the file."""
        while self.size < self.total:
            self.window(self.size, MAP_BYTES)
        self.release()


def _open(path: str | Path, *, hashed: bool) -> tuple[_HashingReader | _MappedReader, _ByteSource, bool]:
    """(the raw reader, which counts and hashes the stored bytes; the decompressed stream; gzip?)"""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through the reader
    try:
        head = raw.read(2)
        raw.seek(0)
        reader: _HashingReader | _MappedReader
        if stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            reader = _MappedReader(raw, hashed=hashed)
        else:
            reader = _HashingReader(raw)
    except BaseException:
        raw.close()
        raise
    gz = head == b"\x1f\x8b"
    if not gz:
        return reader, reader, False
    if _GzipReader is not None:
        try:
            # isal's stub asks for a BinaryIO; the reader needs read and readinto (and calls only readinto)
            return reader, _GzipReader(reader, GZIP_READ_BYTES), True  # type: ignore[arg-type]
        except TypeError:  # pragma: no cover - a private isal API: its public wrapper is the fallback
            from isal import igzip

            return reader, igzip.IGzipFile(fileobj=reader, mode="rb"), True
    import gzip

    # typeshed asks the file object for seek() too; reading forward, GzipFile never calls it
    return reader, gzip.GzipFile(fileobj=reader, mode="rb"), True  # type: ignore[call-overload]


class _Accumulator:
    """Bounded counters shared by the compiled path and the line parser.

    The per-position counters have `capacity` rows (grown by doubling, up to
    POSITION_CAP); `npos` = min(longest read, POSITION_CAP) is how many of them
    the modules report.
    """

    def __init__(self, quality_offset: int | None) -> None:
        self.offset = quality_offset  # None: FastQC's guess, at the end
        self.reads = 0
        self.npos = 0
        # int64 counters, row-major: pos_qual[position * 256 + byte], pos_base[position * 6 + class],
        # adapter_hist[adapter * capacity + first-hit start]
        self.capacity = 0
        self.pos_qual = _zeros(0)
        self.pos_base = _zeros(0)
        self.adapter_hist = _zeros(0)
        self._reserve(1)
        self.lengths = _zeros(256)
        self.seq_mean_q = _zeros(_QDIM)
        # Reads per (GC length, G/C count): spread over percent bins at the end (see gc_histogram).
        # Short reads' pairs in a dense table filled in C, the others in the Counter.
        self.gc_dim = GC_DIM
        self.gc_table = _zeros(GC_DIM * GC_DIM)
        self.seq_gc_pairs: Counter[tuple[int, int]] = Counter()
        self._overflow = _zeros(2 * _OVERFLOW)
        # FastQC's duplicate counting, in C (`kernel.dup_update`): (start, length) of each read
        # counted come back from scan_qc in batches; the tracked sequences live in the arena.
        self._dup = _zeros(2 * DUP_BATCH)
        self.dup_slots = _zeros(DUP_SLOTS)
        self.dup_counts = _zeros(DUP_UNIQUE)
        self.dup_arena = bytearray(DUP_UNIQUE * DUP_STRIDE)
        self.dup_state = _zeros(4)  # tracked, frozen, reads, reads at the unique limit

    def _reserve(self, length: int) -> None:
        """Room for a read of `length` bases in the per-position counters."""
        rows = min(length, POSITION_CAP)
        if rows > self.capacity:
            old = self.capacity
            rows = min(max(rows, 2 * old), POSITION_CAP)
            q = _zeros(rows * _QDIM)
            q[: old * _QDIM] = self.pos_qual
            b = _zeros(rows * _NBASE)
            b[: old * _NBASE] = self.pos_base
            a = _zeros(len(ADAPTERS) * rows)
            for row in range(len(ADAPTERS)):
                a[row * rows: row * rows + old] = self.adapter_hist[row * old: (row + 1) * old]
            self.pos_qual, self.pos_base, self.adapter_hist, self.capacity = q, b, a, rows

    def _grow(self, npos: int) -> None:
        self._reserve(npos)
        self.npos = max(self.npos, min(npos, POSITION_CAP))

    def _reserve_lengths(self, length: int) -> None:
        if length >= len(self.lengths):
            grown = _zeros(max(length + 1, 2 * len(self.lengths)))
            grown[: len(self.lengths)] = self.lengths
            self.lengths = grown

    def scan(self, buf: Any, end: int, start: int = 0) -> tuple[int, bool]:
        """Count the whole 4-line records of buf[start:end] in C. Returns where counting stopped
        and whether the record there is irregular (else it is incomplete, or end was reached)."""
        while True:
            start, records, status, need, n_over, n_dup, longest = scan_qc(
                buf, start, end, self.pos_qual, self.pos_base, self.adapter_hist, self.seq_mean_q, self.lengths,
                self.gc_table, self._overflow, self._dup, POSITION_CAP, _ADAPTER_MOTIFS, BASE_CLASS, kernel.VECTOR)
            if records:
                self.reads += records
                self.npos = max(self.npos, min(max(longest, 1), POSITION_CAP))
            over = self._overflow
            for i in range(0, 2 * n_over, 2):
                self.seq_gc_pairs[over[i], over[i + 1]] += 1
            if n_dup:
                self._count_duplicates(buf, self._dup, n_dup)
            if status == GROW:
                self._reserve(need)
                self._reserve_lengths(need)
            elif status != DRAIN:
                return start, status == IRREGULAR

    def gc_pairs(self) -> dict[tuple[int, int], int]:
        """Reads per (GC length, G/C count) (`gc_length`), in key order."""
        pairs = Counter(self.seq_gc_pairs)
        dim, table = self.gc_dim, self.gc_table
        for n in range(1, min(dim, len(self.lengths))):  # a read's GC length is at most its length
            row = table[n * dim: n * dim + n + 1]
            if any(row):
                for g, count in enumerate(row):
                    if count:
                        pairs[n, g] += count
        return dict(sorted(pairs.items()))

    def views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """numpy views of the counters, for the line parser: pos_qual, pos_base (npos rows),
        adapter_hist (adapters x npos), lengths, seq_mean_q."""
        import numpy as np

        def view(a: array) -> np.ndarray:
            return np.frombuffer(a, dtype=np.int64) if len(a) else np.zeros(0, dtype=np.int64)

        npos = self.npos
        return (view(self.pos_qual).reshape(self.capacity, _QDIM)[:npos],
                view(self.pos_base).reshape(self.capacity, _NBASE)[:npos],
                view(self.adapter_hist).reshape(len(ADAPTERS), self.capacity)[:, :npos],
                view(self.lengths), view(self.seq_mean_q))

    def _add_gc_pairs(self, gc_len: np.ndarray, gc: np.ndarray) -> None:
        import numpy as np

        has = gc_len > 0
        keys, counts = np.unique(gc_len[has].astype(np.int64) * 1_000_003 + gc[has], return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            self.seq_gc_pairs[divmod(key, 1_000_003)] += count

    def _count_duplicates(self, buf: Any, pairs: Any, n: int) -> None:
        """FastQC's duplicate counting for the n reads at (start, length) `pairs` of buf."""
        dup_update(buf, pairs, n, self.dup_slots, self.dup_counts, self.dup_arena, self.dup_state,
                   DUP_TRUNCATE_OVER, DUP_TRUNCATE_TO)

    def duplicates(self, min_count: float) -> tuple[list[int], dict[bytes, int], int, int]:
        """The counts of the tracked sequences; those seen more than `min_count` times (upper
        case, as cut) with their counts; all reads counted; and the read count when the tracked
        set last changed (FastQC's countAtUniqueLimit)."""
        arena, stride = self.dup_arena, DUP_STRIDE
        counts = self.dup_counts[: self.dup_state[0]].tolist()
        frequent = {bytes(arena[i * stride + 1: i * stride + 1 + arena[i * stride]]): c
                    for i, c in enumerate(counts) if c > min_count}
        return counts, frequent, self.dup_state[2], self.dup_state[3]

    def add_batch(self, seq: np.ndarray, qual: np.ndarray, lengths: np.ndarray,
                  seq_lines: list[bytes] | None = None) -> None:
        """Count one batch: `seq`/`qual` are the concatenated bytes of reads of `lengths`."""
        import numpy as np

        n = len(lengths)
        if n == 0:
            return
        self.reads += n
        maxlen = int(lengths.max())
        self._reserve_lengths(maxlen)
        total = int(lengths.sum())
        if total:
            self._grow(maxlen)
        npos = self.npos
        pos_qual, pos_base, _, all_lengths, seq_mean_q = self.views()
        all_lengths += np.bincount(lengths, minlength=len(all_lengths))
        offsets = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        self._count_duplicates(seq, np.ascontiguousarray(np.stack([offsets, lengths], axis=1), dtype=np.int64), n)
        if total == 0:
            return
        if int(lengths.min()) == maxlen and maxlen <= POSITION_CAP:
            # Same-length reads (the usual Illumina case): 2-D views, no per-base position array.
            qual2 = qual.reshape(n, maxlen)
            col = np.arange(maxlen, dtype=np.int32)
            pos_qual[:maxlen] += np.bincount(
                (qual2 + col * _QDIM).ravel(), minlength=maxlen * _QDIM).reshape(maxlen, _QDIM)
            codes2 = _codes(seq).reshape(n, maxlen)
            pos_base[:maxlen] += np.bincount(
                (codes2 + col * _NBASE).ravel(), minlength=maxlen * _NBASE).reshape(maxlen, _NBASE)
            qsum = qual2.sum(axis=1, dtype=np.int64)
            gc_len = np.full(n, gc_length(maxlen), dtype=np.int64)
            gc = np.count_nonzero((codes2[:, :gc_len[0]] == 1) | (codes2[:, :gc_len[0]] == 2), axis=1)
            lens = lengths
        else:
            pos = np.arange(total, dtype=np.int64) - np.repeat(offsets, lengths)
            all_gc_len = np.where(lengths > 1000, lengths // 1000 * 1000,
                                  np.where(lengths > 100, lengths // 100 * 100, lengths))
            in_gc = pos < np.repeat(all_gc_len, lengths)
            if maxlen > POSITION_CAP:
                np.minimum(pos, POSITION_CAP - 1, out=pos)
            codes = _codes(seq)
            pos_base += np.bincount(pos * _NBASE + codes, minlength=npos * _NBASE).reshape(npos, _NBASE)
            pos_qual += np.bincount(pos * _QDIM + qual, minlength=npos * _QDIM).reshape(npos, _QDIM)
            nonzero = lengths > 0
            starts = offsets[nonzero]
            lens = lengths[nonzero]
            qsum = np.add.reduceat(qual, starts, dtype=np.int64)
            gc = np.add.reduceat((((codes == 1) | (codes == 2)) & in_gc).view(np.uint8), starts, dtype=np.int64)
            gc_len = all_gc_len[nonzero]
        # FastQC bins a read by its integer mean quality (truncated).
        mean_q = qsum // lens
        seq_mean_q += np.bincount(np.clip(mean_q, 0, _QDIM - 1), minlength=_QDIM)[:_QDIM]
        self._add_gc_pairs(gc_len, gc)

    def add_adapter_hits(self, name: str, positions: np.ndarray) -> None:
        """`positions`: 0-based start of the first hit of an adapter in each read that has one."""
        import numpy as np

        if len(positions) == 0:
            return
        row = list(ADAPTERS).index(name)
        positions = np.minimum(positions, self.npos - 1)  # hits start inside reads, so npos >= 1 here
        self.views()[2][row] += np.bincount(positions, minlength=self.npos)


def _count_adapters(acc: _Accumulator | _BasicAccumulator, seq: np.ndarray, lengths: np.ndarray) -> None:
    """First hit of each adapter per read, by C-speed substring search over the concatenated
    sequences (upper-cased, as FastQC reads them); a hit that runs across two reads is discarded
    and the search resumes in the read where it ended (so that read's own hits are not missed)."""
    import numpy as np

    data = seq.tobytes().upper()
    ends = np.cumsum(lengths)
    for name, motif in ADAPTERS.items():
        k = len(motif)
        i = data.find(motif)
        if i < 0:
            continue
        hits: list[int] = []
        while i >= 0:
            read = int(np.searchsorted(ends, i, side="right"))
            end = int(ends[read])
            if i + k <= end:
                hits.append(i - (end - int(lengths[read])))
                i = data.find(motif, end)
            else:
                i = data.find(motif, end)
                # a straddling hit: the next read is searched from its own start
        acc.add_adapter_hits(name, np.asarray(hits, dtype=np.int64))


def _fallback(acc: _Accumulator | _BasicAccumulator, stream: _ByteSource, head: bytes,
              report: Callable[[], None] | None = None) -> None:
    """Line-oriented parser for multi-line FASTQ: sequence lines run until a '+' line, and
    quality lines until they are as long as the sequence (so '@' may start a quality line)."""
    import numpy as np

    lines = io.BufferedReader(_Chain(head, stream), buffer_size=BLOCK_BYTES)
    seqs: list[bytes] = []
    quals: list[bytes] = []

    def flush() -> None:
        if not seqs:
            return
        lengths = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=len(seqs))
        seq = np.frombuffer(b"".join(seqs), dtype=np.uint8)
        qual = np.frombuffer(b"".join(quals), dtype=np.uint8)
        acc.add_batch(seq, qual, lengths, seq_lines=list(seqs))
        _count_adapters(acc, seq, lengths)
        seqs.clear()
        quals.clear()
        if report is not None:
            report()

    line_no = 0
    while True:
        header = lines.readline()
        line_no += 1
        if not header:
            break
        header = header.rstrip(b"\r\n")
        if not header:
            continue
        if not header.startswith(b"@"):
            raise FastqFormatError(f"line {line_no}: expected '@' header")
        parts: list[bytes] = []
        while True:
            line = lines.readline()
            line_no += 1
            if not line:
                raise FastqFormatError(f"line {line_no}: truncated record")
            if line.startswith(b"+"):
                break
            parts.append(line.rstrip(b"\r\n"))
        seq = b"".join(parts)
        qparts: list[bytes] = []
        qlen = 0
        while qlen < len(seq):
            line = lines.readline()
            line_no += 1
            if not line:
                raise FastqFormatError(f"line {line_no}: truncated quality")
            line = line.rstrip(b"\r\n")
            qparts.append(line)
            qlen += len(line)
        qual = b"".join(qparts)
        if len(qual) != len(seq):
            raise FastqFormatError(f"line {line_no}: quality length differs from sequence length")
        seqs.append(seq)
        quals.append(qual)
        if len(seqs) >= 50_000:
            flush()
    flush()


class _Chain(io.RawIOBase):
    """A raw stream that returns `head` first, then the rest of `stream`."""

    def __init__(self, head: bytes, stream: _ByteSource) -> None:
        super().__init__()
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        with memoryview(buffer) as b:
            if self._head:
                n = min(len(b), len(self._head))
                b[:n] = self._head[:n]
                self._head = self._head[n:]
                return n
            data = self._stream.read(len(b))
            b[: len(data)] = data
            return len(data)


def _scan(acc: _Accumulator | _BasicAccumulator, stream: _ByteSource,
          report: Callable[[], None] | None = None) -> None:
    """Feed `acc` blocks read into one reused buffer (no per-block copies).

    Each read fills the buffer after the previous block's incomplete record;
    `acc.scan` counts the whole records and the rest moves to the front. A record
    longer than the buffer grows it. From the first record that is not plain
    4-line FASTQ (wrapped lines, blank lines, an error) the line parser reads on.
    """
    buffer = bytearray(BLOCK_BYTES)
    filled = 0
    while True:
        if filled == len(buffer):
            buffer.extend(bytes(len(buffer)))
        with memoryview(buffer) as view:
            n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
        consumed, irregular = acc.scan(buffer, filled)
        if report is not None:
            report()
        if irregular and buffer[consumed:filled].strip():  # blank lines may still be the file's end
            _fallback(acc, stream, bytes(buffer[consumed:filled]), report)
            return
        buffer[: filled - consumed] = buffer[consumed:filled]
        filled -= consumed
    _scan_tail(acc, bytes(buffer[:filled]), stream)


def _scan_mapped(acc: _Accumulator | _BasicAccumulator, reader: _MappedReader,
                 report: Callable[[], None] | None = None) -> None:
    """`_scan` for a plain regular file: records are counted where they lie in the file's maps."""
    pos = 0
    length = MAP_BYTES
    while pos < reader.total:
        view, base = reader.window(pos, length)
        end = len(view)
        consumed, irregular = acc.scan(view, end, pos - base)
        reader.pos = base + consumed
        if report is not None:
            report()
        irregular = irregular and bool(view[consumed:end].tobytes().strip())  # blank lines may end the file
        if irregular or base + end == reader.total:
            rest = bytes(view[consumed:end])
            reader.pos = base + end
            reader.release()
            if irregular:
                _fallback(acc, reader, rest, report)
            else:
                _scan_tail(acc, rest, reader)
            return
        if base + consumed == pos:
            length *= 2  # a record longer than the map
        pos = base + consumed
    reader.release()


def _scan_tail(acc: _Accumulator | _BasicAccumulator, data: bytes, stream: _ByteSource) -> None:
    """The bytes after the last whole record: nothing but blank lines, or a final record
    without its line break; anything else is the line parser's to judge."""
    if not data.strip():
        return
    if not data.endswith(b"\n"):
        data += b"\n"
    consumed, irregular = acc.scan(data, len(data))
    if irregular:
        _fallback(acc, stream, data[consumed:])
    elif data[consumed:].strip():
        raise FastqFormatError("truncated final record")


def _scan_file(acc: _Accumulator | _BasicAccumulator, reader: _HashingReader | _MappedReader, stream: _ByteSource,
               gz: bool, progress: ProgressCallback | None = None) -> None:
    report = None
    if progress is not None:
        def report() -> None:  # the position in the file as stored: the compressed offset of a gzip file
            progress(reader.pos if isinstance(reader, _MappedReader) else reader.size, acc.reads)
    if not gz and isinstance(reader, _MappedReader):
        _scan_mapped(acc, reader, report)
    else:
        _scan(acc, stream, report)


def gc_length(length: int) -> int:
    """How much of a read FastQC's per-sequence GC module looks at: all of it up to 100 bases,
    whole hundreds up to 1,000, whole thousands beyond (fewer GC models to keep)."""
    if length > 1000:
        return length // 1000 * 1000
    if length > 100:
        return length // 100 * 100
    return length


def _java_round(x: float) -> int:
    """Java's Math.round: the nearest integer, halves towards positive infinity."""
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r


def _gc_model(n: int) -> Callable[[int], list[tuple[int, float]]]:
    """FastQC's GCModel for reads of `n` bases: a G/C count g claims the percent bins from
    round(100 (g - 0.5) / n) to round(100 (g + 0.5) / n) (counts clipped to [0, n]) and adds
    1 / (how many counts claim that bin) to each. A read thus adds more or less than 1 in all,
    so the histogram does not sum to the number of reads. Both bounds grow with g, so how many
    counts claim a bin is found by bisection (O(log n) per bin, not O(n) per length)."""

    def low(g: int) -> int:
        return _java_round(min(max(g - 0.5, 0.0), n) * 100 / n)

    def high(g: int) -> int:
        return _java_round(min(max(g + 0.5, 0.0), n) * 100 / n)

    def at_most(bound: Callable[[int], int], p: int) -> int:  # how many g in 0..n have bound(g) <= p
        a, b = 0, n + 1
        while a < b:
            mid = (a + b) // 2
            if bound(mid) <= p:
                a = mid + 1
            else:
                b = mid
        return a

    claims = [at_most(low, p) - at_most(high, p - 1) for p in range(101)]
    return lambda g: [(p, 1.0 / claims[p]) for p in range(low(g), high(g) + 1)]


def gc_histogram(pairs: dict[tuple[int, int], int]) -> list[float]:
    """FastQC's per-sequence GC table: 101 one-percent bins, from reads' (GC length, G/C count)
    pairs (`gc_length`; empty reads are left out) spread over bins by `_gc_model`. The
    spreading is why there is no rounding comb (150 bp reads are cut to 100 bp first)."""
    hist = [0.0] * 101
    models: dict[int, Callable[[int], list[tuple[int, float]]]] = {}
    for (n, g), count in pairs.items():
        model = models.get(n)
        if model is None:
            model = models[n] = _gc_model(n)
        for p, weight in model(g):
            hist[p] += count * weight
    return hist


def base_groups(length: int) -> list[tuple[int, int]]:
    """FastQC's (0.11/0.12) linear base groups, 1-based and inclusive, for reads up to `length`:
    every position alone up to 75 bp; beyond, positions 1-9 alone and then groups of the first
    of 2, 5, 10, 20, 50, 100, ... for which FastQC's estimate, 9 + ceil((length - 9) / width),
    is below 75; the first group is widened to start at 10 (10-49 then 50-99 for a width of 50),
    which can make one group more than the estimate."""
    if length <= 75:
        return [(i, i) for i in range(1, length + 1)]
    width, multiplier = 0, 1
    while not width:
        for base in (2, 5, 10):
            candidate = base * multiplier
            if 9 + -(-(length - 9) // candidate) < 75:
                width = candidate
                break
        multiplier *= 10
    groups = []
    start = 1
    while start <= length:
        if start < 10:
            end = start
        elif start == 10 and width > 10:
            end = width - 1
        else:
            end = start + width - 1
        groups.append((start, min(end, length)))
        start = end + 1
    return groups


def length_groups(lengths: dict[int, int]) -> list[dict[str, Any]]:
    """FastQC's sequence length distribution table: read lengths (plus one empty length either
    side) in at most ~50 bins of 1, 2, 5, 10, 20, 50, ... bases; the padding bins at either end
    are left out when they are empty, as in fastqc_data.txt."""
    present = sorted(n for n, count in lengths.items() if count)
    low = present[0] if present else 0
    high = (present[-1] if present else 0) + 1
    if low > 0:
        low -= 1
    width, base = 0, 1
    while not width:
        for division in (1, 2, 5):
            if (high - low) // (base * division) <= 50:
                width = base * division
                break
        base *= 10
    first = low // width * width
    starts = list(range(first, high + 1, width))
    rows = []
    for i, start in enumerate(starts):
        end = min(start + width - 1, high)
        count = sum(lengths.get(n, 0) for n in range(start, end + 1))
        if count == 0 and i in (0, len(starts) - 1):
            continue
        rows.append({"length": str(start) if width == 1 else f"{start}-{end}", "start": start, "end": end,
                     "count": count})
    return rows


def _position_quality(row: list[int], total: int, off: int) -> tuple[float | None, list[float] | None]:
    """One position's mean Phred and its 50/25/75/10/90th percentiles as FastQC's QualityCount
    has them: the mean over bytes at or above the offset; percentile k is the first Phred where
    the running count (from the offset up) reaches total * k // 100 (integer division), and is
    only worked out at positions with more than 100 bases. `row` starts at byte `off`."""
    cum = list(accumulate(row))
    above = cum[-1] if cum else 0
    mean = sum(map(operator.mul, row, range(len(row)))) / above if above else None
    if total <= 100:
        return mean, None
    out = []
    for k in (50, 25, 75, 10, 90):
        i = bisect.bisect_left(cum, total * k // 100)
        out.append(float(i) if i < len(cum) else -1.0)
    return mean, out


def _group_mean(values: list[float | None]) -> float | None:
    """FastQC averages a group's per-position statistics over the positions that have one."""
    have = [v for v in values if v is not None]
    if not have:
        return None
    total = 0.0
    for v in have:
        total += v
    return total / len(have)


def _round(x: float, nd: int = 4) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), nd)


def _column_sums(flat: array, width: int, first: int, last: int) -> list[int]:
    """Per-column sums of rows first..last-1 of a row-major int64 table `width` wide."""
    if last - first == 1:
        return flat[first * width: last * width].tolist()
    block = flat[first * width: last * width]
    return [sum(block[k::width]) for k in range(width)]


def _finish(acc: _Accumulator, sha256: str, size_bytes: int) -> dict[str, Any]:
    reads = acc.reads
    lengths = acc.lengths
    present = [n for n, count in enumerate(lengths) if count]
    total_bases = sum(n * lengths[n] for n in present)
    npos = acc.npos
    qual_hist = _column_sums(acc.pos_qual, _QDIM, 0, npos)
    off = acc.offset
    if off is None:  # FastQC 0.11's guess: Illumina 1.3/1.5 (64) when no quality byte is below '@'
        off = 64 if min((k for k in range(_QDIM) if qual_hist[k]), default=33) >= 64 else 33
    phred = [k - off for k in range(_QDIM)]
    base_tot = _column_sums(acc.pos_base, _NBASE, 0, npos)
    quality_total = sum(count * p for count, p in zip(qual_hist, phred, strict=True))

    def pct(x: float) -> float:
        return round(100.0 * x / total_bases, 4) if total_bases else 0.0

    metrics: dict[str, Any] = {
        "total_reads": reads,
        "total_bases": total_bases,
        "min_length": present[0] if present else 0,
        "max_length": present[-1] if present else 0,
        "mean_length": _round(total_bases / reads) if reads else 0.0,
        "gc_percent": pct(base_tot[1] + base_tot[2]),
        "n_percent": pct(base_tot[4]),
        "mean_quality": _round(float(quality_total) / total_bases) if total_bases else None,
        "q20_percent": pct(sum(qual_hist[k] for k in range(_QDIM) if phred[k] >= 20)),
        "q30_percent": pct(sum(qual_hist[k] for k in range(_QDIM) if phred[k] >= 30)),
        "quality_offset": off,
        "sha256": sha256,
        "size_bytes": size_bytes,
    }

    # Per position first (FastQC's QualityCount), then FastQC's groups average them.
    top = max((k for k in range(_QDIM) if qual_hist[k]), default=off)
    stats = []
    for p in range(npos):
        row = acc.pos_qual[p * _QDIM: (p + 1) * _QDIM]
        total = sum(row)
        stats.append(_position_quality(row[max(off, 0): top + 1].tolist(), total, max(off, 0)) if total
                     else (None, None))
    per_pos_q: list[dict[str, Any]] = []
    per_base_content: list[dict[str, Any]] = []
    per_base_n: list[dict[str, Any]] = []
    for start, end in base_groups(npos):
        label = str(start) if start == end else f"{start}-{end}"
        group = stats[start - 1: end]
        quantiles = [_group_mean([s[1][k] if s[1] else None for s in group]) for k in range(5)]
        per_pos_q.append({
            "base": label, "start": start, "end": end, "mean": _group_mean([s[0] for s in group]),
            "median": quantiles[0], "lower_quartile": quantiles[1], "upper_quartile": quantiles[2],
            "p10": quantiles[3], "p90": quantiles[4],
        })
        bh = _column_sums(acc.pos_base, _NBASE, start - 1, end)
        acgt = sum(bh[:4])
        content = {b: (bh[i] / acgt * 100 if acgt else None) for i, b in enumerate("ACGT")}
        per_base_content.append({"base": label, "start": start, "end": end, **content})
        per_base_n.append({"base": label, "start": start, "end": end, "N": 100 * (bh[4] / sum(bh))})

    seq_q = [q for q, count in enumerate(acc.seq_mean_q) if count]
    metrics["per_position_quality"] = per_pos_q
    metrics["per_sequence_quality"] = (
        {str(q - off): acc.seq_mean_q[q] for q in range(seq_q[0], seq_q[-1] + 1)} if seq_q else {}
    )
    metrics["per_base_content"] = per_base_content
    metrics["per_sequence_gc"] = gc_histogram(acc.gc_pairs())
    metrics["per_base_n"] = per_base_n
    metrics["length_distribution"] = {str(ln): lengths[ln] for ln in present}
    metrics["length_distribution_groups"] = length_groups({ln: lengths[ln] for ln in present})

    # the sequences that may be over OVERREPRESENTED_MIN_PERCENT (the exact test is below)
    counts, frequent, counted, at_limit = acc.duplicates(acc.dup_state[2] * OVERREPRESENTED_MIN_PERCENT / 100 * 0.999)
    metrics["duplication_reads_examined"] = counted
    metrics["deduplicated_percent"] = deduplicated_percent(counts, counted, at_limit)
    metrics["duplication_percent"] = 100.0 - metrics["deduplicated_percent"]
    over: list[dict[str, Any]] = []
    for s, count in frequent.items():
        percent = count / counted * 100
        if percent > OVERREPRESENTED_MIN_PERCENT:
            over.append({"sequence": s.decode("ascii", "replace"), "count": count, "percent": percent,
                         "possible_source": _possible_source(s)})
    over.sort(key=lambda row: (-row["count"], row["sequence"]))
    metrics["overrepresented_sequences"] = over

    # FastQC: each read with an adapter counts at every position from its first hit on, over
    # positions 1 .. longest read - 11 (the last start a 12-mer has); a group holds the mean of
    # its positions' percentages.
    adapters: dict[str, list[float]] = {}
    positions: list[str] = []
    longest = present[-1] if present else 0
    if reads and longest > ADAPTER_K:
        width = longest - ADAPTER_K + 1
        groups = base_groups(width)
        positions = [str(a) if a == b else f"{a}-{b}" for a, b in groups]
        cap = acc.capacity
        for adapter_row, name in enumerate(ADAPTERS):
            hist = acc.adapter_hist[adapter_row * cap: adapter_row * cap + min(npos, width)].tolist()
            cumulative = list(accumulate(hist + [0] * (width - len(hist))))
            values = []
            for start, end in groups:
                total = 0.0
                for c in cumulative[start - 1: end]:
                    total += c * 100.0 / reads
                values.append(total / (end - start + 1))
            adapters[name] = values
    metrics["adapter_content"] = adapters
    metrics["adapter_content_positions"] = positions
    metrics["adapter_max_percent"] = max((max(v) for v in adapters.values() if v), default=0.0)
    return metrics


def _corrected_count(at_limit: int, total: int, level: int, observed: int) -> float:
    """FastQC's estimate of how many distinct sequences occur `level` times in the file, from the
    `observed` ones among the tracked: those seen after tracking stopped (at read `at_limit` of
    `total`) are missed with probability prod_{i < at_limit} (total - i - level) / (total - i),
    a product FastQC stops (as 0) once it falls below 1 - observed / (observed + 0.01)."""
    if at_limit == total or total - observed < at_limit:
        return float(observed)
    return observed / (1 - dup_unseen(at_limit, total, level, observed))


def deduplicated_percent(counts: list[int], total: int, at_limit: int) -> float:
    """FastQC's "total deduplicated percentage": distinct sequences over reads, each duplication
    level's count of distinct sequences corrected for those tracking missed (`_corrected_count`);
    100 for an empty file."""
    levels = Counter(counts)
    distinct = reads = 0.0
    for level, observed in levels.items():
        corrected = _corrected_count(at_limit, total, level, observed)
        distinct += corrected
        reads += corrected * level
    return distinct / reads * 100 if reads else 100.0


def _possible_source(seq: bytes) -> str | None:
    s = seq.upper()
    for name, contaminant in CONTAMINANTS.items():
        probe = s[:20] if len(s) >= 20 else s
        if len(probe) >= 12 and (probe in contaminant or contaminant[:20] in s):
            return name
    return None


def fastq_metrics(path: str | Path, *, quality_offset: int | None = 33,
                  progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Metrics of one FASTQ file (plain, gzip or BGZF), in one pass over its bytes.

    Returns the `qc --json` FASTQ fields (see DESIGN.md) plus FastQC module data
    (FastQC's numbers, see the module docstring): `per_position_quality` (FastQC
    base groups, each with mean, median, lower/upper quartile, p10, p90 in Phred;
    None where FastQC has NaN), `per_sequence_quality` (histogram of the truncated
    mean read quality), `per_base_content` (A/C/G/T % of ACGT), `per_sequence_gc`
    (FastQC's 101-bin GC table), `per_base_n`, `length_distribution` (per length)
    and `length_distribution_groups` (FastQC's bins), `deduplicated_percent`
    (FastQC's "total deduplicated percentage") and
    `duplication_percent` (100 minus it), `overrepresented_sequences`,
    `adapter_content` (per adapter, FastQC's % per base group, labelled by
    `adapter_content_positions`), and `sha256` of the file's bytes.

    `quality_offset` is 33 (Sanger / Illumina 1.8+, as seqkit assumes); None takes
    FastQC 0.11's guess instead (64 when no quality byte is below '@').

    `progress`, if given, is called after each block with (bytes of the stored file read, reads so far).

    Raises FastqFormatError when the content is not FASTQ, OSError on I/O failure.
    """
    reader, stream, gz = _open(path, hashed=True)
    acc = _Accumulator(quality_offset)
    try:
        _scan_file(acc, reader, stream, gz, progress)
        reader.drain()
    finally:
        reader.close()
    if progress is not None:
        progress(reader.size, acc.reads)
    assert reader.sha is not None  # opened with hashed=True
    return _finish(acc, reader.sha.hexdigest(), reader.size)


class _BasicAccumulator:
    """Whole-file quality and base histograms plus read lengths: the `seqkit stats -a` numbers only."""

    def __init__(self) -> None:
        self.reads = 0
        self.lengths = _zeros(256)
        self.qual_hist = _zeros(_QDIM)
        self.base_hist = _zeros(_NBASE)

    def scan(self, buf: Any, end: int, start: int = 0) -> tuple[int, bool]:
        """As `_Accumulator.scan`, for the basic histograms."""
        while True:
            start, records, status, need = scan_basic(buf, start, end, self.qual_hist, self.base_hist, self.lengths,
                                                      BASE_CLASS, kernel.VECTOR)
            self.reads += records
            if status != GROW:
                return start, status == IRREGULAR
            self._reserve_lengths(need)

    def _reserve_lengths(self, length: int) -> None:
        if length >= len(self.lengths):
            grown = _zeros(max(length + 1, 2 * len(self.lengths)))
            grown[: len(self.lengths)] = self.lengths
            self.lengths = grown

    def add_batch(self, seq: np.ndarray, qual: np.ndarray, lengths: np.ndarray,
                  seq_lines: list[bytes] | None = None) -> None:  # the line parser's entry (wrapped FASTQ)
        import numpy as np

        self.reads += len(lengths)
        if len(lengths):
            self._reserve_lengths(int(lengths.max()))
        view = np.frombuffer(self.lengths, dtype=np.int64)
        view += np.bincount(lengths, minlength=len(view))
        np.frombuffer(self.qual_hist, dtype=np.int64)[:] += np.bincount(qual, minlength=_QDIM)[:_QDIM]
        np.frombuffer(self.base_hist, dtype=np.int64)[:] += np.bincount(_codes(seq), minlength=_NBASE)[:_NBASE]

    def add_adapter_hits(self, name: str, positions: np.ndarray) -> None:
        """Adapters are not part of the basic statistics."""


def fastq_basic_stats(path: str | Path, *, quality_offset: int = 33) -> dict[str, Any]:
    """The summary fields of `seqkit stats -a` (and of DESIGN's FASTQ summary), nothing else: no
    per-position modules, no duplication or adapters, no checksum. The quick look at a file."""
    reader, stream, gz = _open(path, hashed=False)
    acc = _BasicAccumulator()
    try:
        _scan_file(acc, reader, stream, gz)
    finally:
        reader.close()
    lengths = acc.lengths
    present = [n for n, count in enumerate(lengths) if count]
    total = sum(n * lengths[n] for n in present)
    phred = [k - quality_offset for k in range(_QDIM)]

    def pct(x: int) -> float:
        return round(100.0 * x / total, 4) if total else 0.0

    return {
        "total_reads": acc.reads,
        "total_bases": total,
        "min_length": present[0] if present else 0,
        "max_length": present[-1] if present else 0,
        "mean_length": _round(total / acc.reads) if acc.reads else 0.0,
        "gc_percent": pct(acc.base_hist[1] + acc.base_hist[2]),
        "n_percent": pct(acc.base_hist[4]),
        "mean_quality": _round(float(sum(c * p for c, p in zip(acc.qual_hist, phred, strict=True))) / total)
        if total else None,
        "q20_percent": pct(sum(c for c, p in zip(acc.qual_hist, phred, strict=True) if p >= 20)),
        "q30_percent": pct(sum(c for c, p in zip(acc.qual_hist, phred, strict=True) if p >= 30)),
    }


def fastq_pair_metrics(r1: str | Path, r2: str | Path) -> dict[str, Any]:
    """Both mates' metrics plus whether the pair is consistent (same read count)."""
    m1 = fastq_metrics(r1)
    m2 = fastq_metrics(r2)
    return {"r1": m1, "r2": m2, "pairs": min(m1["total_reads"], m2["total_reads"]),
            "read_counts_match": m1["total_reads"] == m2["total_reads"]}
