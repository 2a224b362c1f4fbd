"""The per-sample report: one self-contained HTML page a reviewer signs off.

What the page shows is decided in `reports/context.py` from the sample's stored record; the asset
only writes it (`artifacts.write_sample_report`, which the stage whose gate stops a sample calls too).
"""


import dagster as dg

from genoflow_dagster import zones
from genoflow_dagster.assets.artifacts import write_sample_report
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.resources.ai import AIProvider
from genoflow_dagster.resources.storage import Storage

REPORTS = "reports"


@dg.asset(
    group_name=REPORTS,
    partitions_def=samples_partitions,
    deps=["variant_results", "qc_metrics"],
    kinds={"html"},
    description="Self-contained HTML report: QC with plots, gates, variants, provenance and a narrative.",
)
@retry_storage_outages
def sample_report(context: dg.AssetExecutionContext, storage: Storage, ai: AIProvider) -> dg.MaterializeResult:
    """The report of a sample that went through every gate. A sample stopped by a blocking gate never reaches
    this asset (Dagster skips it): the stage whose gate stopped it writes its FAIL report with the same
    `write_sample_report`, from the same stored outcomes."""
    sample_id = zones.validate_sample_id(context.partition_key)
    report = write_sample_report(storage, sample_id, run_id=context.run.run_id, narrator=ai)
    narrative = report.narrative
    context.log.info(f"report ({report.status}) written to {report.uri} ({report.size_bytes:,} bytes)")
    return dg.MaterializeResult(
        metadata={
            "report_uri": dg.MetadataValue.path(report.uri),
            "sample_status": report.status,
            "size_bytes": report.size_bytes,
            "narrative_provider": narrative.provider,
            "narrative_model": narrative.model or "",
            "narrative_input_tokens": narrative.input_tokens or 0,
            "narrative_output_tokens": narrative.output_tokens or 0,
            "narrative_cost_usd": float(narrative.cost_usd or 0.0),
            "narrative_latency_s": float(narrative.latency_s or 0.0),
            "narrative_cached": narrative.cached,
        }
    )
