"""A sample's QC from its files' metrics: each file graded by the sample's profile, the read-pair figures, the
headline numbers, the two QC gates and the verdict table's rows. Plain Python over `sample_record` records.

`assets/qc.py` computes (or reads back) each file's metrics and contamination screen, then calls `summarise`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from genoflow_dagster import verdicts
from genoflow_dagster.qc.pairs import pair_figures
from genoflow_dagster.qc.profiles import QCProfile, grade
from genoflow_dagster.qc.reference_match import FAIL
from genoflow_dagster.sample_record import JsonDict, QCFile, QCSummary
from genoflow_dagster.samples import ReadGroup

# Bump when metric definitions change, so cached per-file metrics are recomputed (it is part of their key).
METRICS_VERSION = "1"

VERDICT_TABLE_COLUMNS = ["sample_id", "file", "format", "module", "status", "value", "warn", "fail", "message",
                         "profile", "profile_version"]

# Per-format counts summed over a sample's files; read percentages come from verdicts.headline_numbers.
HEADLINE_FIELDS = {
    "fastq": ("total_reads", "total_bases"),
    "bam": ("total", "mapped_percent", "properly_paired_percent", "mean_depth"),
    "cram": ("total", "mapped_percent", "properly_paired_percent", "mean_depth"),
    "sam": ("total", "mapped_percent", "properly_paired_percent", "mean_depth"),
    "vcf": ("records", "snps", "indels", "ts_tv"),
}
_SUMMED = ("total_reads", "total_bases", "total", "records", "snps", "indels")
_STATUS_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class MeasuredFile:
    """One valid file's metrics (`qc --json` fields) and, for a FASTQ, its contamination screen (the result,
    or why it was not computed: `contamination_key` None then)."""

    name: str
    format: str
    sha256: str
    metrics_key: str
    metrics: JsonDict
    contamination_key: str | None = None
    contamination: JsonDict | None = None


@dataclass(frozen=True, slots=True)
class SampleQC:
    """What qc_metrics stores: the summary (qc.json) and the verdict table's rows (verdict.parquet)."""

    summary: QCSummary
    verdict_rows: list[JsonDict]

    def verdict_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.verdict_rows, columns=VERDICT_TABLE_COLUMNS)


def worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 0), default="pass")


def summarise(sample_id: str, files: Sequence[MeasuredFile], *, read_groups: Sequence[ReadGroup],
              choice: verdicts.ProfileChoice, profile: QCProfile, reference_check: JsonDict,
              run_id: str) -> SampleQC:
    """Grade every measured file with the sample's profile (chosen once: `verdicts.choose_profile`) and decide
    the two QC gates (reference consistency, within profile) from the grades and the stored reference check."""
    graded: list[QCFile] = []
    rows: list[JsonDict] = []
    for f in files:
        screened = {"contamination": f.contamination} if f.contamination is not None else {}
        verdict = grade({**f.metrics, **screened}, profile)
        graded.append(QCFile(name=f.name, format=f.format, sha256=f.sha256, metrics_key=f.metrics_key,
                             verdict=verdict, contamination_key=f.contamination_key, contamination=f.contamination))
        rows += verdict_rows(sample_id, f.name, f.format, verdict)
    gates = (verdicts.reference_consistent(reference_check),
             verdicts.qc_within_profile([g.to_json() for g in graded], choice.label))
    summary = QCSummary(
        sample_id=sample_id, status=worst([g.status for g in graded]), profile=profile.name,
        profile_version=profile.version, profile_source=choice.source,
        profile_choice=choice.choice,  # what load_profile() takes: later stages grade with the same profile
        gates=gates, headline=verdicts.headline_numbers([f.metrics for f in files if f.format == "fastq"]),
        reference_consistency=reference_check, files=tuple(graded), pairs=read_pair_figures(read_groups, files),
        failing=[r for r in rows if r["status"] == "fail"], warnings=[r for r in rows if r["status"] == "warn"],
        run_id=run_id)
    return SampleQC(summary, rows)


def verdict_rows(sample_id: str, file: str, fmt: str, verdict: JsonDict) -> list[JsonDict]:
    """One row per graded module of a file (the machine-readable verdict table)."""
    return [{"sample_id": sample_id, "file": file, "format": fmt, "module": module["name"],
             "status": module["status"], "value": _as_float(module.get("value")),
             "warn": _as_float(module.get("warn")), "fail": _as_float(module.get("fail")),
             "message": module.get("message") or "", "profile": verdict["profile"],
             "profile_version": str(verdict["profile_version"])} for module in verdict["modules"]]


def read_pair_figures(read_groups: Sequence[ReadGroup], files: Sequence[MeasuredFile]) -> list[JsonDict]:
    """R1-against-R2 figures of each read pair whose mates were both measured (qc.pairs.pair_figures)."""
    metrics = {f.name: f.metrics for f in files}
    return [{"r1": g.r1, "r2": g.r2, **pair_figures(metrics[g.r1], metrics[g.r2])}
            for g in read_groups if g.r2 and g.r1 in metrics and g.r2 in metrics]


def key_numbers(headline: verdicts.Headline, files: Sequence[tuple[str, JsonDict]]) -> dict[str, float]:
    """Headline numbers as floats (asset metadata the UI plots over a partition's materializations).

    Read figures are the sample's headline numbers (verdicts.headline_numbers: base-weighted over R1 and
    R2, as the report and the cohort table show them); counts of other formats are summed over the
    sample's files of that format, an uploaded file's percentages taken from the first one.
    `files` are (format, metrics) in the sample's order.
    """
    numbers: dict[str, float] = {}
    for name in ("q30_percent", "gc_percent", "mean_quality", "duplication_percent"):
        value = getattr(headline, name)
        if value is not None:
            numbers[f"fastq_{name}"] = value
    for fmt, metrics in files:
        for field in HEADLINE_FIELDS.get(fmt, ()):
            value = metrics.get(field)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            name = f"{fmt}_{field}"
            if name in numbers and field in _SUMMED:
                numbers[name] += float(value)
            else:
                numbers.setdefault(name, float(value))
    return numbers


def unreadable_match(file: str, problem: str) -> JsonDict:
    """The reference comparison of a file whose contigs could not be read: a failure naming the file."""
    return {"file": file, "status": FAIL, "message": f"{file}: {problem}", "source": "", "contigs": 0,
            "matched": 0, "m5_compared": 0, "mismatches": []}


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool | int | float):
        return float(value)
    return None
