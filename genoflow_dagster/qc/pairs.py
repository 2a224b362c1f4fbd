"""Pair-level figures for paired-end reads, from the two mates' FASTQ metrics (no second pass).

Each mate's metrics are seqkit/FastQC-equivalent on their own; a pair adds what
only the two together say: whether every read has its mate, the combined yield
and quality, and how far R2 falls behind R1. R2 is usually a little worse (it is
read after the longer chemistry run of R1), but a drop of many Q30 points, or a
GC difference between mates, points at a failed second read or mixed-up files.
"""

from __future__ import annotations

from typing import Any


def pair_figures(r1: dict[str, Any], r2: dict[str, Any]) -> dict[str, Any]:
    """Figures of one read pair from `fastq_metrics` of R1 and of R2.

    Combined percentages are base-weighted: each mate's percentage times its
    bases, over both mates' bases (the mates' percentages are rounded to four
    decimals, so the combined value is exact to about that).
    """
    bases1, bases2 = int(r1["total_bases"]), int(r2["total_bases"])
    bases = bases1 + bases2

    def combined(field: str) -> float | None:
        a, b = r1.get(field), r2.get(field)
        if a is None or b is None or bases == 0:
            return None
        return round((a * bases1 + b * bases2) / bases, 4)

    def difference(field: str) -> float | None:
        a, b = r1.get(field), r2.get(field)
        return None if a is None or b is None else round(a - b, 4)

    return {
        "pairs": min(int(r1["total_reads"]), int(r2["total_reads"])),
        "read_counts_match": r1["total_reads"] == r2["total_reads"],
        "total_reads": int(r1["total_reads"]) + int(r2["total_reads"]),
        "total_bases": bases,
        "q20_percent": combined("q20_percent"),
        "q30_percent": combined("q30_percent"),
        "gc_percent": combined("gc_percent"),
        "r1_q30_percent": r1.get("q30_percent"),
        "r2_q30_percent": r2.get("q30_percent"),
        "q30_drop_r1_to_r2": difference("q30_percent"),
        "gc_difference_r1_r2": difference("gc_percent"),
        "mean_length_r1": r1.get("mean_length"),
        "mean_length_r2": r2.get("mean_length"),
    }
