"""What happened to a landed upload: its sample's latest pipeline run and the gate outcomes stored for it.

The only Dagster the portal touches: the run is read from the instance (`instance_getter()`), by the
`dagster/partition` tag every sample run carries (the landing sensor's, `genoflow run`'s, the demo's).
The gate outcomes are the ones each stage stored (`sample_record.read_sample`), never re-derived here,
and only those of runs that started after the upload landed (each record names its run).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from genoflow_dagster import zones
from genoflow_dagster.portal.uploads import CANCELLED, FAILED, LANDED, Upload

SAMPLE_PIPELINE_JOB = "sample_pipeline"  # genoflow_dagster.jobs.SAMPLE_PIPELINE_JOB (that module imports Dagster)

# The portal's four words for a run, from Dagster's run statuses.
_RUN_STATE = {"QUEUED": "queued", "NOT_STARTED": "queued", "STARTING": "processing", "STARTED": "processing",
              "CANCELING": "processing", "SUCCESS": "completed", "FAILURE": "failed", "CANCELED": "failed"}

InstanceGetter = Callable[[], Any]
ReportLink = Callable[[str], tuple[str, int]]  # a storage key -> (a time-limited URL, its expiry)

if TYPE_CHECKING:
    from genoflow_dagster.resources.storage import Storage


def latest_sample_run(instance: Any, sample_id: str) -> dict[str, Any] | None:
    """The sample's most recent `sample_pipeline` run as plain fields, or None when it has none."""
    import dagster as dg

    records = instance.get_run_records(dg.RunsFilter(job_name=SAMPLE_PIPELINE_JOB,
                                                     tags={"dagster/partition": sample_id}), limit=1)
    if not records:
        return None
    record = records[0]
    run = record.dagster_run
    step = current_step(instance, run.run_id) if run.status == dg.DagsterRunStatus.STARTED else None
    return {"run_id": run.run_id, "status": run.status.value, "created": record.create_timestamp.timestamp(),
            "trigger": run.tags.get("genoflow/trigger"), "step": step}


def current_step(instance: Any, run_id: str) -> str | None:
    """The step the run is at (the latest started one not finished: an asset name such as `qc_metrics`), or
    None between steps."""
    running = [s for s in instance.get_run_step_stats(run_id) if s.start_time is not None and s.end_time is None]
    return max(running, key=lambda s: s.start_time).step_key if running else None


def _run_created(instance: Any, run_id: str) -> float | None:
    record = instance.get_run_record_by_id(run_id) if run_id else None
    return None if record is None else record.create_timestamp.timestamp()


def gates_of_runs_since(storage: Storage, sample_id: str, instance: Any, run: dict[str, Any],
                        landed: float) -> tuple[list[dict[str, Any]], str | None]:
    """The gate outcomes stored by `run` or by another run created after `landed` (a re-execution), in
    pipeline order, and a note in words when older ones were left out.

    Each stage's record names the run that wrote it; a record of a run from before the upload landed (or
    of no recorded run) judged other files, so it is not shown as this upload's verdict."""
    from genoflow_dagster.sample_record import read_sample

    record = read_sample(storage, sample_id)
    created: dict[str, float | None] = {run["run_id"]: run["created"]}
    stale: list[str] = []
    kept: dict[str, Any] = {}
    for field in ("validation", "qc", "aligned", "variant_results"):
        stage = getattr(record, field)
        if stage is None or not stage.gates:
            continue
        run_id = stage.run_id or ""
        if run_id not in created:
            created[run_id] = _run_created(instance, run_id)
        started = created[run_id]
        if started is not None and started >= landed:
            continue
        kept[field] = None
        stale.append(run_id)
    shown = dataclasses.replace(record, **kept) if kept else record
    gates = [{"gate": g.gate, "status": g.status, "summary": g.summary, "problems": list(g.problems),
              "blocking": g.blocking} for g in shown.gate_outcomes()]
    note = None
    if stale:
        runs = ", ".join(sorted({r[:8] for r in stale if r})) or "not recorded"
        note = (f"some gate outcomes stored for this sample come from an earlier run (run {runs}) that started "
                "before this upload landed; they are not shown until this upload's run replaces them")
    return gates, note


def upload_status(upload: Upload, storage: Storage, instance_getter: InstanceGetter,
                  report_link: ReportLink | None = None) -> dict[str, Any]:
    """The upload and, once landed, where its sample stands: `state` is uploading | cancelled | queued |
    processing | completed | failed. A landed file with no run since it landed is queued (the landing
    sensor launches the run once the sample's files have settled).

    Only what the reported run (or a run created after the upload landed) stored is shown: gates from an
    earlier run are left out with a `gates_note`, a report written before the upload landed is not offered.
    `report` stays the storage URI; `report_url` is a time-limited link a browser can open (`report_link(key)`
    makes it), `results_available` says the sample's results can be listed (GET /results/<sample>)."""
    answer: dict[str, Any] = {"upload": upload.to_json(), "run": None, "gates": [], "gates_note": None,
                              "report": None, "report_url": None, "report_expires_at": None,
                              "results_available": False}
    if upload.state in (FAILED, CANCELLED):
        answer["state"] = "failed" if upload.state == FAILED else "cancelled"
        return answer
    if upload.state != LANDED:
        answer["state"] = "uploading"
        return answer
    instance = instance_getter()
    run = latest_sample_run(instance, upload.sample_id) if instance is not None else None
    landed = upload.completed if upload.completed is not None else upload.created
    if run is not None and run["created"] < landed:
        run = None  # a run of the sample's earlier files, not of this upload
    answer["run"] = run
    answer["state"] = _RUN_STATE.get(run["status"], "processing") if run else "queued"
    if run is not None:
        answer["gates"], answer["gates_note"] = gates_of_runs_since(storage, upload.sample_id, instance, run, landed)
        report = zones.sample_report_key(upload.sample_id)
        if _written_since(storage, report, landed):
            answer["report"] = storage.uri(report)
            answer["results_available"] = True
            if report_link is not None:
                answer["report_url"], answer["report_expires_at"] = report_link(report)
    return answer


def _written_since(storage: Storage, key: str, started: float) -> bool:
    """Whether `key` exists and was written after `started` (S3 keeps whole seconds: the second counts)."""
    from genoflow_dagster.errors import StorageError

    try:
        return storage.stat(key).last_modified >= math.floor(started)
    except StorageError as exc:
        if exc.reason == "NOT_FOUND":
            return False
        raise
