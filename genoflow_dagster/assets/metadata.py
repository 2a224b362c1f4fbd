"""How asset metadata reads in the Dagster UI: typed values, tables with a schema, units in the labels.

The UI shows a metadata key as its label and picks the display from the value's type: an `int` prints
as 42,210 where a float prints as 4.221e+04; a `TableMetadataValue` is a sortable table where Markdown
hides behind "[Show Markdown]"; a path or URL is a link. So counts are ints, measured percentages are
floats under a label that carries the unit ("mapped (%)"), tables carry a `TableSchema`, and an entry
with nothing to say (None, "", an empty table) is left out rather than shown empty.

Every asset also carries `owners` (GENOFLOW_OWNERS, applied once in definitions.py) and a `code_version`
(`code_version` below) that changes when what the asset computes changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg

from genoflow_dagster import __version__

# A column of a metadata table: (name, type), type one of "string", "int", "float", "bool".
Column = tuple[str, str]

_CAST = {"int": int, "float": float, "bool": bool, "string": str}


def code_version(*step_versions: str) -> str:
    """The asset's code version: GenoFlow's release, plus the versions of the definitions it computes with
    (METRICS_VERSION of the QC metrics, the contamination screen's METHOD_VERSION...), so changing a metric's
    definition marks what was computed with the old one as changed code in the UI."""
    return "+".join((__version__, *step_versions))


def _cell(value: Any, kind: str) -> str | int | float | bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    try:
        cell = _CAST[kind](value)
    except (TypeError, ValueError):
        return None
    return _readable(cell) if isinstance(cell, float) else cell


def _readable(value: float) -> float:
    """A measured float rounded for reading (79.64294312040853 -> 79.64; a small fraction keeps 4 digits)."""
    return round(value, 2) if abs(value) >= 1 else round(value, 4)


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> dg.TableMetadataValue:
    """Rows as a metadata table with a schema: the UI shows columns, sorts them, and prints ints as ints."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
    records = [dg.TableRecord({name: _cell(row.get(name), kind) for name, kind in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def count(value: Any) -> dg.IntMetadataValue | None:
    """A count as an int (a count stored as a float, 42210.0, still prints as 42,210)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return dg.MetadataValue.int(int(value))


def number(value: Any, digits: int = 2) -> dg.FloatMetadataValue | None:
    """A measured number (a percentage, a ratio, a depth) as a float rounded for reading."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return dg.MetadataValue.float(round(float(value), digits))


def present(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that say something: Dagster cannot hold None, and an empty string or table is an empty
    row in the UI."""
    kept: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None or value == "":
            continue
        if isinstance(value, dg.TableMetadataValue) and not value.records:
            continue
        if isinstance(value, dg.TextMetadataValue | dg.MarkdownMetadataValue) and not value.value:
            continue
        kept[key] = value
    return kept


# Labels of the headline numbers (qc.sample_qc.key_numbers names): what the number is and its unit. Counts
# are ints; the rest floats.
HEADLINE_LABELS: dict[str, tuple[str, str]] = {
    "fastq_total_reads": ("reads (all FASTQ files)", "count"),
    "fastq_total_bases": ("bases (all FASTQ files)", "count"),
    "fastq_q30_percent": ("bases >= Q30 (%)", "number"),
    "fastq_gc_percent": ("GC content (%)", "number"),
    "fastq_mean_quality": ("mean base quality (Phred)", "number"),
    "fastq_duplication_percent": ("duplicate reads (%)", "number"),
    "bam_total": ("alignment records (uploaded BAM)", "count"),
    "bam_mapped_percent": ("mapped, uploaded BAM (%)", "number"),
    "bam_properly_paired_percent": ("properly paired, uploaded BAM (%)", "number"),
    "bam_mean_depth": ("mean depth, uploaded BAM (x)", "number"),
    "cram_total": ("alignment records (uploaded CRAM)", "count"),
    "cram_mapped_percent": ("mapped, uploaded CRAM (%)", "number"),
    "cram_properly_paired_percent": ("properly paired, uploaded CRAM (%)", "number"),
    "cram_mean_depth": ("mean depth, uploaded CRAM (x)", "number"),
    "sam_total": ("alignment records (uploaded SAM)", "count"),
    "sam_mapped_percent": ("mapped, uploaded SAM (%)", "number"),
    "sam_properly_paired_percent": ("properly paired, uploaded SAM (%)", "number"),
    "sam_mean_depth": ("mean depth, uploaded SAM (x)", "number"),
    "vcf_records": ("records (uploaded VCF)", "count"),
    "vcf_snps": ("SNVs (uploaded VCF)", "count"),
    "vcf_indels": ("indels (uploaded VCF)", "count"),
    "vcf_ts_tv": ("Ts/Tv (uploaded VCF)", "number"),
}


def labelled(numbers: Mapping[str, Any], labels: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """Numbers under their readable label, counts as ints and measures as floats; unknown names keep their
    name (as floats) and absent numbers are left out."""
    out: dict[str, Any] = {}
    for name, value in numbers.items():
        label, kind = labels.get(name, (name, "number"))
        typed = count(value) if kind == "count" else number(value)
        if typed is not None:
            out[label] = typed
    return out
