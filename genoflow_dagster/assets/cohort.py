"""Cohort tables across samples: a MultiQC-like QC summary and a variant catalog.

Both read each sample's stored artifacts (never the per-sample assets' return
values), so a sample stopped by a gate still appears, with the metric that stopped it.
"""


import datetime as dt
from typing import Any

import dagster as dg
import pandas as pd

from genoflow_dagster import zones
from genoflow_dagster.assets.artifacts import frame_rows, read_parquet, write_parquet
from genoflow_dagster.assets.metadata import code_version, table
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.cohort_quality import COHORT_SUMMARY_SCHEMA, run_cohort_expectations, schema_failures
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.reports.cohort_tables import VERDICT_COLUMNS, summary_row, verdict_rows
from genoflow_dagster.reports.render import render_cohort_report
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.sample_record import read_sample

COHORT = "cohort"
CHECK_SUMMARY_SCHEMA = "cohort_qc_summary_matches_schema"
CHECK_VERDICT_EXPECTATIONS = "cohort_qc_summary_meets_expectations"


# the summary's columns in the asset's metadata (the parquet table has them all)
SUMMARY_COLUMNS = [("sample_id", "string"), ("status", "string"), ("stopped_at", "string"), ("failing", "string"),
                   ("total_reads", "int"), ("q30_percent", "float"), ("mapped_percent", "float"),
                   ("mean_depth", "float"), ("variants", "int"), ("profile", "string")]


def sample_ids(context: dg.AssetExecutionContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME))


@dg.asset(
    group_name=COHORT,
    deps=["qc_metrics"],
    kinds={"parquet", "html"},
    code_version=code_version(),
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
        sample = read_sample(storage, sample_id)
        if sample.inventory is None:
            continue
        rows.append(summary_row(sample))
        modules_key = zones.verdict_table_key(sample_id)
        modules = read_parquet(storage, modules_key) if storage.exists(modules_key) else None
        verdict_table += verdict_rows(sample, modules)
    frame = pd.DataFrame(rows, columns=list(COHORT_SUMMARY_SCHEMA.columns))
    verdict_frame = pd.DataFrame(verdict_table, columns=VERDICT_COLUMNS)
    stored = write_parquet(storage, zones.cohort_table_key("qc_summary.parquet"), frame)
    write_parquet(storage, zones.cohort_table_key("qc_verdict.parquet"), verdict_frame)
    page_key = zones.cohort_key("qc_summary.html")
    generated_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = render_cohort_report(frame_rows(frame), generated_at=generated_at, multiqc_report="multiqc_report.html")
    storage.put_bytes(page.encode("utf-8"), page_key)
    yield dg.MaterializeResult(
        metadata={
            "samples": len(frame),
            "failed": int((frame["status"] == "fail").sum()) if len(frame) else 0,
            "table_uri": dg.MetadataValue.path(storage.uri(stored.key)),
            "page_uri": dg.MetadataValue.path(storage.uri(page_key)),
            "summary": table(frame_rows(frame), SUMMARY_COLUMNS),
        }
    )
    failures = schema_failures(frame)
    yield dg.AssetCheckResult(
        check_name=CHECK_SUMMARY_SCHEMA,
        passed=not failures,
        metadata={"failure_cases": table(failures, [("column", "string"), ("check", "string"),
                                                    ("failure_case", "string"), ("index", "string")])}
        if failures else {},
    )
    outcomes = run_cohort_expectations(frame)
    failed = [o for o in outcomes if not o.success]
    yield dg.AssetCheckResult(
        check_name=CHECK_VERDICT_EXPECTATIONS,
        passed=not failed,
        metadata={
            "evaluated": len(outcomes),
            **({"failed": table([o.__dict__ for o in failed], [("expectation", "string"), ("column", "string"),
                                                              ("unexpected", "string")])} if failed else {}),
        },
    )


@dg.asset(
    group_name=COHORT,
    deps=["variant_results"],
    kinds={"parquet"},
    code_version=code_version(),
    description="Every sample's variants in one table, with recurrence (number of samples carrying each).",
)
def variant_catalog(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
    frames = [read_parquet(storage, zones.variants_table_key(s)) for s in sample_ids(context)
              if storage.exists(zones.variants_table_key(s))]
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
