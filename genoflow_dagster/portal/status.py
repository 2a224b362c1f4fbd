"""What happened to a landed upload: its sample's latest pipeline run and the gate outcomes stored for it.

The only Dagster the portal touches: the run is read from the instance (`instance_getter()`), by the
`dagster/partition` tag every sample run carries (the landing sensor's, `genoflow run`'s, the demo's).
The gate outcomes are the ones each stage stored (`sample_record.read_sample`), never re-derived here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from genoflow_dagster import zones
from genoflow_dagster.portal.uploads import CANCELLED, FAILED, LANDED, Upload

SAMPLE_PIPELINE_JOB = "sample_pipeline"  # genoflow_dagster.jobs.SAMPLE_PIPELINE_JOB (that module imports Dagster)

# The portal's four words for a run, from Dagster's run statuses.
_RUN_STATE = {"QUEUED": "queued", "NOT_STARTED": "queued", "STARTING": "processing", "STARTED": "processing",
              "CANCELING": "processing", "SUCCESS": "completed", "FAILURE": "failed", "CANCELED": "failed"}

InstanceGetter = Callable[[], Any]

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
    return {"run_id": run.run_id, "status": run.status.value, "created": record.create_timestamp.timestamp(),
            "trigger": run.tags.get("genoflow/trigger")}


def stored_gates(storage: Storage, sample_id: str) -> list[dict[str, Any]]:
    """Each gate's stored outcome (gate, status, summary, problems), in pipeline order; [] before any stage ran."""
    from genoflow_dagster.sample_record import read_sample

    return [{"gate": g.gate, "status": g.status, "summary": g.summary, "problems": list(g.problems),
             "blocking": g.blocking} for g in read_sample(storage, sample_id).gate_outcomes()]


def upload_status(upload: Upload, storage: Storage, instance_getter: InstanceGetter) -> dict[str, Any]:
    """The upload and, once landed, where its sample stands: `state` is uploading | cancelled | queued |
    processing | completed | failed. A landed file with no run since it landed is queued (the landing
    sensor launches the run once the sample's files have settled)."""
    answer: dict[str, Any] = {"upload": upload.to_json(), "run": None, "gates": [], "report": None}
    if upload.state in (FAILED, CANCELLED):
        answer["state"] = "failed" if upload.state == FAILED else "cancelled"
        return answer
    if upload.state != LANDED:
        answer["state"] = "uploading"
        return answer
    instance = instance_getter()
    run = latest_sample_run(instance, upload.sample_id) if instance is not None else None
    if run is not None and upload.completed is not None and run["created"] < upload.completed:
        run = None  # a run of the sample's earlier files, not of this upload
    answer["run"] = run
    answer["state"] = _RUN_STATE.get(run["status"], "processing") if run else "queued"
    if run is not None:
        answer["gates"] = stored_gates(storage, upload.sample_id)
        report = zones.sample_report_key(upload.sample_id)
        if storage.exists(report):
            answer["report"] = storage.uri(report)
    return answer
