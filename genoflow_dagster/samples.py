"""What a sample's files are for: read pairs, alignments, call sets. Plain Python."""

from __future__ import annotations

import re
from dataclasses import dataclass

READ_FORMATS = frozenset({"fastq"})
ALIGNMENT_FORMATS = frozenset({"bam", "cram", "sam"})
VARIANT_FORMATS = frozenset({"vcf"})
ANALYSABLE_FORMATS = READ_FORMATS | ALIGNMENT_FORMATS | VARIANT_FORMATS

# Illumina and common variants: sample_S1_L001_R1_001.fastq.gz, x_R2.fq, x_1.fastq, x.2.fq.gz
_MATE_RE = re.compile(
    r"^(?P<stem>.*?)(?P<sep>[._-])(?P<tag>R?)(?P<mate>[12])(?P<rest>(?:_\d{3})?\.(?:fastq|fq)(?:\.b?gz)?)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReadGroup:
    """One unit of reads to align: a pair (r1, r2) or a single-end file (r2 is None)."""

    r1: str
    r2: str | None


def group_reads(names: list[str]) -> tuple[list[ReadGroup], list[str]]:
    """Pair FASTQ names by their mate tag; return (groups, names whose mate is missing).

    A file without a mate tag is single-end. A lone `_R1`/`_R2` is returned in
    the second list: aligning half a pair as single-end would silently lose
    the pairing information, so the caller decides (the gate rejects it).
    """
    by_stem: dict[tuple[str, str, str, str], dict[str, str]] = {}
    singles: list[str] = []
    for name in sorted(names):
        match = _MATE_RE.match(name)
        if not match:
            singles.append(name)
            continue
        key = (match["stem"], match["sep"], match["tag"].upper(), match["rest"].lower())
        by_stem.setdefault(key, {})[match["mate"]] = name
    groups = [ReadGroup(r1=name, r2=None) for name in singles]
    orphans: list[str] = []
    for mates in by_stem.values():
        if "1" in mates and "2" in mates:
            groups.append(ReadGroup(r1=mates["1"], r2=mates["2"]))
        else:
            orphans.extend(mates.values())
    groups.sort(key=lambda g: g.r1)
    return groups, sorted(orphans)
