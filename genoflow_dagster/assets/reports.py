"""The per-sample report: one self-contained HTML page a reviewer signs off.

What the page shows is decided in `reports/context.py` from the sample's stored record; the asset
only writes it (`artifacts.write_sample_report`, which the stage whose gate stops a sample calls too).
"""


import dagster as dg

from genoflow_dagster import zones
from genoflow_dagster.assets.artifacts import report_metadata, write_sample_report
from genoflow_dagster.assets.metadata import code_version, count, number, present
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.resources.ai import AIProvider
from genoflow_dagster.resources.storage import Storage

REPORTS = "reports"


@dg.asset(
    group_name=REPORTS,
    partitions_def=samples_partitions,
    deps=["variant_results", "qc_metrics"],
    kinds={"html", "pdf"},
    code_version=code_version(),
    description="Self-contained HTML report (and the same page as a PDF): QC with plots, gates, variants, "
    "provenance and a narrative.",
)
@retry_storage_outages
def sample_report(context: dg.AssetExecutionContext, storage: Storage, ai: AIProvider) -> dg.MaterializeResult:
    """The report of a sample that went through every gate. A sample stopped by a blocking gate never reaches
    this asset (Dagster skips it): the stage whose gate stopped it writes its FAIL report with the same
    `write_sample_report`, from the same stored outcomes."""
    sample_id = zones.validate_sample_id(context.partition_key)
    report = write_sample_report(storage, sample_id, run_id=context.run.run_id, narrator=ai)
    narrative = report.narrative
    context.log.info(f"report ({report.status}) written to {report.uri} ({report.size_bytes:,} bytes)"
                     + (f" and {report.pdf_uri} ({report.pdf_size_bytes:,} bytes)" if report.pdf_uri else ""))
    if report.pdf_problem:
        context.log.warning(report.pdf_problem)
    remote = narrative.provider != "offline"  # the offline narrative has no model, tokens, cost or cache
    return dg.MaterializeResult(
        metadata=present({
            **report_metadata(report),
            "sample_status": report.status,
            "size_bytes": report.size_bytes,
            "pdf_size_bytes": report.pdf_size_bytes,
            "pdf": None if report.pdf_uri else report.pdf_problem,
            "narrative_provider": narrative.provider,
            "narrative_model": narrative.model,
            "narrative_input_tokens": count(narrative.input_tokens),
            "narrative_output_tokens": count(narrative.output_tokens),
            "narrative_cost (USD)": number(narrative.cost_usd, 6),
            "narrative_latency (s)": number(narrative.latency_s) if remote else None,
            "narrative_cached": narrative.cached if remote else None,
        })
    )
