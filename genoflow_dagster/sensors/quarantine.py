"""`quarantine_release_sensor`: re-validates quarantined files and re-runs samples whose files now pass.

Useful after an upgrade that fixes a validator or a raised size limit. The run
key holds the GenoFlow version and the files' checksums, so each release is
requested once; `validated_files` writes the `release.json` when it admits the
file, and the sensor skips released files from then on.
"""

import dagster as dg

from genoflow_dagster import settings
from genoflow_dagster.jobs import SAMPLE_PIPELINE_JOB
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.quarantine import releasable_samples, release_run_key, review
from genoflow_dagster.resources.storage import Storage


@dg.sensor(
    name="quarantine_release_sensor",
    job_name=SAMPLE_PIPELINE_JOB,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Hourly: re-validates quarantined files with the current validators and size limit; "
    "re-runs `sample_pipeline` for each sample with a file that now passes.",
)
def quarantine_release_sensor(context: dg.SensorEvaluationContext, storage: Storage) -> dg.SensorResult:
    rows = review(storage, max_bytes=settings.max_file_bytes())
    known = set(context.instance.get_dynamic_partitions(samples_partitions.name))
    requests = []
    for sample_id, shas in releasable_samples(rows).items():
        if sample_id not in known:
            context.log.warning(f"{sample_id}: quarantined files pass now, but the sample is no longer a partition")
            continue
        context.log.info(f"{sample_id}: {len(shas)} quarantined file(s) now pass validation; requesting a run")
        requests.append(dg.RunRequest(run_key=release_run_key(sample_id, shas), partition_key=sample_id,
                                      tags={"genoflow/trigger": "quarantine_release",
                                            "genoflow/files": str(len(shas))}))
    still = sum(1 for row in rows if not row["now_valid"])
    return dg.SensorResult(run_requests=requests,
                           skip_reason=None if requests else f"{still} quarantined file(s), none passes now")
