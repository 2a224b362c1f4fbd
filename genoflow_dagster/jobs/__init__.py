"""Jobs and schedules.

Job names are public (run history, sensors and the CLI refer to them): rename with care.
"""

import dagster as dg

SAMPLE_PIPELINE_JOB = "sample_pipeline"
COHORT_JOB = "cohort"
REFERENCE_JOB = "reference_data"

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
