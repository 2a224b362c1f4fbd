"""Paired reads shaped like real libraries, for comparing GenoFlow's alignments with the minimap2 CLI's.

Fragments come from a real genome sequence with SNVs and indels (some within a
few bases of a read end), on either strand. Short inserts read through into
the Illumina adapter; some reads start with a primer/barcode-like tag that is
not in the genome; a few fragments are chimeric (two loci joined, so one read
aligns in two pieces: supplementary alignments); some mates are junk (unmapped).
Everything is drawn from one seeded generator, so a file is the same every time.

`compare_alignments` matches two SAM/BAM files record by record (by read name,
mate and, for supplementary pieces, position); the tests and
benchmarks/alignment_identity.py both use it.
"""

from __future__ import annotations

import gzip
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pysam

ADAPTER_R1 = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC" + "ATCTCGTATGCCGTCTTCTGCTTG"
ADAPTER_R2 = "AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGT" + "AGATCTCGGTGGTCGCCGTATCATT"
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def read_fasta(path: str | Path) -> dict[str, str]:
    contigs: dict[str, list[str]] = {}
    name = ""
    with open(path) as fh:
        for line in fh:
            if line.startswith(">"):
                name = line[1:].split()[0]
                contigs[name] = []
            else:
                contigs[name].append(line.strip().upper())
    return {k: "".join(v) for k, v in contigs.items()}


def _mutate(fragment: str, rng: random.Random) -> str:
    bases = list(fragment)
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        i = rng.randrange(len(bases))
        bases[i] = rng.choice([b for b in "ACGT" if b != bases[i]])
    seq = "".join(bases)
    if rng.random() < 0.25:  # an indel, often close to one end of the fragment
        near_end = rng.random() < 0.5
        pos = rng.choice((rng.randint(3, 12), len(seq) - rng.randint(3, 12))) if near_end \
            else rng.randrange(20, max(21, len(seq) - 20))
        size = rng.randint(1, 6)
        if rng.random() < 0.5:
            seq = seq[:pos] + "".join(rng.choice("ACGT") for _ in range(size)) + seq[pos:]
        else:
            seq = seq[:pos] + seq[pos + size:]
    return seq


def _quality(n: int, rng: random.Random) -> str:
    return "".join(chr(33 + rng.choice((37, 37, 37, 32, 25, 14))) for _ in range(n))


def make_pairs(reference: str | Path, out_prefix: str | Path, *, pairs: int = 3000, read_length: int = 150,
               seed: int = 9) -> tuple[Path, Path]:
    """Write `out_prefix`_R1.fastq.gz and _R2.fastq.gz; return both paths."""
    rng = random.Random(seed)
    genome = read_fasta(reference)
    names = [n for n, s in genome.items() if len(s) > 2_000]
    r1_path, r2_path = Path(f"{out_prefix}_R1.fastq.gz"), Path(f"{out_prefix}_R2.fastq.gz")
    with gzip.open(r1_path, "wt") as f1, gzip.open(r2_path, "wt") as f2:
        for number in range(pairs):
            kind = rng.random()
            contig = genome[rng.choice(names)]
            length = rng.choice((rng.randint(40, 149), rng.randint(150, 600), rng.randint(150, 450)))
            start = rng.randrange(0, len(contig) - length)
            fragment = _mutate(contig[start:start + length], rng)
            if kind < 0.06:  # chimera: a second locus joined to the first
                other = genome[rng.choice(names)]
                at = rng.randrange(0, len(other) - 200)
                fragment = fragment[: rng.randint(60, 100)] + other[at:at + rng.randint(100, 300)]
            if rng.random() < 0.5:
                fragment = revcomp(fragment)
            tag = "".join(rng.choice("ACGT") for _ in range(rng.randint(8, 25))) if rng.random() < 0.15 else ""
            seq1 = (tag + fragment + ADAPTER_R1)[:read_length]
            seq2 = (revcomp(fragment) + ADAPTER_R2)[:read_length]
            if kind > 0.97:  # one mate is junk
                seq2 = "".join(rng.choice("ACGT") for _ in range(read_length))
            if 0.95 < kind <= 0.97:  # trimmed reads of unequal length
                seq1, seq2 = seq1[: rng.randint(50, read_length)], seq2[: rng.randint(50, read_length)]
            name = f"sim{number}"
            f1.write(f"@{name}/1\n{seq1}\n+\n{_quality(len(seq1), rng)}\n")
            f2.write(f"@{name}/2\n{seq2}\n+\n{_quality(len(seq2), rng)}\n")
    return r1_path, r2_path


FIELDS = ("flag", "rname", "pos", "mapq", "cigar", "rnext", "pnext", "tlen", "NM", "SA", "seq", "qual")


def alignment_records(path: str | Path) -> dict[tuple, tuple]:
    """Every record of a SAM/BAM, keyed by (name, mate bits, supplementary piece position), as FIELDS."""
    out: dict[tuple, tuple] = {}
    with pysam.AlignmentFile(str(path), check_sq=False) as fh:
        for r in fh.fetch(until_eof=True):
            piece = (r.reference_name, r.reference_start, r.is_reverse) if r.is_supplementary else None
            key = (r.query_name, r.flag & 0xC0, piece)
            while key in out:  # two pieces of one long read can start at one position: number the later ones
                key = (*key, "again")
            out[key] = (r.flag, r.reference_name, r.reference_start, r.mapping_quality, r.cigarstring,
                        r.next_reference_name, r.next_reference_start, r.template_length,
                        r.get_tag("NM") if r.has_tag("NM") else None, r.get_tag("SA") if r.has_tag("SA") else None,
                        r.query_sequence, r.qual)
    return out


def compare_alignments(ours: str | Path, theirs: str | Path) -> dict[str, Any]:
    """records, mapped (records mapped on either side), same (identical flag, POS, CIGAR), all_fields,
    differences (a Counter of which fields differ), differing (the (key, ours, theirs) triples)."""
    a, b = alignment_records(ours), alignment_records(theirs)
    keys = sorted(set(a) | set(b), key=str)
    mapped = [k for k in keys if not (k in a and a[k][0] & 4 and k in b and b[k][0] & 4)]
    same = sum(1 for k in mapped if k in a and k in b and (a[k][0], a[k][2], a[k][4]) == (b[k][0], b[k][2], b[k][4]))
    differences: Counter[str] = Counter()
    differing = []
    for k in keys:
        if a.get(k) == b.get(k):
            continue
        differing.append((k, a.get(k), b.get(k)))
        if k not in a or k not in b:
            differences["record only in " + ("the other file" if k not in a else "ours")] += 1
        else:
            differences[", ".join(f for f, x, y in zip(FIELDS, a[k], b[k], strict=True) if x != y)] += 1
    return {"records": len(keys), "mapped": len(mapped), "same": same,
            "all_fields": len(keys) - len(differing), "differences": differences, "differing": differing}
