"""`quarantine_release_sensor`: re-runs samples whose quarantined files pass today's validators.

Useful after an upgrade that fixes a validator or a raised size limit. The
re-validation itself (up to 5 GB a file) runs in the `quarantine_review` job,
never inside a tick (a sensor tick has 60 s): each tick only reads the last
review's outcome (`quarantine/_review.json`), requests one `sample_pipeline`
run per sample with a file that passes now, and starts the next review unless
one is already queued or running. A release therefore takes two ticks: review,
then re-run.

The run key of a release holds the GenoFlow version and the files' checksums,
so each release is requested once; `validated_files` writes the `release.json`
when it admits the file, and later reviews skip released files.
"""

import json
import time

import dagster as dg

from genoflow_dagster.jobs import QUARANTINE_REVIEW_JOB, quarantine_review_job, sample_pipeline_job
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.quarantine import read_review, release_run_key
from genoflow_dagster.resources.storage import Storage

REVIEW_INTERVAL_SECONDS = 3600
_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED]


@dg.sensor(
    name="quarantine_release_sensor",
    jobs=[sample_pipeline_job, quarantine_review_job],
    minimum_interval_seconds=REVIEW_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Hourly: starts `quarantine_review` (re-validates quarantined files with the current "
    "validators and size limit) and re-runs `sample_pipeline` for each sample whose files pass now.",
)
def quarantine_release_sensor(context: dg.SensorEvaluationContext, storage: Storage) -> dg.SensorResult:
    state = json.loads(context.cursor) if context.cursor else {}
    requests: list[dg.RunRequest] = []
    outcome = read_review(storage)
    if outcome is not None and outcome.get("review_id") != state.get("acted_on"):
        known = set(context.instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME))
        for sample_id, shas in outcome["releasable"].items():
            if sample_id not in known:
                context.log.warning(f"{sample_id}: quarantined files pass now, but the sample is no longer a "
                                    "partition")
                continue
            context.log.info(f"{sample_id}: {len(shas)} quarantined file(s) now pass validation; requesting a run")
            requests.append(dg.RunRequest(run_key=release_run_key(sample_id, shas), partition_key=sample_id,
                                          job_name=sample_pipeline_job.name,
                                          tags={"genoflow/trigger": "quarantine_release",
                                                "genoflow/files": str(len(shas))}))
        state["acted_on"] = outcome.get("review_id")
    in_flight = context.instance.get_runs(dg.RunsFilter(job_name=QUARANTINE_REVIEW_JOB, statuses=_IN_FLIGHT),
                                          limit=1)
    if not in_flight:
        requests.append(dg.RunRequest(job_name=QUARANTINE_REVIEW_JOB,
                                      run_key=f"quarantine-review-{int(time.time() // REVIEW_INTERVAL_SECONDS)}",
                                      tags={"genoflow/trigger": "quarantine_release_sensor"}))
    still = outcome["still_quarantined"] if outcome else None
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(state),
                           skip_reason=None if requests else f"a review is running; {still} file(s) still fail")
