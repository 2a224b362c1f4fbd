"""Simple counts for formats without a dedicated QC tool: FASTA records and lengths,
BED/GFF/GTF feature counts. Streaming, through `open_decompressed`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from genoflow_dagster.formats.io import open_decompressed


def fasta_metrics(path: str | Path) -> dict[str, Any]:
    """`records`, `total_length`, min/max/mean length, N50, `gc_percent` (G+C over all bases, as seqkit)."""
    lengths: list[int] = []
    gc = n = 0
    current = -1
    table = bytes.maketrans(b"", b"")
    with open_decompressed(path) as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b">"):
                lengths.append(0)
                current = len(lengths) - 1
                continue
            if current < 0 or not line:
                continue
            seq = line.translate(table, b" \t")
            lengths[current] += len(seq)
            gc += seq.count(b"G") + seq.count(b"C") + seq.count(b"g") + seq.count(b"c")
            n += seq.count(b"N") + seq.count(b"n")
    total = sum(lengths)
    n50 = 0
    acc = 0
    for ln in sorted(lengths, reverse=True):
        acc += ln
        if acc * 2 >= total:
            n50 = ln
            break
    return {
        "records": len(lengths),
        "total_length": total,
        "min_length": min(lengths) if lengths else 0,
        "max_length": max(lengths) if lengths else 0,
        "mean_length": round(total / len(lengths), 4) if lengths else 0.0,
        "n50": n50,
        "gc_percent": round(100.0 * gc / total, 4) if total else 0.0,
        "n_percent": round(100.0 * n / total, 4) if total else 0.0,
    }


def feature_metrics(path: str | Path, fmt: str) -> dict[str, Any]:
    """`records` (feature lines), `contigs`, `total_length` (sum of feature spans) and, for
    GFF/GTF, `feature_types` (counts per column-3 type)."""
    fmt = fmt.lower()
    records = 0
    span = 0
    contigs: set[bytes] = set()
    types: Counter[str] = Counter()
    with open_decompressed(path) as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if not line or line.startswith(b"#"):
                if line.startswith(b"##FASTA"):
                    break
                continue
            if fmt == "bed" and line.startswith((b"track", b"browser")):
                continue
            cols = line.split(b"\t")
            records += 1
            contigs.add(cols[0])
            try:
                if fmt == "bed":
                    span += int(cols[2]) - int(cols[1])
                else:
                    types[cols[2].decode("utf-8", "replace")] += 1
                    span += int(cols[4]) - int(cols[3]) + 1
            except (IndexError, ValueError):
                continue
    out: dict[str, Any] = {"records": records, "contigs": len(contigs), "total_length": span}
    if fmt != "bed":
        out["feature_types"] = dict(types.most_common())
    return out
