"""The per-sample report: one self-contained HTML page a reviewer signs off."""


import datetime as dt
import platform
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any

import dagster as dg

from genoflow_dagster import __version__, verdicts, zones
from genoflow_dagster.assets.artifacts import read_json, read_parquet
from genoflow_dagster.assets.ingestion import inventory_key, validation_key
from genoflow_dagster.assets.qc import qc_metrics, summary_key
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.assets.variants import (
    manifest_key,
    variant_results,
    variants_summary_key,
    variants_table_key,
)
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.reports.render import render_sample_report
from genoflow_dagster.resources.ai import AIProvider, Narrative
from genoflow_dagster.resources.storage import Storage

REPORTS = "reports"
MAX_VARIANT_ROWS = 500  # the parquet table holds them all; the page stays readable


def tool_versions() -> dict[str, str]:
    versions = {"genoflow": __version__, "python": platform.python_version()}
    for dist in ("dagster", "pysam", "mappy", "numpy", "pandas"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:  # pragma: no cover
            continue
    return versions


def gather_sample(storage: Storage, sample_id: str) -> dict[str, Any]:
    """Everything stored for a sample so far, read back from its artifacts (missing stages → None)."""

    def maybe(key: str) -> Any:
        return read_json(storage, key) if storage.exists(key) else None

    qc = maybe(summary_key(sample_id))
    file_metrics = []
    for entry in (qc or {}).get("files", []):
        file_metrics.append({**entry, "metrics": maybe(entry["metrics_key"]) or {}})
    variants = None
    if storage.exists(variants_table_key(sample_id)):
        variants = read_parquet(storage, variants_table_key(sample_id))
    return {
        "inventory": maybe(inventory_key(sample_id)),
        "validation": maybe(validation_key(sample_id)),
        "qc": qc,
        "file_metrics": file_metrics,
        "aligned": maybe(manifest_key(sample_id, "aligned_reads")),
        "calls": maybe(manifest_key(sample_id, "variant_calls")),
        "variant_summary": maybe(variants_summary_key(sample_id)),
        "variants": variants,
    }


def gate_outcomes(sample: dict[str, Any]) -> list[verdicts.GateOutcome]:
    """The gate outcomes each stage stored with its artifact, in pipeline order (never decided here)."""
    return verdicts.stored_outcomes(sample.get("validation"), sample.get("qc"), sample.get("aligned"),
                                    sample.get("variant_summary"))


def sample_status(sample: dict[str, Any]) -> tuple[str, str | None]:
    """The sample's status over its stored gate outcomes, and the blocking gate that stopped it (or None)."""
    verdict = verdicts.sample_verdict(gate_outcomes(sample))
    return verdict.status, verdict.stopped_at


def sample_headline(sample: dict[str, Any]) -> verdicts.Headline:
    """The sample's headline numbers (verdicts.headline_numbers) from its stored artifacts."""
    reads = [f["metrics"] for f in sample.get("file_metrics", []) if f["format"] == "fastq"]
    stored = sample.get("variant_summary") or {}
    return verdicts.headline_numbers(reads, (sample.get("aligned") or {}).get("metrics"),
                                     stored.get("vcf_metrics"), stored.get("summary"))


@dataclass(frozen=True)
class WrittenReport:
    uri: str
    size_bytes: int
    status: str  # the sample's status the report shows (verdicts.sample_verdict)
    narrative: Narrative


def write_sample_report(storage: Storage, sample_id: str, *, run_id: str,
                        narrator: AIProvider | None) -> WrittenReport:
    """Render the sample's report from what its stages stored and write it to reports/<sample>/report.html.

    `narrator` None (a stage writing the report of a sample its gate just stopped) uses the offline
    narrative: the facts of a stop need no model, and no provider is called for a sample that stops.
    """
    sample = gather_sample(storage, sample_id)
    narrative = (narrator or AIProvider(provider="offline")).narrate(narrative_inputs(sample))
    ctx = report_context(sample_id, sample, narrative, run_id=run_id)
    key = zones.report_key(sample_id, "report.html")
    obj = storage.put_bytes(render_sample_report(ctx).encode("utf-8"), key)
    return WrittenReport(storage.uri(key), obj.size, ctx["sample_status"], narrative)


@dg.asset(
    group_name=REPORTS,
    partitions_def=samples_partitions,
    deps=[variant_results, qc_metrics],
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


def narrative_inputs(sample: dict[str, Any]) -> dict[str, Any]:
    """Aggregate numbers only (the sample's headline numbers and its gate verdict); the AI resource
    de-identifies again before anything is sent."""
    qc = sample.get("qc") or {}
    verdict = verdicts.sample_verdict(gate_outcomes(sample))
    headline = sample_headline(sample)
    return {
        "qc_status": verdict.status if verdict.status != verdicts.NOT_RUN else None,
        "stopped_at": verdict.stopped_at,
        "qc_profile": qc.get("profile"),
        "qc_failing_modules": [m["module"] for m in qc.get("failing", [])],
        "qc_warning_modules": [m["module"] for m in qc.get("warnings", [])],
        **{name: getattr(headline, name) for name in (
            "total_reads", "q30_percent", "gc_percent", "mean_quality", "duplication_percent", "mapped_percent",
            "properly_paired_percent", "mean_depth", "breadth_10x")},
        "variants_total": headline.variants,
        "variants_snvs": headline.snvs,
        "variants_indels": headline.indels,
        "variants_ts_tv": headline.ts_tv,
        "variants_het_hom_ratio": headline.het_hom_ratio,
        "variants_known": headline.known,
        "variants_novel": headline.novel,
        "variants_genes_hit": ((sample.get("variant_summary") or {}).get("summary") or {}).get("genes_hit"),
    }


def gate_rows(outcomes: list[verdicts.GateOutcome]) -> list[dict[str, Any]]:
    """The report's gate table: one row per stored outcome, its status as stored (NOT GRADED stays that)."""
    return [{"check": o.gate, "asset": o.asset, "severity": "ERROR (blocking)" if o.blocking else "WARN",
             "status": o.status, "label": o.label, "passed": o.passed, "detail": o.detail(),
             "profile": o.profile} for o in outcomes]


def report_context(sample_id: str, sample: dict[str, Any], narrative: Any, *, run_id: str) -> dict[str, Any]:
    variants = sample.get("variants")
    rows = [] if variants is None else variants.head(MAX_VARIANT_ROWS).to_dict("records")
    inventory = sample.get("inventory") or {"files": []}
    qc = sample.get("qc") or {}
    outcomes = gate_outcomes(sample)
    verdict = verdicts.sample_verdict(outcomes)
    headline = sample_headline(sample)
    stored_summary = (sample.get("variant_summary") or {}).get("summary")
    # the call set's ratios as its gate graded them (bcftools-stats metrics), not recounted from the table
    variant_summary = ({**stored_summary, "ts_tv": headline.ts_tv, "het": headline.het, "hom_alt": headline.hom_alt,
                        "het_hom_ratio": headline.het_hom_ratio, "call_rate": headline.call_rate}
                       if stored_summary else None)
    stopped_by = verdict.stopped_by
    return {
        "sample_id": sample_id,
        "sample_status": verdict.status,
        "stopped_at": verdict.stopped_at,
        "stopped": None if stopped_by is None else {
            "gate": stopped_by.gate, "asset": stopped_by.asset, "summary": stopped_by.summary,
            "problems": list(stopped_by.problems), "profile": stopped_by.profile,
            "modules": [m for m in stopped_by.modules if m.status == verdicts.FAIL]},
        "run_id": run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "qc": qc,
        "headline": headline.to_dict(),
        "alignment": (sample.get("aligned") or {}).get("metrics"),
        "alignment_source": (sample.get("aligned") or {}).get("source"),
        "variant_summary": variant_summary,
        "variant_source": (sample.get("calls") or {}).get("source"),
        "variants": rows,
        "variants_total": 0 if variants is None else len(variants),
        "gates": gate_rows(outcomes),
        "file_metrics": sample.get("file_metrics", []),
        "validation": (sample.get("validation") or {}).get("files", []),
        "validation_warnings": (sample.get("validation") or {}).get("warnings", []),
        "validation_mode": (sample.get("validation") or {}).get("validation_mode", "default"),
        "provenance": {
            "inputs": [{k: f[k] for k in ("name", "format", "size_bytes", "sha256")} for f in inventory["files"]],
            "tools": tool_versions(),
            "profile": (f"{qc.get('profile')} v{qc.get('profile_version')} (from {qc.get('profile_source')})"
                        if qc else None),
            "run_id": run_id,
        },
        "narrative": narrative,
    }
