"""The webhook notifier posts Slack-compatible JSON, retries, and never raises."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from genoflow_dagster.resources.notifier import WebhookNotifier


class _Hook:
    def __init__(self, failures: int = 0):
        self.bodies: list[dict] = []
        self.failures = failures
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.bodies.append(body)
                status = 500 if hook.failures > 0 else 200
                hook.failures -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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
