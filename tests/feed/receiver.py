"""A real HTTP receiver for event-feed tests: verifies each request with the independent
`standardwebhooks` package and answers what the test tells it to, never what a clock says."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class Receiver:
    """Records every request (webhook-id, answer, messages) and answers `self.answer`:
    a status, or (status, {header: value})."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self.secrets = list(secrets or [])
        self.answer: Any = 200
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verified_by(self, body: bytes, headers: dict[str, str]) -> list[int]:
        """Indexes of the secrets whose signature is in the request (standardwebhooks' check)."""
        ok = []
        for i, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
                ok.append(i)
            except WebhookVerificationError:
                continue
        return ok

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        body = request.get_data()
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.lock:
            answer = self.answer
        status, extra = (answer, {}) if isinstance(answer, int) else answer
        payload = json.loads(body)
        record = {"id": headers.get("webhook-id"), "status": status, "verified": self.verified_by(body, headers),
                  "signatures": headers.get("webhook-signature", "").split(), "at": time.time(),
                  "messages": payload if isinstance(payload, list) else [payload]}
        with self.changed:
            self.requests.append(record)
            self.changed.notify_all()
        return Response(f"answer {status}", status=status, headers=extra)(environ, start_response)

    def accepted(self) -> list[dict[str, Any]]:
        """The messages of every request answered 2xx."""
        with self.lock:
            return [m for r in self.requests if 200 <= r["status"] < 300 for m in r["messages"]]

    def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not check(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what or 'requests'}: got {len(self.requests)}")
                self.changed.wait(min(left, 0.5))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
