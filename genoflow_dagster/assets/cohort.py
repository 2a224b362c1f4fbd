"""Cohort tables across samples: a MultiQC-like QC summary and a variant catalog.

Both read each sample's stored artifacts (never the per-sample assets' return
values), so a sample stopped by a gate still appears, with the metric that stopped it.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from genoflow_dagster import zones
from genoflow_dagster.assets.artifacts import markdown_table, read_parquet, write_parquet
from genoflow_dagster.assets.qc import qc_metrics, verdict_table_key
from genoflow_dagster.assets.reports import gather_sample
from genoflow_dagster.assets.variants import variant_results, variants_table_key
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.reports.render import render_cohort_report
from genoflow_dagster.resources.storage import Storage

COHORT = "cohort"
CHECK_SUMMARY_SCHEMA = "cohort_qc_summary_matches_schema"
CHECK_VERDICT_EXPECTATIONS = "cohort_qc_summary_meets_expectations"

STATUSES = ["pass", "warn", "fail", "not_run"]

COHORT_SUMMARY_SCHEMA = pa.DataFrameSchema(
    {
        "sample_id": pa.Column(str, unique=True, nullable=False,
                               checks=pa.Check.str_matches(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")),
        "status": pa.Column(str, pa.Check.isin(STATUSES)),
        "stopped_at": pa.Column(str, nullable=True),
        "failing": pa.Column(str, nullable=True),
        "files": pa.Column(int, pa.Check.ge(0)),
        "quarantined": pa.Column(int, pa.Check.ge(0)),
        "total_reads": pa.Column(float, pa.Check.ge(0), nullable=True),
        "q30_percent": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
        "gc_percent": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
        "mapped_percent": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
        "mean_depth": pa.Column(float, pa.Check.ge(0), nullable=True),
        "variants": pa.Column(float, pa.Check.ge(0), nullable=True),
        "ts_tv": pa.Column(float, pa.Check.ge(0), nullable=True),
        "profile": pa.Column(str, nullable=True),
    },
    strict=True,
    coerce=True,
)


def summary_row(sample_id: str, sample: dict[str, Any]) -> dict[str, Any]:
    validation = sample.get("validation") or {}
    qc = sample.get("qc")
    files = validation.get("files", [])
    reads = [f["metrics"] for f in sample.get("file_metrics", []) if f["format"] == "fastq"]
    aligned = (sample.get("aligned") or {}).get("metrics") or {}
    variant_summary = (sample.get("variant_summary") or {}).get("summary") or {}
    usable = bool(validation) and not validation.get("pair_problems") and not validation.get("orphan_mates") \
        and any(f["valid"] for f in files)
    if qc is None:
        status, stopped_at = "not_run", ("validated_files_usable" if validation and not usable else "not run yet")
    else:
        status = qc["status"]
        stopped_at = "qc_metrics_within_profile" if status == "fail" else None
    total_reads = sum(m.get("total_reads", 0) for m in reads) if reads else None
    return {
        "sample_id": sample_id,
        "status": status,
        "stopped_at": stopped_at,
        "failing": "; ".join(f"{m['module']}: {m['message']}" for m in (qc or {}).get("failing", [])) or None,
        "files": len(files),
        "quarantined": sum(1 for f in files if not f["valid"]),
        "total_reads": total_reads,
        "q30_percent": _weighted(reads, "q30_percent", "total_bases"),
        "gc_percent": _weighted(reads, "gc_percent", "total_bases"),
        "mapped_percent": aligned.get("mapped_percent"),
        "mean_depth": aligned.get("mean_depth"),
        "variants": variant_summary.get("total") if variant_summary else None,
        "ts_tv": variant_summary.get("ts_tv") if variant_summary else None,
        "profile": (qc or {}).get("profile"),
    }


def _weighted(rows: list[dict[str, Any]], field: str, weight: str) -> float | None:
    pairs = [(r.get(field), r.get(weight) or 0) for r in rows if r.get(field) is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total == 0:
        return None
    return sum(v * w for v, w in pairs) / total


def sample_ids(context: dg.AssetExecutionContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME))


@dg.asset(
    group_name=COHORT,
    deps=[qc_metrics],
    kinds={"parquet", "html"},
    description="One row per sample: QC status, the metric that stopped it, headline numbers (MultiQC-like); "
    "plus the machine-readable qc_verdict table of every graded module.",
    check_specs=[
        dg.AssetCheckSpec(CHECK_SUMMARY_SCHEMA, asset="cohort_qc_summary", blocking=True,
                          description="The summary table satisfies its pandera schema."),
    ],
)
def cohort_qc_summary(context: dg.AssetExecutionContext, storage: Storage):
    rows = []
    verdicts = []
    for sample_id in sample_ids(context):
        sample = gather_sample(storage, sample_id)
        if sample["inventory"] is None:
            continue
        rows.append(summary_row(sample_id, sample))
        if storage.exists(verdict_table_key(sample_id)):
            verdicts.append(read_parquet(storage, verdict_table_key(sample_id)))
    frame = pd.DataFrame(rows, columns=list(COHORT_SUMMARY_SCHEMA.columns))
    verdict_frame = pd.concat(verdicts, ignore_index=True) if verdicts else pd.DataFrame()
    table = write_parquet(storage, zones.cohort_table_key("qc_summary.parquet"), frame)
    write_parquet(storage, zones.cohort_table_key("qc_verdict.parquet"), verdict_frame)
    page_key = zones.cohort_key("qc_summary.html")
    storage.put_bytes(render_cohort_report(frame.to_dict("records")).encode("utf-8"), page_key)
    yield dg.MaterializeResult(
        metadata={
            "samples": len(frame),
            "failed": int((frame["status"] == "fail").sum()) if len(frame) else 0,
            "table_uri": dg.MetadataValue.path(storage.uri(table.key)),
            "page_uri": dg.MetadataValue.path(storage.uri(page_key)),
            "summary": dg.MetadataValue.md(
                markdown_table(frame.to_dict("records"),
                               ["sample_id", "status", "stopped_at", "failing", "total_reads", "mapped_percent",
                                "variants"])
            ),
        }
    )
    try:
        COHORT_SUMMARY_SCHEMA.validate(frame, lazy=True)
        yield dg.AssetCheckResult(check_name=CHECK_SUMMARY_SCHEMA, passed=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.head(20).astype(str).to_dict("records")
        yield dg.AssetCheckResult(
            check_name=CHECK_SUMMARY_SCHEMA, passed=False,
            metadata={"failure_cases": dg.MetadataValue.md(
                markdown_table(cases, ["column", "check", "failure_case", "index"]))},
        )


@dg.asset(
    group_name=COHORT,
    deps=[variant_results],
    kinds={"parquet"},
    description="Every sample's variants in one table, with recurrence (number of samples carrying each).",
)
def variant_catalog(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
    frames = [read_parquet(storage, variants_table_key(s)) for s in sample_ids(context)
              if storage.exists(variants_table_key(s))]
    frames = [f for f in frames if len(f)]
    catalog = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["variant_id", "sample_id"])
    if len(catalog):
        catalog["recurrence"] = catalog.groupby("variant_id")["sample_id"].transform("nunique")
    obj = write_parquet(storage, zones.cohort_table_key("variant_catalog.parquet"), catalog)
    recurrent = int((catalog["recurrence"] > 1).sum()) if "recurrence" in catalog else 0
    return dg.MaterializeResult(
        metadata={
            "rows": len(catalog),
            "distinct_variants": int(catalog["variant_id"].nunique()) if len(catalog) else 0,
            "recurrent_rows": recurrent,
            "table_uri": dg.MetadataValue.path(storage.uri(obj.key)),
        }
    )
