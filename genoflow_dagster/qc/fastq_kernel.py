"""The per-base inner loops of FASTQ QC: tables here, loops in C (`genoflow_dagster/_fastq.c`).

`scan_qc` walks the whole 4-line records of a buffer itself (no newline index
arrays, no gathered copies) and adds every FastQC-style counter in one pass per
read: quality per (position, byte), base class per position, read length,
truncated mean quality, (length, G/C count) pairs for the GC module, and the
first hit of each adapter. The GC pair is FastQC's: a read longer than 100 bases
is cut to whole hundreds (longer than 1,000, to whole thousands) and its G/C
counted over what is left, N and every other byte in the length. It returns to
Python when the buffer needs more data, when a record is longer than the
counters (which Python then grows), or at the first record that is not plain
4-line FASTQ (the line parser takes over there). `scan_basic` does the same walk
for the `seqkit stats -a` histograms.

`scan_qc` also hands back where each read it counted lies, in batches, and
`dup_update` counts them as FastQC's duplication module does: each read
upper-cased and cut (over 75 bases: to 50), the first 100,000 distinct ones
tracked in a hash table, then only those counted on to the end of the file;
`dup_unseen` is FastQC's correction for duplicates that tracking missed.

Adapter search follows FastQC: a read contains an adapter when its 12 bytes
occur in it as A/C/G/T of either case (FastQC upper-cases every read first),
counted once per read at the first start, as `bytes.upper().find` would report it. The vector path proposes
starts with a nibble prefilter and confirms them byte by byte; the scalar path
compares a rolling 2-bit code of the last 12 bases. `VECTOR` caps the vector
width: 2 = AVX2 where the CPU has it, 1 = SSE2/SSSE3, 0 = the scalar twins of
every vector loop (the tests compare all three).

The loops are a small C extension built with the package: a JIT (numba was
tried) cost 0.6 s and 130 MB of RSS at start-up, more than the whole run of a
200 MB file needs.
"""

from __future__ import annotations

from genoflow_dagster._fastq import dup_unseen, dup_update, scan_basic, scan_qc

__all__ = ["ADAPTER_K", "BASE_CLASS", "DRAIN", "GROW", "IRREGULAR", "NEED_DATA", "VECTOR", "adapter_motifs",
           "dup_unseen", "dup_update", "scan_basic", "scan_qc"]

# Bits 0-2: A C G T N other (0-5), for per-position base content; lower case counts as upper
# case (FastQC upper-cases reads), U is "other" (FastQC counts it as none of A/C/G/T/N).
# Bit 3: an A/C/G/T of either case, the only bases adapter matching accepts, whose 2-bit code
# is then bits 0-1.
_classes = bytearray([5] * 256)
for _i, _b in enumerate("ACGTN"):
    _classes[ord(_b)] = _classes[ord(_b.lower())] = _i
for _b in "ACGTacgt":
    _classes[ord(_b)] |= 8
BASE_CLASS = bytes(_classes)
ADAPTER_K = 12
MAX_ADAPTERS = 8
VECTOR = 2

# scan_qc / scan_basic statuses
NEED_DATA, IRREGULAR, GROW, DRAIN = 0, 1, 2, 3


def adapter_motifs(adapters: list[bytes]) -> bytes:
    """The adapters as `scan_qc` takes them: 12-mers of upper-case A/C/G/T, concatenated."""
    if len(adapters) > MAX_ADAPTERS:
        raise ValueError(f"at most {MAX_ADAPTERS} adapters")
    for motif in adapters:
        if len(motif) != ADAPTER_K or any(c not in b"ACGT" for c in motif):
            raise ValueError(f"adapter {motif!r} is not a 12-mer of A/C/G/T")
    return b"".join(adapters)
