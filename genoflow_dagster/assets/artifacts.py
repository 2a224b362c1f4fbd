"""Small helpers the asset modules share: gate check results, the FAIL report of a stopped sample, scratch
folders, metadata tables. Asset modules import this module and `sample_record`, never each other.

Large files never pass through an IO manager: assets write artifacts to the
keys `zones` gives them (read and written by `sample_record`) and hand downstream
assets nothing but those keys.
"""


import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from genoflow_dagster import settings, verdicts, zones
from genoflow_dagster.assets.metadata import table
from genoflow_dagster.formats.io import sha256_file_cached
from genoflow_dagster.maintenance import RunState, scratch_folder_name
from genoflow_dagster.references import added_reference_name
from genoflow_dagster.reports.context import narrative_inputs, report_context
from genoflow_dagster.reports.multiqc_inputs import SampleArtifacts, read_sample_artifacts, write_sample_inputs
from genoflow_dagster.reports.pdf import PdfUnavailable, html_to_pdf
from genoflow_dagster.reports.render import render_sample_report
from genoflow_dagster.resources.ai import AIProvider, Narrative
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.sample_record import (
    NOT_USED,
    ReferenceFile,
    SampleRecord,
    read_json,
    read_parquet,
    read_sample,
    write_json,
    write_parquet,
)

# JSON and parquet helpers live in sample_record; named here too for the modules that wrote artifacts through
# this one (the reference assets, the demo)
__all__ = ["read_json", "read_parquet", "write_json", "write_parquet"]

COPY_CHUNK = 8 * 1024 * 1024
MULTIQC_STAGE = "multiqc"  # processed/<sample>/multiqc/: the sample's MultiQC inputs


def reference_file(path: Path | None, sha256: str | None = None) -> ReferenceFile:
    """The identity of a reference file a stage used, for its record: path, SHA-256 (given when the stage
    has it, else remembered per file version, so a large file is hashed once), and the name it was added
    under. `path` None: the stage ran without it."""
    if path is None:
        return NOT_USED
    digest = sha256 or sha256_file_cached(path, settings.reference_cache_dir())
    return ReferenceFile(source=str(path), sha256=digest, name=added_reference_name(path))


def gate_check_result(outcome: verdicts.GateOutcome) -> dg.AssetCheckResult:
    """A gate's check result, read from its stored outcome (verdicts.py decides; this only translates)."""
    fields = outcome.check_fields()
    metadata = dict(fields["metadata"])
    metadata["problems"] = dg.MetadataValue.md(metadata["problems"])
    if outcome.modules:  # the QC modules outside the profile, as a table the UI sorts
        metadata["modules"] = table(
            [{"file": m.file, "module": m.module, "status": m.status, "value": m.value,
              "threshold": _threshold(m.threshold), "message": m.message} for m in outcome.modules],
            [("file", "string"), ("module", "string"), ("status", "string"), ("value", "float"),
             ("threshold", "string"), ("message", "string")])
    metadata["outcome"] = dg.MetadataValue.json(outcome.to_dict())  # the stored outcome, for the notifier
    return dg.AssetCheckResult(
        check_name=fields["check_name"], passed=fields["passed"], description=fields["description"],
        severity=dg.AssetCheckSeverity.ERROR if fields["severity"] == "ERROR" else dg.AssetCheckSeverity.WARN,
        metadata=metadata)


def _threshold(bound: Any) -> str | None:
    """A module's bound as it reads: 30, or 2.0-2.1 for a range."""
    if bound is None:
        return None
    if isinstance(bound, list | tuple):
        return "-".join(f"{b:g}" if isinstance(b, int | float) else str(b) for b in bound)
    return f"{bound:g}" if isinstance(bound, int | float) else str(bound)


@dataclass(frozen=True)
class WrittenReport:
    uri: str
    size_bytes: int
    status: str  # the sample's status the report shows (verdicts.sample_verdict)
    narrative: Narrative
    pdf_uri: str | None = None  # None when the PDF could not be printed (`pdf_problem` says why)
    pdf_size_bytes: int | None = None
    pdf_problem: str | None = None


def write_sample_report(storage: Storage, sample_id: str, *, run_id: str,
                        narrator: AIProvider | None) -> WrittenReport:
    """Render the sample's report from what its stages stored and write it to reports/<sample>/report.html,
    and the same page printed to reports/<sample>/report.pdf (each written whole or not at all).

    `narrator` None (a stage writing the report of a sample its gate just stopped) uses the offline
    narrative: the facts of a stop need no model, and no provider is called for a sample that stops.
    When WeasyPrint cannot be loaded (a missing system Pango) the HTML is still written; `pdf_problem`
    says what to install, and the caller logs it.
    """
    sample = read_sample(storage, sample_id)
    narrative = (narrator or AIProvider(provider="offline")).narrate(narrative_inputs(sample))
    ctx = report_context(sample, narrative, run_id=run_id)
    html = render_sample_report(ctx)
    key = zones.sample_report_key(sample_id)
    obj = storage.put_bytes(html.encode("utf-8"), key)
    written = WrittenReport(storage.uri(key), obj.size, ctx["sample_status"], narrative)
    write_multiqc_inputs(storage, sample_id, sample)
    try:
        pdf = html_to_pdf(html)
    except PdfUnavailable as exc:
        return dataclasses.replace(written, pdf_problem=f"no PDF report for {sample_id}: {exc}")
    pdf_key = zones.sample_report_pdf_key(sample_id)
    pdf_obj = storage.put_bytes(pdf, pdf_key)
    return dataclasses.replace(written, pdf_uri=storage.uri(pdf_key), pdf_size_bytes=pdf_obj.size)


def multiqc_inputs_prefix(sample_id: str) -> str:
    """Where a sample's MultiQC inputs are kept: `processed/<sample>/multiqc/`."""
    return f"{zones.PROCESSED}/{zones.validate_sample_id(sample_id)}/{MULTIQC_STAGE}/"


def write_multiqc_inputs(storage: Storage, sample_id: str, record: SampleRecord | None = None) -> list[str]:
    """Render the sample's MultiQC inputs from what its stages stored (FastQC, samtools and bcftools texts,
    GenoFlow's verdict row) and keep them under `processed/<sample>/multiqc/`, removing what an earlier run left
    there and this one did not write (a re-run stopped earlier has no calls). Written with the sample's report,
    once per run, so the cohort's MultiQC only reads them and a lab's own MultiQC finds them; their keys.
    `record`: the sample's record when the caller has read it already."""
    prefix = multiqc_inputs_prefix(sample_id)
    earlier = {obj.key for obj in storage.list(prefix)}
    with tempfile.TemporaryDirectory(dir=settings.work_dir(), prefix="multiqc-") as tmp:
        keys = []
        artifacts = (SampleArtifacts.from_record(record) if record is not None
                     else read_sample_artifacts(storage, sample_id))
        for path in write_sample_inputs(artifacts, Path(tmp)):
            keys.append(zones.processed_key(sample_id, MULTIQC_STAGE, path.name))
            storage.put_file(path, keys[-1])
    for stale in sorted(earlier - set(keys)):
        storage.delete_derived(stale)
    return keys


def write_report_if_stopped(context: dg.AssetExecutionContext, storage: Storage, sample_id: str,
                            gates: list[verdicts.GateOutcome]) -> WrittenReport | None:
    """When one of this asset's blocking gates fails, write the sample's FAIL report now, from the stored
    outcomes: Dagster skips sample_report downstream of a failed blocking check, and a stopped sample must
    not be left without a report. Returns the written report, or None when the sample goes on.
    Every failed or warned gate is logged first, one plain line per module outside the profile."""
    for gate in gates:
        for line in verdicts.gate_log_lines(gate, sample_id):
            (context.log.error if gate.stops_sample else context.log.warning)(line)
    if not any(g.stops_sample for g in gates):
        return None
    report = write_sample_report(storage, sample_id, run_id=context.run.run_id, narrator=None)
    context.log.error(f"{sample_id} stopped at {', '.join(g.gate for g in gates if g.stops_sample)}; "
                      f"{report.status.upper()} report written to {report.uri}"
                      + (f" and {report.pdf_uri}" if report.pdf_uri else ""))
    if report.pdf_problem:
        context.log.warning(report.pdf_problem)
    return report


def report_metadata(report: WrittenReport | None) -> dict[str, Any]:
    """Links to a written report (HTML, and the PDF when it could be printed) for an asset's metadata."""
    if report is None:
        return {}
    links: dict[str, Any] = {"report_uri": dg.MetadataValue.path(report.uri)}
    if report.pdf_uri:
        links["report_pdf_uri"] = dg.MetadataValue.path(report.pdf_uri)
    return links


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as dicts keyed by column name (for metadata tables and rendered pages)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def present(metadata: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata cannot hold None; drop what a stage did not measure."""
    return {k: v for k, v in metadata.items() if v is not None}


SHARED_SCRATCH = "_shared"  # scratch of no sample (no sample id starts with "_")

LIVE_RUN_STATUSES = frozenset({"STARTING", "STARTED", "CANCELING"})


@contextlib.contextmanager
def scratch_dir(prefix: str, *, sample_id: str | None = None, run_id: str | None = None) -> Iterator[Path]:
    """A private temporary folder under the work dir, removed afterwards whatever happens.

    With a sample and run id it is `<work_dir>/<sample>/<run_id>.<prefix>-<random>`, so when the run
    dies before its `finally` (killed, machine lost) the next run of the sample and the maintenance
    job can tell its folder from a live run's and remove it (`genoflow_dagster.maintenance`).
    """
    parent = settings.work_dir() / (zones.validate_sample_id(sample_id) if sample_id else SHARED_SCRATCH)
    name = scratch_folder_name(run_id, prefix) if run_id else f"{prefix}-"
    for attempt in range(3):  # a sweep may remove the empty sample folder between mkdir and mkdtemp
        parent.mkdir(parents=True, exist_ok=True)
        try:
            path = Path(tempfile.mkdtemp(prefix=name, dir=parent))
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_state_from_instance(instance: Any) -> Callable[[str], RunState]:
    """`run_state` for `genoflow_dagster.maintenance`: a run is alive while the instance says it is
    starting, running or being cancelled, over in any other status it records, unknown when absent."""

    def run_state(run_id: str) -> RunState:
        try:
            run = instance.get_run_by_id(run_id)
        except Exception:  # a malformed id (older layout names) is a run this instance cannot know
            return "unknown"
        if run is None:
            return "unknown"
        return "alive" if run.status.value in LIVE_RUN_STATUSES else "over"

    return run_state


def download_hashing(storage: Storage, key: str, dest: Path) -> tuple[str, int]:
    """Stream an object to `dest`, returning (sha256 hex, size) computed on the way."""
    digest = hashlib.sha256()
    size = 0
    with storage.open_read(key) as src, open(dest, "wb") as out:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table for Dagster metadata (rendered in the UI)."""
    if not rows:
        return "_none_"
    head = "| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |\n"
    body = "".join(
        "| " + " | ".join(_cell(row.get(col)) for col in columns) + " |\n" for row in rows
    )
    return head + body


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
