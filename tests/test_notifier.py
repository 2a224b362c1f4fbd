"""The webhook notifier posts Slack-compatible JSON, retries, and never raises."""

from genoflow_dagster.resources.notifier import WebhookNotifier
from tests.webhook_server import Webhook as _Hook


def test_posts_json_with_a_slack_text_field():
    hook = _Hook()
    try:
        assert WebhookNotifier(webhook_urls=[hook.url]).notify({"event": "check_failed", "text": "gate failed"})
        assert hook.bodies == [{"event": "check_failed", "text": "gate failed"}]
    finally:
        hook.close()


def test_retries_then_succeeds():
    hook = _Hook(failures=1)
    try:
        assert WebhookNotifier(webhook_urls=[hook.url], backoff_s=0.01).notify({"title": "x"})
        assert len(hook.bodies) == 2
    finally:
        hook.close()


def test_an_unreachable_webhook_returns_false_without_raising():
    hook = _Hook()
    url = hook.url
    hook.close()
    assert WebhookNotifier(webhook_urls=[url], max_retries=1, backoff_s=0.01, timeout_s=1).notify({"x": 1}) is False
