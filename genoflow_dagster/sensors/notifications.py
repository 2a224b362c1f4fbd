"""Notifier sensors: a failed run, or a failed quality gate, posts to the configured webhooks."""


import dagster as dg

from genoflow_dagster.resources.notifier import WebhookNotifier


@dg.run_failure_sensor(
    name="run_failure_notification_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed GenoFlow run to the notifier webhooks.",
)
def run_failure_notification_sensor(context: dg.RunFailureSensorContext, notifier: WebhookNotifier) -> None:
    run = context.dagster_run
    sample = run.tags.get("dagster/partition")
    notifier.notify(
        {
            "event": "run_failure",
            "text": f"GenoFlow run {run.run_id[:8]} of {run.job_name}"
            + (f" for sample {sample}" if sample else "") + f" failed: {context.failure_event.message}",
            "run_id": run.run_id,
            "job": run.job_name,
            "sample_id": sample,
        }
    )


@dg.sensor(
    name="failed_check_notification_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts failed quality gates (asset check evaluations) to the notifier webhooks.",
)
def failed_check_notification_sensor(context: dg.SensorEvaluationContext, notifier: WebhookNotifier):
    after = int(context.cursor or 0)
    records = context.instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after),
        ascending=True,
        limit=200,
    )
    sent = 0
    for record in records:
        after = max(after, record.storage_id)
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        sample = evaluation.partition
        notifier.notify(
            {
                "event": "check_failed",
                "text": f"GenoFlow gate {evaluation.check_name} failed on {evaluation.asset_key.to_user_string()}"
                + (f" for sample {sample}" if sample else ""),
                "check": evaluation.check_name,
                "asset": evaluation.asset_key.to_user_string(),
                "sample_id": sample,
                "severity": str(evaluation.severity.value),
                "run_id": record.event_log_entry.run_id,
            }
        )
        sent += 1
    context.update_cursor(str(after))
    if not sent:
        return dg.SkipReason("no failed checks since the last tick")
    return None
