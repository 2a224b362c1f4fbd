"""Jobs and schedules.

Job names are public (run history, sensors and the CLI refer to them): rename with care.
"""

import dagster as dg

from genoflow_dagster import settings
from genoflow_dagster.assets.artifacts import markdown_table, run_state_from_instance
from genoflow_dagster.maintenance import ZONE_SWEEPS, describe, run_maintenance
from genoflow_dagster.quarantine import review, write_review
from genoflow_dagster.resources.storage import Storage

SAMPLE_PIPELINE_JOB = "sample_pipeline"
COHORT_JOB = "cohort"
REFERENCE_JOB = "reference_data"
MAINTENANCE_JOB = "maintenance"
QUARANTINE_REVIEW_JOB = "quarantine_review"

PER_SAMPLE_GROUPS = ("ingestion", "qc", "variants", "reports")

# Selecting by group keeps the asset checks of those assets in the job, so the
# blocking gates run (a selection that drops checks silently skips the gates).
sample_pipeline_job = dg.define_asset_job(
    SAMPLE_PIPELINE_JOB,
    selection=dg.AssetSelection.groups(*PER_SAMPLE_GROUPS),
    description="Every per-sample asset, from the landed files to the signed-off report, for one sample.",
    executor_def=dg.in_process_executor,
    tags={"genoflow/pipeline": "sample"},
)

cohort_job = dg.define_asset_job(
    COHORT_JOB,
    selection=dg.AssetSelection.groups("cohort"),
    description="Cohort QC summary, verdict table and variant catalog over all samples.",
    executor_def=dg.in_process_executor,
)

reference_data_job = dg.define_asset_job(
    REFERENCE_JOB,
    selection=dg.AssetSelection.groups("reference"),
    description="Fingerprint and index the configured reference genome, annotation and known sites.",
    executor_def=dg.in_process_executor,
)

daily_cohort_schedule = dg.ScheduleDefinition(
    name="daily_cohort_schedule",
    job=cohort_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    description="Refresh the cohort tables every morning at 06:00 UTC.",
)

weekly_reference_data_schedule = dg.ScheduleDefinition(
    name="weekly_reference_data_schedule",
    job=reference_data_job,
    cron_schedule="0 5 * * 1",
    execution_timezone="UTC",
    description="Re-fingerprint reference data weekly, so a silently replaced file marks samples stale.",
)


class MaintenanceConfig(dg.Config):
    # A scratch folder of a run this instance does not know is removed once idle this long (a run of
    # another instance sharing the work dir keeps writing into its own); a finished run's goes at once.
    scratch_grace_hours: float = 1.0
    # Writers stream continuously: a `.part` file or multipart upload idle this long is a dead write.
    incomplete_write_grace_hours: float = 1.0
    # Uploads into landing/ may be resumed later (the portal's resumable uploads).
    landing_upload_grace_hours: float = 48.0


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Remove scratch folders of dead runs under the work dir and incomplete writes in every zone; "
    "report each removal (path, bytes) and the work dir's size before and after.",
)
def remove_leftovers_of_dead_runs(context: dg.OpExecutionContext, config: MaintenanceConfig, storage: Storage):
    sweeps = [(prefix, (config.landing_upload_grace_hours if prefix.startswith("landing/") else
                        config.incomplete_write_grace_hours) * 3600) for prefix, _ in ZONE_SWEEPS]
    report = run_maintenance(storage, settings.work_dir(), run_state_from_instance(context.instance),
                             grace_seconds=config.scratch_grace_hours * 3600, sweeps=sweeps)
    for item in report.removed:
        context.log.info(describe(item))
    for path in report.kept_live_scratch:
        context.log.info(f"kept {path}: its run is still alive")
    context.log.info(f"work dir {report.work_dir}: {report.work_dir_bytes_before:,} bytes before, "
                     f"{report.work_dir_bytes_after:,} after; {len(report.removed)} item(s) removed")
    rows = [{"what": r.what, "path": r.path, "bytes": r.bytes, "why": r.why} for r in report.removed]
    yield dg.Output(None, metadata={
        "removed": len(report.removed),
        "bytes_freed": report.bytes_freed,
        "work_dir": dg.MetadataValue.path(report.work_dir),
        "work_dir_bytes_before": report.work_dir_bytes_before,
        "work_dir_bytes_after": report.work_dir_bytes_after,
        "kept_live_scratch": len(report.kept_live_scratch),
        "removed_items": dg.MetadataValue.md(markdown_table(rows, ["what", "path", "bytes", "why"])),
        "report": dg.MetadataValue.json(report.to_json()),
    })


@dg.job(
    name=MAINTENANCE_JOB,
    description="Housekeeping: what crashed runs left behind (scratch folders, .part files, unfinished "
    "multipart uploads) is removed and reported; live runs' scratch is never touched.",
    executor_def=dg.in_process_executor,
    tags={"genoflow/pipeline": "maintenance"},
)
def maintenance_job():
    remove_leftovers_of_dead_runs()


daily_maintenance_schedule = dg.ScheduleDefinition(
    name="daily_maintenance_schedule",
    job=maintenance_job,
    cron_schedule="30 4 * * *",
    execution_timezone="UTC",
    description="Remove dead runs' leftovers every night at 04:30 UTC, before the cohort refresh.",
)


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Re-validate every quarantined file with today's validators and size limit; store which "
    "samples have files that pass now (quarantine/_review.json) for quarantine_release_sensor to re-run.",
)
def review_quarantined_files(context: dg.OpExecutionContext, storage: Storage):
    rows = review(storage, max_bytes=settings.max_file_bytes())
    outcome = write_review(storage, rows)
    for sample_id, shas in outcome["releasable"].items():
        context.log.info(f"{sample_id}: {len(shas)} quarantined file(s) pass validation now")
    context.log.info(f"{len(rows)} quarantined file(s) re-validated; {outcome['still_quarantined']} still fail")
    yield dg.Output(None, metadata={
        "files": len(rows),
        "still_quarantined": outcome["still_quarantined"],
        "releasable_samples": len(outcome["releasable"]),
        "review": dg.MetadataValue.md(markdown_table(
            rows, ["sample_id", "name", "quarantined_reason", "now_valid", "now_reason", "released"])),
    })


@dg.job(
    name=QUARANTINE_REVIEW_JOB,
    description="Re-validate the quarantine (up to 5 GB a file) in a run of its own, never inside a sensor tick.",
    executor_def=dg.in_process_executor,
    tags={"genoflow/pipeline": "quarantine_review"},
)
def quarantine_review_job():
    review_quarantined_files()
