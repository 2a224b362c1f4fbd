"""The per-sample report: one self-contained HTML page a reviewer signs off."""


import datetime as dt
import platform
from importlib import metadata as importlib_metadata
from typing import Any

import dagster as dg

from genoflow_dagster import __version__, zones
from genoflow_dagster.assets.artifacts import read_json, read_parquet
from genoflow_dagster.assets.ingestion import inventory_key, validation_key
from genoflow_dagster.assets.qc import CHECK_REFERENCE, CHECK_WITHIN_PROFILE, qc_metrics, summary_key
from genoflow_dagster.assets.variants import (
    CHECK_ALIGNED,
    manifest_key,
    variant_results,
    variants_summary_key,
    variants_table_key,
)
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.reports.render import render_sample_report
from genoflow_dagster.resources.ai import AIProvider
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


def gate_outcomes(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The quality gates as the report shows them, derived from the same artifacts the checks graded."""
    gates: list[dict[str, Any]] = []
    validation = sample.get("validation")
    if validation:
        invalid = [f for f in validation["files"] if not f["valid"]]
        problems = validation.get("pair_problems", []) + validation.get("orphan_mates", [])
        gates.append({"check": "validated_files_usable", "severity": "ERROR (blocking)",
                      "passed": not problems,
                      "detail": "; ".join(str(p.get("message", p)) if isinstance(p, dict) else str(p)
                                          for p in problems) or "inputs usable"})
        gates.append({"check": "validated_files_all_valid", "severity": "WARN",
                      "passed": not invalid,
                      "detail": "; ".join(f"{f['path']}: {f['reason']}" for f in invalid) or "all files valid"})
    qc = sample.get("qc")
    reference_check = (qc or {}).get("reference_consistency")
    if reference_check:
        gates.append({"check": CHECK_REFERENCE, "severity": "ERROR (blocking)", "status": reference_check["status"],
                      "passed": reference_check["status"] != "fail", "detail": reference_check["message"]})
    if qc:
        gates.append({"check": CHECK_WITHIN_PROFILE, "severity": "ERROR (blocking)",
                      "passed": qc["status"] != "fail",
                      "detail": "; ".join(f"{m['module']}: {m['message']}" for m in qc["failing"])
                      or f"{qc['status']} under {qc['profile']}"})
    aligned_verdict = (sample.get("aligned") or {}).get("verdict")
    if aligned_verdict:
        gates.append({"check": CHECK_ALIGNED, "severity": "ERROR (blocking)", "status": aligned_verdict["status"],
                      "passed": aligned_verdict["status"] != "fail", "detail": aligned_verdict["message"]})
    return gates


def sample_status(sample: dict[str, Any]) -> tuple[str, str | None]:
    """The sample's QC status over every stored gate verdict, and the blocking gate that stopped it (or None).

    The worst of the QC profile's verdict and the aligned BAM's; any failed blocking gate makes it
    `fail`, so a sample stopped at any gate is never shown as passing. `not_run` before qc_metrics.
    """
    gates = gate_outcomes(sample)
    stopped = next((g["check"] for g in gates if g["severity"].startswith("ERROR") and not g["passed"]), None)
    if sample.get("qc") is None:
        return "not_run", stopped
    rank = {"pass": 0, "warn": 1, "fail": 2}
    statuses = [sample["qc"]["status"], ((sample.get("aligned") or {}).get("verdict") or {}).get("status")]
    status = max((s for s in statuses if s in rank), key=rank.__getitem__, default="pass")
    return ("fail" if stopped else status), stopped


@dg.asset(
    group_name=REPORTS,
    partitions_def=samples_partitions,
    deps=[variant_results, qc_metrics],
    kinds={"html"},
    description="Self-contained HTML report: QC with plots, gates, variants, provenance and a narrative.",
)
def sample_report(context: dg.AssetExecutionContext, storage: Storage, ai: AIProvider) -> dg.MaterializeResult:
    sample_id = zones.validate_sample_id(context.partition_key)
    sample = gather_sample(storage, sample_id)
    summary_for_ai = narrative_inputs(sample)
    narrative = ai.narrate(summary_for_ai)
    ctx = report_context(sample_id, sample, narrative, run_id=context.run.run_id)
    html = render_sample_report(ctx)
    key = zones.report_key(sample_id, "report.html")
    obj = storage.put_bytes(html.encode("utf-8"), key)
    context.log.info(f"report written to {storage.uri(key)} ({obj.size:,} bytes)")
    return dg.MaterializeResult(
        metadata={
            "report_uri": dg.MetadataValue.path(storage.uri(key)),
            "size_bytes": obj.size,
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
    """Aggregate numbers only; the AI resource de-identifies again before anything is sent."""
    qc = sample.get("qc") or {}
    aligned = (sample.get("aligned") or {}).get("metrics") or {}
    variant_summary = (sample.get("variant_summary") or {}).get("summary") or {}
    reads = [f["metrics"] for f in sample.get("file_metrics", []) if f["format"] == "fastq"]
    first_read = reads[0] if reads else {}
    return {
        "qc_status": qc.get("status"),
        "qc_profile": qc.get("profile"),
        "qc_failing_modules": [m["module"] for m in qc.get("failing", [])],
        "qc_warning_modules": [m["module"] for m in qc.get("warnings", [])],
        "total_reads": sum(m.get("total_reads", 0) for m in reads) if reads else None,
        "q30_percent": first_read.get("q30_percent"),
        "gc_percent": first_read.get("gc_percent"),
        "mean_quality": first_read.get("mean_quality"),
        "duplication_percent": first_read.get("duplication_percent"),
        "mapped_percent": aligned.get("mapped_percent"),
        "properly_paired_percent": aligned.get("properly_paired_percent"),
        "mean_depth": aligned.get("mean_depth"),
        "breadth_10x": aligned.get("breadth_10x"),
        **{f"variants_{'total' if k == 'variants' else k}": v for k, v in variant_summary.items()
           if isinstance(v, int | float)},
    }


def report_context(sample_id: str, sample: dict[str, Any], narrative: Any, *, run_id: str) -> dict[str, Any]:
    variants = sample.get("variants")
    rows = [] if variants is None else variants.head(MAX_VARIANT_ROWS).to_dict("records")
    inventory = sample.get("inventory") or {"files": []}
    qc = sample.get("qc") or {}
    status, stopped_at = sample_status(sample)
    return {
        "sample_id": sample_id,
        "sample_status": status,
        "stopped_at": stopped_at,
        "run_id": run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "qc": qc,
        "alignment": (sample.get("aligned") or {}).get("metrics"),
        "alignment_source": (sample.get("aligned") or {}).get("source"),
        "variant_summary": (sample.get("variant_summary") or {}).get("summary"),
        "variant_source": (sample.get("calls") or {}).get("source"),
        "variants": rows,
        "variants_total": 0 if variants is None else len(variants),
        "gates": gate_outcomes(sample),
        "file_metrics": sample.get("file_metrics", []),
        "validation": (sample.get("validation") or {}).get("files", []),
        "validation_warnings": (sample.get("validation") or {}).get("warnings", []),
        "validation_mode": (sample.get("validation") or {}).get("validation_mode", "default"),
        "provenance": {
            "inputs": [{k: f[k] for k in ("name", "format", "size_bytes", "sha256")} for f in inventory["files"]],
            "tools": tool_versions(),
            "profile": f"{qc.get('profile')} v{qc.get('profile_version')}" if qc else None,
            "run_id": run_id,
        },
        "narrative": narrative,
    }
