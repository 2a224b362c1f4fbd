"""A small HTTP server on 127.0.0.1 that answers like the OpenAI and Anthropic APIs (wire format only).

It records every request body, and can be told to fail the next N requests with a 500.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_next = 0
        self.always_fail = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                if server.always_fail or server.fail_next > 0:
                    server.fail_next = max(0, server.fail_next - 1)
                    self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                    return
                if self.path.endswith("/chat/completions"):
                    self._send(200, {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "OpenAI-style narrative."}}],
                        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
                    })
                elif self.path.endswith("/messages"):
                    self._send(200, {
                        "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                        "content": [{"type": "text", "text": "Anthropic-style narrative."}],
                        "stop_reason": "end_turn", "stop_sequence": None,
                        "usage": {"input_tokens": 110, "output_tokens": 25},
                    })
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
