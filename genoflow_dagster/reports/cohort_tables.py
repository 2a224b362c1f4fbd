"""The cohort tables' rows for one sample, from its stored record (plain Python).

A sample stopped by a gate still has its row, with the gate that stopped it: every status and problem is the
one its stages stored (verdicts.py), never decided again here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from genoflow_dagster import verdicts
from genoflow_dagster.sample_record import QCSummary, SampleRecord

VERDICT_COLUMNS = ["sample_id", "gate", "gate_status", "blocking", "file", "format", "module", "status", "value",
                   "warn", "fail", "message", "profile", "profile_version"]


def summary_row(sample: SampleRecord) -> dict[str, Any]:
    """One sample's row of the cohort QC summary: its status and stop from the stored gate outcomes, its
    headline numbers."""
    files = sample.validation.files if sample.validation else ()
    outcomes = sample.gate_outcomes()
    verdict = verdicts.sample_verdict(outcomes)
    headline = sample.headline()
    not_graded = [f"{o.gate}: {o.not_graded_reason}" for o in outcomes if not o.graded]
    return {
        "sample_id": sample.sample_id,
        "status": verdict.status,
        "stopped_at": verdict.stopped_at,
        "failing": "; ".join(verdict.problems()) or None,
        "not_graded": "; ".join(not_graded) or None,
        "files": len(files),
        "quarantined": sum(1 for f in files if not f.valid),
        "total_reads": headline.total_reads,
        "q30_percent": headline.q30_percent,
        "gc_percent": headline.gc_percent,
        "contamination_percent": contamination_percent(sample.qc),
        "mapped_percent": headline.mapped_percent,
        "mean_depth": headline.mean_depth,
        "variants": headline.variants,
        "ts_tv": headline.ts_tv,
        "profile": sample.qc.profile if sample.qc else None,
    }


def verdict_rows(sample: SampleRecord, module_rows: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The sample's rows of the cohort verdict table: one per stored gate outcome (`module` empty, `status`
    the gate's), then each graded QC module (qc_metrics' verdict.parquet) under its gate. A sample stopped
    before QC still has its gate rows."""
    outcomes = sample.gate_outcomes()
    by_gate = {o.gate: o for o in outcomes}
    rows = [{"sample_id": sample.sample_id, "gate": o.gate, "gate_status": o.status, "blocking": o.blocking,
             "file": None, "format": None, "module": None, "status": o.status, "value": None, "warn": None,
             "fail": None, "message": o.detail(), "profile": o.profile, "profile_version": None}
            for o in outcomes]
    within = by_gate.get(verdicts.QC_WITHIN_PROFILE)
    for module in ([] if module_rows is None else module_rows.to_dict("records")):
        rows.append({**{str(k): v for k, v in module.items()}, "gate": verdicts.QC_WITHIN_PROFILE,
                     "gate_status": within.status if within else None, "blocking": True})
    return rows


def contamination_percent(qc: QCSummary | None) -> float | None:
    """The screened share of the sample's first screened read file (R1), None when not screened."""
    for entry in qc.files if qc else ():
        value = (entry.contamination or {}).get("contamination_percent")
        if value is not None:
            return float(value)
    return None
