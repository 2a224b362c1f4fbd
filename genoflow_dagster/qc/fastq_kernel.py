"""The per-base inner loop of FASTQ QC, compiled with numba.

Every FastQC-style counter is a function of (position in read, base) or
(position, quality byte), so one pass over each read's bytes fills them all:
no gathered copies of the sequences, no index arrays as large as the block.
`count_records` reads the bases and qualities in place, at offsets the caller
found with numpy (record boundaries and the structure checks stay vectorised
in `qc.fastq`), and adds into the caller's counters, which it never resizes.

Adapter search is a rolling 2-bit code of the last 12 upper-case A/C/G/T
bases compared with each adapter's code: FastQC's adapters are 12-mers, so a
match of the code is a match of the bytes. The first hit per adapter per read
is counted at its start position, as `bytes.find` would report it.

Compiled on first use and cached on disk next to this file (numba's
`cache=True`); a process that cannot write there compiles in memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Bits 0-2: A C G T N other (0-5), for per-position base content; lower case counts as upper
# case, U as T. Bit 3: an upper-case A/C/G/T, the only bases adapter matching accepts (FastQC's
# search is case-sensitive), whose 2-bit code is then bits 0-1.
BASE_CLASS = np.full(256, 5, dtype=np.uint8)
for _i, _b in enumerate("ACGTN"):
    BASE_CLASS[ord(_b)] = BASE_CLASS[ord(_b.lower())] = _i
BASE_CLASS[ord("U")] = BASE_CLASS[ord("u")] = 3
for _b in "ACGT":
    BASE_CLASS[ord(_b)] |= 8
ADAPTER_K = 12


def adapter_codes(adapters: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The rolling codes `count_records` compares against (one per 12-mer) and their 16-bit prefilter."""
    codes = np.zeros(len(adapters), dtype=np.int64)
    for a, motif in enumerate(adapters):
        if len(motif) != ADAPTER_K or any(not BASE_CLASS[c] & 8 for c in motif):
            raise ValueError(f"adapter {motif!r} is not a 12-mer of A/C/G/T")
        for c in motif:
            codes[a] = (codes[a] << 2) | int(BASE_CLASS[c] & 3)
    prefilter = np.zeros(1 << 16, dtype=np.bool_)
    prefilter[codes & 0xFFFF] = True
    return codes, prefilter


@njit(cache=True, nogil=True)
def count_records(buf, seq_starts, qual_starts, lengths, pos_qual, pos_base, seq_mean_q, acgt_out, gc_out,
                  adapter_hist, adapter_code, adapter_filter, base_class):  # pragma: no cover - compiled
    """Count reads `i` = bases `buf[seq_starts[i]:+lengths[i]]`, qualities at `qual_starts[i]`.

    Adds into pos_qual[pos, byte], pos_base[pos, class], seq_mean_q[mean quality byte
    truncated], adapter_hist[adapter, start]; writes each read's A/C/G/T count and G/C
    count into acgt_out/gc_out. Positions past the counters' length pool into the last row.
    `adapter_filter[code & 0xFFFF]` is True when some adapter ends in those 8 bases, so the
    per-adapter comparison runs only where a match is possible.
    """
    cap = pos_qual.shape[0]
    last_q = seq_mean_q.shape[0] - 1
    n_adapters = adapter_code.shape[0]
    mask = (1 << 24) - 1
    found = np.zeros(max(n_adapters, 1), dtype=np.bool_)
    for i in range(lengths.shape[0]):
        s = seq_starts[i]
        q = qual_starts[i]
        length = lengths[i]
        head = length if length < cap else cap
        qsum = 0
        acgt = 0
        gc = 0
        code = 0
        run = 0
        left = n_adapters if length >= 12 else 0
        if left:
            found[:] = False
        for j in range(length):
            p = j if j < head else cap - 1
            qb = buf[q + j]
            pos_qual[p, qb] += 1
            qsum += qb
            v = base_class[buf[s + j]]  # class in bits 0-2; bit 3 set for upper-case A/C/G/T
            cls = v & 7
            pos_base[p, cls] += 1
            acgt += cls <= 3
            gc += (cls == 1) | (cls == 2)
            if left:
                if v & 8:
                    code = ((code << 2) | cls) & mask
                    run += 1
                    if run >= 12 and adapter_filter[code & 0xFFFF]:
                        for a in range(n_adapters):
                            if not found[a] and code == adapter_code[a]:
                                found[a] = True
                                left -= 1
                                start = j - 11
                                adapter_hist[a, start if start < cap else cap - 1] += 1
                else:
                    run = 0
        if length > 0:
            mean = qsum // length
            seq_mean_q[mean if mean < last_q else last_q] += 1
        acgt_out[i] = acgt
        gc_out[i] = gc


@njit(cache=True, nogil=True)
def count_basic(buf, seq_starts, qual_starts, lengths, qual_hist, base_hist):  # pragma: no cover - compiled
    """Whole-file histograms only (quality byte, base class): what `seqkit stats -a` reports."""
    for i in range(lengths.shape[0]):
        s = seq_starts[i]
        q = qual_starts[i]
        for j in range(lengths[i]):
            qual_hist[buf[q + j]] += 1
            base_hist[base_class_of(buf[s + j])] += 1


_CLASS = BASE_CLASS & 7


@njit(inline="always")
def base_class_of(byte):  # pragma: no cover - compiled
    return _CLASS[byte]
