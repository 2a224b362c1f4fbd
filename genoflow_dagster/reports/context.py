"""What a sample's report shows, from its stored record: the dict `render.render_sample_report` takes, and the
aggregate numbers the narrative is written from. Plain Python: every verdict is the one each stage stored.
"""

from __future__ import annotations

import datetime as dt
import platform
from importlib import metadata as importlib_metadata
from typing import Any

from genoflow_dagster import __version__, verdicts
from genoflow_dagster.sample_record import ReferenceFile, SampleRecord

MAX_VARIANT_ROWS = 500  # the parquet table holds them all; the page stays readable
_NARRATED_HEADLINE = ("total_reads", "q30_percent", "gc_percent", "mean_quality", "duplication_percent",
                      "mapped_percent", "properly_paired_percent", "mean_depth", "breadth_10x")


def tool_versions() -> dict[str, str]:
    versions = {"genoflow": __version__, "python": platform.python_version()}
    for dist in ("dagster", "pysam", "mappy", "numpy", "pandas"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:  # pragma: no cover
            continue
    return versions


def narrative_inputs(sample: SampleRecord) -> dict[str, Any]:
    """Aggregate numbers only (the sample's headline numbers and its gate verdict); the AI resource
    de-identifies again before anything is sent."""
    qc = sample.qc
    verdict = sample.verdict()
    headline = sample.headline()
    return {
        "qc_status": verdict.status if verdict.status != verdicts.NOT_RUN else None,
        "stopped_at": verdict.stopped_at,
        "qc_profile": qc.profile if qc else None,
        "qc_failing_modules": [m["module"] for m in qc.failing] if qc else [],
        "qc_warning_modules": [m["module"] for m in qc.warnings] if qc else [],
        **{name: getattr(headline, name) for name in _NARRATED_HEADLINE},
        "variants_total": headline.variants,
        "variants_snvs": headline.snvs,
        "variants_indels": headline.indels,
        "variants_ts_tv": headline.ts_tv,
        "variants_het_hom_ratio": headline.het_hom_ratio,
        "variants_known": headline.known,
        "variants_novel": headline.novel,
        "variants_genes_hit": sample.variant_results.summary.get("genes_hit") if sample.variant_results else None,
    }


def reference_rows(sample: SampleRecord) -> list[dict[str, Any]]:
    """The reference data the sample's results rest on, as the stages that used them stored it: the genome
    (aligned_reads, else qc_metrics' reference-consistency check), the gene annotation and the known sites
    (variant_results). A stage that has not run, or stored its results before these were recorded, adds
    no row; one that ran without the file says so (`source` None: "not used")."""
    genome = (sample.aligned.reference_genome if sample.aligned else None) or (
        sample.qc.reference_genome if sample.qc else None)
    results = sample.variant_results
    used: list[tuple[str, ReferenceFile | None]] = [
        ("reference genome", genome),
        ("gene annotation", results.annotation if results else None),
        ("known sites", results.known_sites if results else None),
    ]
    return [{"what": what + (f" ({ref.name})" if ref.name else ""), "name": ref.name, "source": ref.source,
             "sha256": ref.sha256} for what, ref in used if ref is not None]


def run_rows(sample: SampleRecord, *, report_run_id: str) -> list[dict[str, Any]]:
    """One row per step the sample went through: the Dagster run that computed what that step stored (a
    step re-used from an earlier run names that run), and the run writing this report."""
    inventory_runs = sorted({f.run_id for f in sample.inventory.files}) if sample.inventory else []
    steps: list[tuple[str, object | None, str | None]] = [
        ("raw_files", sample.inventory, ", ".join(inventory_runs) or None),
        ("validated_files", sample.validation, sample.validation.run_id if sample.validation else None),
        ("qc_metrics", sample.qc, (sample.qc.run_id or None) if sample.qc else None),
        ("aligned_reads", sample.aligned, sample.aligned.run_id if sample.aligned else None),
        ("variant_calls", sample.calls, sample.calls.run_id if sample.calls else None),
        ("variant_results", sample.variant_results,
         sample.variant_results.run_id if sample.variant_results else None),
    ]
    rows = [{"step": step, "run_id": run_id} for step, stored, run_id in steps if stored is not None]
    return [*rows, {"step": "sample_report", "run_id": report_run_id}]


def gate_rows(outcomes: list[verdicts.GateOutcome]) -> list[dict[str, Any]]:
    """The report's gate table: one row per stored outcome, its status as stored (NOT GRADED stays that)."""
    return [{"check": o.gate, "asset": o.asset, "severity": "ERROR (blocking)" if o.blocking else "WARN",
             "status": o.status, "label": o.label, "passed": o.passed, "detail": o.detail(),
             "profile": o.profile} for o in outcomes]


def report_context(sample: SampleRecord, narrative: Any, *, run_id: str) -> dict[str, Any]:
    """The template's context (see render.py): the stored artifacts as the page shows them."""
    variants = sample.variants
    rows = [] if variants is None else variants.head(MAX_VARIANT_ROWS).to_dict("records")
    qc = sample.qc
    outcomes = sample.gate_outcomes()
    verdict = verdicts.sample_verdict(outcomes)
    headline = sample.headline()
    stored_summary = sample.variant_results.summary if sample.variant_results else None
    # the call set's ratios as its gate graded them (bcftools-stats metrics), not recounted from the table
    variant_summary = ({**stored_summary, "ts_tv": headline.ts_tv, "het": headline.het, "hom_alt": headline.hom_alt,
                        "het_hom_ratio": headline.het_hom_ratio, "call_rate": headline.call_rate}
                       if stored_summary else None)
    stopped_by = verdict.stopped_by
    validation = sample.validation
    return {
        "sample_id": sample.sample_id,
        "sample_status": verdict.status,
        "stopped_at": verdict.stopped_at,
        "stopped": None if stopped_by is None else {
            "gate": stopped_by.gate, "asset": stopped_by.asset, "summary": stopped_by.summary,
            "problems": list(stopped_by.problems), "profile": stopped_by.profile,
            "modules": [m for m in stopped_by.modules if m.status == verdicts.FAIL]},
        "run_id": run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "qc": qc.to_json() if qc else {},
        "headline": headline.to_dict(),
        "alignment": sample.aligned.metrics if sample.aligned else None,
        "alignment_source": sample.aligned.source if sample.aligned else None,
        "variant_summary": variant_summary,
        "variant_source": sample.calls.source if sample.calls else None,
        "variants": rows,
        "variants_total": 0 if variants is None else len(variants),
        "gates": gate_rows(outcomes),
        "file_metrics": [{**f.entry.to_json(), "metrics": f.metrics} for f in sample.file_metrics],
        "validation": [f.to_json() for f in validation.files] if validation else [],
        "validation_warnings": validation.warnings if validation else [],
        "validation_mode": validation.validation_mode if validation else "default",
        "provenance": {
            "inputs": [{"name": f.name, "format": f.format, "size_bytes": f.size_bytes, "sha256": f.sha256}
                       for f in (sample.inventory.files if sample.inventory else ())],
            "tools": tool_versions(),
            "profile": f"{qc.profile_label} (from {qc.profile_source})" if qc else None,
            "reference_data": reference_rows(sample),
            "runs": run_rows(sample, report_run_id=run_id),
            "run_id": run_id,
        },
        "narrative": narrative,
    }
