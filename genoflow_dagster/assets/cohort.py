"""Cohort tables across samples: a MultiQC-like QC summary and a variant catalog.

Both read each sample's stored artifacts (never the per-sample assets' return
values), so a sample stopped by a gate still appears, with the metric that stopped it.
"""


from typing import Any

import dagster as dg
import pandas as pd

from genoflow_dagster import zones
from genoflow_dagster.assets.artifacts import markdown_table, read_parquet, write_parquet
from genoflow_dagster.assets.qc import CHECK_WITHIN_PROFILE, qc_metrics, verdict_table_key
from genoflow_dagster.assets.reports import gate_outcomes, gather_sample, sample_status
from genoflow_dagster.assets.variants import variant_results, variants_table_key
from genoflow_dagster.cohort_quality import COHORT_SUMMARY_SCHEMA, run_cohort_expectations, schema_failures
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.reports.render import render_cohort_report
from genoflow_dagster.resources.storage import Storage

COHORT = "cohort"
CHECK_SUMMARY_SCHEMA = "cohort_qc_summary_matches_schema"
CHECK_VERDICT_EXPECTATIONS = "cohort_qc_summary_meets_expectations"

def summary_row(sample_id: str, sample: dict[str, Any]) -> dict[str, Any]:
    validation = sample.get("validation") or {}
    qc = sample.get("qc")
    files = validation.get("files", [])
    reads = [f["metrics"] for f in sample.get("file_metrics", []) if f["format"] == "fastq"]
    aligned = (sample.get("aligned") or {}).get("metrics") or {}
    variant_summary = (sample.get("variant_summary") or {}).get("summary") or {}
    usable = bool(validation) and not validation.get("pair_problems") and not validation.get("orphan_mates") \
        and any(f["valid"] for f in files)
    status, stopped_at = sample_status(sample)  # every stored gate verdict, in pipeline order
    if qc is None:
        stopped_at = "validated_files_usable" if validation and not usable else "not run yet"
    # the stored message of each failed blocking gate; the QC profile's failing modules follow
    failed_gates = [g["detail"] for g in gate_outcomes(sample) if g["severity"].startswith("ERROR")
                    and not g["passed"] and g["check"] != CHECK_WITHIN_PROFILE]
    total_reads = sum(m.get("total_reads", 0) for m in reads) if reads else None
    return {
        "sample_id": sample_id,
        "status": status,
        "stopped_at": stopped_at,
        "failing": "; ".join(failed_gates + [f"{m['module']}: {m['message']}"
                                             for m in (qc or {}).get("failing", [])]) or None,
        "files": len(files),
        "quarantined": sum(1 for f in files if not f["valid"]),
        "total_reads": total_reads,
        "q30_percent": _weighted(reads, "q30_percent", "total_bases"),
        "gc_percent": _weighted(reads, "gc_percent", "total_bases"),
        "contamination_percent": _contamination_percent(qc),
        "mapped_percent": aligned.get("mapped_percent"),
        "mean_depth": aligned.get("mean_depth"),
        "variants": variant_summary.get("variants") if variant_summary else None,
        "ts_tv": variant_summary.get("ts_tv") if variant_summary else None,
        "profile": (qc or {}).get("profile"),
    }


def _contamination_percent(qc: dict[str, Any] | None) -> float | None:
    """The screened share of the sample's first screened read file (R1), None when not screened."""
    for entry in (qc or {}).get("files", []):
        value = (entry.get("contamination") or {}).get("contamination_percent")
        if value is not None:
            return float(value)
    return None


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
        dg.AssetCheckSpec(CHECK_VERDICT_EXPECTATIONS, asset="cohort_qc_summary",
                          description="The summary meets the Great Expectations suite (unique samples, "
                          "known statuses, percentages in range)."),
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
    failures = schema_failures(frame)
    yield dg.AssetCheckResult(
        check_name=CHECK_SUMMARY_SCHEMA,
        passed=not failures,
        metadata={"failure_cases": dg.MetadataValue.md(
            markdown_table(failures, ["column", "check", "failure_case", "index"]))},
    )
    outcomes = run_cohort_expectations(frame)
    failed = [o for o in outcomes if not o.success]
    yield dg.AssetCheckResult(
        check_name=CHECK_VERDICT_EXPECTATIONS,
        passed=not failed,
        metadata={
            "evaluated": len(outcomes),
            "failed": dg.MetadataValue.md(
                markdown_table([o.__dict__ for o in failed], ["expectation", "column", "unexpected"])),
        },
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
