"""QC metrics per file format, and their grading against QC profiles (no Dagster here).

`compute_metrics(path, format)` is the one entry point the assets and the CLI call;
it returns a JSON-serialisable dict whose field names are the `qc --json` contract
of DESIGN.md, plus `format`. Grading lives in `qc.profiles.grade`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["compute_metrics"]

_ALIGNMENT = ("sam", "bam", "cram")
_TABULAR = ("csv", "tsv", "xlsx")


def compute_metrics(path: str | Path, format: str, **context: Any) -> dict[str, Any]:
    """Metrics of one file by format.

    Context keys used where they apply: `reference_fasta` (CRAM decoding, coverage
    lengths), `reference_lengths`, `targets_bed` (alignment target metrics), `known_sites`
    (VCF known/novel), `quality_offset` (FASTQ), `progress` (FASTQ and alignments: called with bytes of the
    file read and records so far, see genoflow_dagster.progress).
    Unknown context keys are ignored so callers can pass one context for every format.
    Raises ValueError for an unsupported format.
    """
    fmt = format.lower()
    if fmt in ("fastq", "fq"):
        from genoflow_dagster.qc.fastq import fastq_metrics

        metrics = fastq_metrics(path, quality_offset=int(context.get("quality_offset") or 33),
                                progress=context.get("progress"))
        fmt = "fastq"
    elif fmt in _ALIGNMENT:
        from genoflow_dagster.qc.alignment import alignment_metrics

        metrics = alignment_metrics(path, reference_fasta=context.get("reference_fasta"),
                                    reference_lengths=context.get("reference_lengths"),
                                    targets_bed=context.get("targets_bed"), progress=context.get("progress"))
    elif fmt in ("vcf", "bcf"):
        from genoflow_dagster.qc.variants import vcf_metrics

        metrics = vcf_metrics(path, known_sites=context.get("known_sites"))
    elif fmt in _TABULAR:
        from genoflow_dagster.qc.tabular import tabular_metrics

        metrics = tabular_metrics(path, fmt)
    elif fmt in ("fasta", "fa"):
        from genoflow_dagster.qc.simple import fasta_metrics

        metrics = fasta_metrics(path)
        fmt = "fasta"
    elif fmt in ("bed", "gff", "gff3", "gtf"):
        from genoflow_dagster.qc.simple import feature_metrics

        metrics = feature_metrics(path, fmt)
    else:
        raise ValueError(f"no QC metrics for format {format!r}")
    return {"format": fmt, **metrics}
