"""Notifier sensors: a failed run, or a failed quality gate, posts to the configured webhooks.

Failed gates are read from the instance's asset-check execution records
(`get_asset_check_execution_history`, one query per check the code location
defines). That table exists on every instance storage; the global event query
this sensor used before (`get_event_records` on ASSET_CHECK_EVALUATION) is
refused by the default SQLite instance, whose event log is sharded per run, so
no failed-gate webhook was ever sent there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from genoflow_dagster.resources.notifier import WebhookNotifier

PAGE = 100


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


@dataclass
class CheckCursor:
    """Every check execution with an id up to `after` has been dealt with; `sent` holds the ids above it
    already posted (a check still running holds `after` below itself until it finishes)."""

    after: int = 0
    sent: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "sent": sorted(self.sent)})

    @classmethod
    def from_json(cls, text: str | None) -> CheckCursor:
        if not text:
            return cls()
        if text.isdigit():  # the cursor of the event-log version of this sensor: a storage id
            return cls()
        data = json.loads(text)
        return cls(after=int(data.get("after", 0)), sent=[int(i) for i in data.get("sent", [])])


def new_check_executions(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], after: int
                         ) -> list[Any]:
    """Every execution record (`AssetCheckExecutionRecord`: id, key, run_id, status, event, partition) of
    these checks with an id above `after`, oldest first."""
    storage = instance.event_log_storage
    records: list[Any] = []
    for key in check_keys:
        cursor = None
        while True:
            page = storage.get_asset_check_execution_history(key, limit=PAGE, cursor=cursor)
            fresh = [r for r in page if r.id > after]
            records += fresh
            if len(page) < PAGE or len(fresh) < len(page):
                break
            cursor = page[-1].id
    return sorted(records, key=lambda r: r.id)


def notification_for(record: Any, instance: dg.DagsterInstance) -> dict[str, Any] | None:
    """The webhook body for a failed check execution, or None when there is nothing to tell.

    A GenoFlow gate carries its stored outcome (`verdicts.GateOutcome`) in the check's `outcome`
    metadata: the payload is built from it (`notifier.check_evaluation_event`), never re-judged here.
    A gate that could not be graded (`check_not_graded`: e.g. no targets for a targeted profile) is
    shown in the UI and the report but not posted, or every such sample would page someone.
    """
    from genoflow_dagster.resources.notifier import check_evaluation_event

    event = record.event.dagster_event if record.event is not None else None
    evaluation = event.event_specific_data if event is not None else None
    if evaluation is None or "outcome" not in evaluation.metadata:
        return failure_payload(record, instance)
    payload = check_evaluation_event(evaluation, run_id=record.run_id)
    if payload is None or payload["event"] == "check_not_graded":
        return None
    if payload.get("sample_id") is None:
        payload["sample_id"] = record.partition or _run_partition(instance, record.run_id)
    return payload


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id)
    return run.tags.get("dagster/partition") if run is not None else None


def failure_payload(record: Any, instance: dg.DagsterInstance) -> dict[str, Any]:
    """The webhook body for a failed check execution: which gate, on which sample, and its problems.

    The sample is the check's partition, else the partition its run was launched for (a check emitted from
    a partitioned asset's body carries no partition of its own in Dagster 1.13)."""
    event = record.event.dagster_event if record.event is not None else None
    evaluation = event.event_specific_data if event is not None else None
    check_name, asset = record.key.name, record.key.asset_key.to_user_string()
    sample = record.partition or (evaluation.partition if evaluation is not None else None)
    if sample is None:
        sample = _run_partition(instance, record.run_id)
    severity = str(evaluation.severity.value) if evaluation is not None else "ERROR"
    problems = ""
    if evaluation is not None:
        detail = evaluation.metadata.get("problems") or evaluation.description
        problems = str(getattr(detail, "value", detail) or "").strip()
    text = f"GenoFlow gate {check_name} failed on {asset}" + (f" for sample {sample}" if sample else "")
    if problems and problems != "none":
        text += f": {problems}"
    return {"event": "check_failed", "text": text, "check": check_name, "asset": asset, "sample_id": sample,
            "severity": severity, "run_id": record.run_id}


@dg.sensor(
    name="failed_check_notification_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts failed quality gates (asset check evaluations) to the notifier webhooks.",
)
def failed_check_notification_sensor(context: dg.SensorEvaluationContext, notifier: WebhookNotifier):
    state = CheckCursor.from_json(context.cursor)
    repository = context.repository_def
    check_keys = sorted(repository.asset_graph.asset_check_keys, key=lambda k: k.to_user_string()) \
        if repository is not None else []
    records = new_check_executions(context.instance, check_keys, state.after)
    sent_now = 0
    running = [r.id for r in records if r.status.value == "PLANNED"]
    for record in records:
        if record.status.value != "FAILED" or record.id in state.sent:
            continue
        payload = notification_for(record, context.instance)
        state.sent.append(record.id)
        if payload is None:
            continue
        notifier.notify(payload)
        sent_now += 1
    if records:
        state.after = min(running) - 1 if running else max(r.id for r in records)
    state.sent = [i for i in state.sent if i > state.after]
    context.update_cursor(state.to_json())
    if not sent_now:
        return dg.SkipReason("no failed checks since the last tick")
    return None
