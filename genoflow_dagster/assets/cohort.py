"""Cohort tables across samples: a MultiQC-like QC summary and a variant catalog.

Both read each sample's stored artifacts (never the per-sample assets' return
values), so a sample stopped by a gate still appears, with the metric that stopped it.
"""


from typing import Any

import dagster as dg
import pandas as pd

from genoflow_dagster import verdicts, zones
from genoflow_dagster.assets.artifacts import markdown_table, read_parquet, write_parquet
from genoflow_dagster.assets.qc import CHECK_WITHIN_PROFILE, qc_metrics, verdict_table_key
from genoflow_dagster.assets.reports import gate_outcomes, gather_sample, sample_headline
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.assets.variants import variant_results, variants_table_key
from genoflow_dagster.cohort_quality import COHORT_SUMMARY_SCHEMA, run_cohort_expectations, schema_failures
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.reports.render import render_cohort_report
from genoflow_dagster.resources.storage import Storage

COHORT = "cohort"
CHECK_SUMMARY_SCHEMA = "cohort_qc_summary_matches_schema"
CHECK_VERDICT_EXPECTATIONS = "cohort_qc_summary_meets_expectations"

def summary_row(sample_id: str, sample: dict[str, Any]) -> dict[str, Any]:
    """One sample's row: its status and stop from the stored gate outcomes, its headline numbers."""
    validation = sample.get("validation") or {}
    qc = sample.get("qc")
    files = validation.get("files", [])
    outcomes = gate_outcomes(sample)
    verdict = verdicts.sample_verdict(outcomes)
    headline = sample_headline(sample)
    not_graded = [f"{o.gate}: {o.not_graded_reason}" for o in outcomes if not o.graded]
    return {
        "sample_id": sample_id,
        "status": verdict.status,
        "stopped_at": verdict.stopped_at,
        "failing": "; ".join(verdict.problems()) or None,
        "not_graded": "; ".join(not_graded) or None,
        "files": len(files),
        "quarantined": sum(1 for f in files if not f["valid"]),
        "total_reads": headline.total_reads,
        "q30_percent": headline.q30_percent,
        "gc_percent": headline.gc_percent,
        "contamination_percent": _contamination_percent(qc),
        "mapped_percent": headline.mapped_percent,
        "mean_depth": headline.mean_depth,
        "variants": headline.variants,
        "ts_tv": headline.ts_tv,
        "profile": (qc or {}).get("profile"),
    }


VERDICT_COLUMNS = ["sample_id", "gate", "gate_status", "blocking", "file", "format", "module", "status", "value",
                   "warn", "fail", "message", "profile", "profile_version"]


def verdict_rows(sample_id: str, sample: dict[str, Any], module_rows: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The sample's rows of the cohort verdict table: one per stored gate outcome (`module` empty, `status`
    the gate's), then each graded QC module (qc_metrics' verdict.parquet) under its gate. A sample stopped
    before QC still has its gate rows."""
    outcomes = gate_outcomes(sample)
    by_gate = {o.gate: o for o in outcomes}
    rows = [{"sample_id": sample_id, "gate": o.gate, "gate_status": o.status, "blocking": o.blocking,
             "file": None, "format": None, "module": None, "status": o.status, "value": None, "warn": None,
             "fail": None, "message": o.detail(), "profile": o.profile, "profile_version": None}
            for o in outcomes]
    within = by_gate.get(CHECK_WITHIN_PROFILE)
    for module in ([] if module_rows is None else module_rows.to_dict("records")):
        rows.append({**module, "gate": CHECK_WITHIN_PROFILE, "gate_status": within.status if within else None,
                     "blocking": True})
    return rows


def _contamination_percent(qc: dict[str, Any] | None) -> float | None:
    """The screened share of the sample's first screened read file (R1), None when not screened."""
    for entry in (qc or {}).get("files", []):
        value = (entry.get("contamination") or {}).get("contamination_percent")
        if value is not None:
            return float(value)
    return None


def sample_ids(context: dg.AssetExecutionContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME))


@dg.asset(
    group_name=COHORT,
    deps=[qc_metrics],
    kinds={"parquet", "html"},
    description="One row per sample: QC status, the metric that stopped it, headline numbers (MultiQC-like); "
    "plus the machine-readable qc_verdict table of every stored gate outcome and graded module.",
    check_specs=[
        dg.AssetCheckSpec(CHECK_SUMMARY_SCHEMA, asset="cohort_qc_summary", blocking=True,
                          description="The summary table satisfies its pandera schema."),
        dg.AssetCheckSpec(CHECK_VERDICT_EXPECTATIONS, asset="cohort_qc_summary",
                          description="The summary meets the Great Expectations suite (unique samples, "
                          "known statuses, percentages in range)."),
    ],
)
@retry_storage_outages
def cohort_qc_summary(context: dg.AssetExecutionContext, storage: Storage):
    rows = []
    verdict_table: list[dict[str, Any]] = []
    for sample_id in sample_ids(context):
        sample = gather_sample(storage, sample_id)
        if sample["inventory"] is None:
            continue
        rows.append(summary_row(sample_id, sample))
        modules = (read_parquet(storage, verdict_table_key(sample_id))
                   if storage.exists(verdict_table_key(sample_id)) else None)
        verdict_table += verdict_rows(sample_id, sample, modules)
    frame = pd.DataFrame(rows, columns=list(COHORT_SUMMARY_SCHEMA.columns))
    verdict_frame = pd.DataFrame(verdict_table, columns=VERDICT_COLUMNS)
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
