"""The alignment floors of the sample's QC profile, applied to the BAM that `aligned_reads` produced.

`qc_metrics` grades an uploaded BAM/SAM/CRAM with the profile's `formats:
[alignment]` checks (mapped %, properly paired %, mean depth). Reads that
GenoFlow aligns itself only become a BAM one stage later, so the same checks
grade that BAM here, with the same profile (the one `qc_metrics` chose and
stored; it is never chosen twice). Without this, reads from another genome
map 0% of the time, call nothing, and the sample still reads "QC pass".

A failed mapped-reads floor is almost always the wrong reference (or a sample
of another organism), so the verdict says that in plain words, naming the
reference: "0.0% of reads map to MN908947.3: is this the right reference?".

Plain Python: `aligned_reads` stores the verdict in its manifest; its gate,
the report and the cohort table read it from there.
"""

from __future__ import annotations

from typing import Any

from genoflow_dagster.qc.profiles import QCProfile, grade

NOT_GRADED = "not_graded"


def grade_alignment(metrics: dict[str, Any] | None, profile: QCProfile, *, reference: str) -> dict[str, Any]:
    """Grade the aligned BAM's metrics (as `qc.alignment.alignment_metrics` returns them).

    Returns the `grade()` verdict (`status`, `profile`, `profile_version`, `modules`,
    `not_graded`) plus `failing` and `warnings` (the modules at fail / warn), `reference`
    (how messages name it) and `message`: one plain sentence for the gate, the report
    and the cohort table. No metrics (nothing was aligned) is `not_graded`, with `"graded": False`
    and the `not_graded_reason`.
    """
    if not metrics:
        reason = "the sample has no reads or alignments to align"
        return {"status": NOT_GRADED, "profile": profile.name, "profile_version": profile.version,
                "reference": reference, "modules": [], "not_graded": [], "failing": [], "warnings": [],
                "message": f"not graded: {reason}", "graded": False, "not_graded_reason": reason}
    verdict = grade({**metrics, "format": "bam"}, profile)
    failing = [m for m in verdict["modules"] if m["status"] == "fail"]
    warnings = [m for m in verdict["modules"] if m["status"] == "warn"]
    if failing:
        message = "; ".join(_plain(m, reference) for m in failing)
    else:
        message = f"{verdict['status']} under {profile.name} v{profile.version}"
        if warnings:
            message += ": " + "; ".join(f"{m['name']}: {m['message']}" for m in warnings)
    return {**verdict, "reference": reference, "failing": failing, "warnings": warnings, "message": message}


def _plain(module: dict[str, Any], reference: str) -> str:
    if module.get("metric") == "mapped_percent" and isinstance(module.get("value"), int | float):
        return f"{module['value']:.1f}% of reads map to {reference}: is this the right reference?"
    return f"{module['name']}: {module['message']}"
