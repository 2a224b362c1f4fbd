"""The `notifier` resource: JSON webhooks (Slack-compatible) for failed runs and gates. Never blocks."""


import json
import time
import urllib.error
import urllib.request
from typing import Any

import dagster as dg

from genoflow_dagster import verdicts

LOG = dg.get_dagster_logger("genoflow.notifier")


class WebhookNotifier(dg.ConfigurableResource):
    webhook_urls: list[str] = []
    timeout_s: float = 5.0
    max_retries: int = 2
    backoff_s: float = 0.5

    def notify(self, event: dict[str, Any]) -> bool:
        """POST the event (with a Slack `text` line) to every URL; True if all accepted it. Never raises."""
        if not self.webhook_urls:
            return True
        payload = {"text": event.get("text") or event.get("title") or "GenoFlow event", **event}
        body = json.dumps(payload, default=str).encode()
        ok = True
        for url in self.webhook_urls:
            ok &= self._post(url, body)
        return ok

    def _post(self, url: str, body: bytes) -> bool:
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"},
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        return True
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                LOG.warning(f"webhook attempt {attempt + 1} failed: {exc}")
            if attempt < self.max_retries:
                time.sleep(self.backoff_s * 2**attempt)
        return False


def gate_event(outcome: verdicts.GateOutcome, *, sample_id: str | None, run_id: str | None) -> dict[str, Any]:
    """The webhook payload of a gate that did not pass, from its stored outcome (never re-judged here):
    `check_failed` for a failed or warning gate, `check_not_graded` for one that could not judge."""
    event = "check_not_graded" if not outcome.graded else "check_failed"
    verb = {verdicts.FAIL: "failed", verdicts.WARN: "warned", verdicts.NOT_GRADED: "was not graded"}.get(
        outcome.status, outcome.status)
    where = f" for sample {sample_id}" if sample_id else ""
    return {
        "event": event,
        "text": f"GenoFlow gate {outcome.gate} {verb}{where}"
        + (" and stopped it" if outcome.stops_sample else "") + f": {outcome.detail()}",
        "check": outcome.gate,
        "asset": outcome.asset,
        "sample_id": sample_id,
        "status": outcome.status,
        "severity": outcome.severity,
        "blocking": outcome.blocking,
        "stopped_sample": outcome.stops_sample,
        "problems": list(outcome.problems),
        "not_graded_reason": outcome.not_graded_reason,
        "profile": outcome.profile,
        "run_id": run_id,
    }


def check_evaluation_event(evaluation: dg.AssetCheckEvaluation, *, run_id: str | None) -> dict[str, Any] | None:
    """The payload for a recorded check evaluation (what the failed-check sensor reads from the event log),
    built from the stored outcome the check carries in its `outcome` metadata; None when it passed."""
    if evaluation.passed:
        return None
    stored = evaluation.metadata.get("outcome")
    if stored is None:  # a check that is not a GenoFlow gate (e.g. a cohort table check)
        return {"event": "check_failed", "check": evaluation.check_name,
                "asset": evaluation.asset_key.to_user_string(), "sample_id": evaluation.partition,
                "severity": evaluation.severity.value, "run_id": run_id,
                "text": f"GenoFlow check {evaluation.check_name} failed on {evaluation.asset_key.to_user_string()}"}
    outcome: dict[str, Any] = stored.value  # type: ignore[assignment]  # the gate's stored JSON outcome
    return gate_event(verdicts.GateOutcome.from_dict(outcome), sample_id=evaluation.partition, run_id=run_id)
