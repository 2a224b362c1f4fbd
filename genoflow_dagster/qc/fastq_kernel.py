"""The per-base inner loops of FASTQ QC: tables here, loops in C (`genoflow_dagster/_fastq.c`).

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

The loops are a small C extension built with the package: a JIT (numba was
tried) cost 0.6 s and 130 MB of RSS at start-up, more than the whole run of a
200 MB file needs.
"""

from __future__ import annotations

import numpy as np

from genoflow_dagster._fastq import count_basic, count_records

__all__ = ["ADAPTER_K", "BASE_CLASS", "adapter_codes", "count_basic", "count_records"]

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
