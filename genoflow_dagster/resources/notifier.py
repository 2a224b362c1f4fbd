"""The `notifier` resource: JSON webhooks (Slack-compatible) for failed runs and gates. Never blocks."""


import json
import time
import urllib.error
import urllib.request
from typing import Any

import dagster as dg

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
