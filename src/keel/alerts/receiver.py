"""A local webhook receiver: what a team's endpoint does with keel's notices, runnable here.

It listens on 127.0.0.1, checks each body's ``X-Keel-Signature`` against the
shared secret (when given), drops a notice whose idempotency key it has
already seen, and keeps the rest. ``keel demo`` starts one to show alerts
arriving; tests use it as a real server that can also fail on purpose
(``status``, ``delay``, ``close``).

>>> import urllib.request
>>> from keel.alerts.channels import signature
>>> with WebhookReceiver(secret=b"k") as receiver:
...     body = b'{"idempotency_key": "a:firing:0", "state": "firing"}'
...     request = urllib.request.Request(receiver.url, data=body, method="POST",
...         headers={"X-Keel-Signature": signature(b"k", body)})
...     _ = urllib.request.urlopen(request, timeout=5).read()
...     _ = urllib.request.urlopen(request, timeout=5).read()  # the same notice again
>>> [(n["verified"], n["payload"]["state"]) for n in receiver.notices]
[(True, 'firing')]
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from keel.alerts.channels import signature


class WebhookReceiver:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []  # every request, as it came
        self.notices: list[dict[str, Any]] = []  # distinct notices, parsed and verified
        self.status, self.delay, self.close = 200, 0.0, False
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.close:
                    self.close_connection = True
                    self.connection.close()
                    return
                time.sleep(receiver.delay)
                receiver._take(dict(self.headers), body)
                try:
                    self.send_response(receiver.status)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout under test): nothing to answer

            do_PUT = do_POST  # noqa: N815 - a Pushgateway push is a PUT

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base_url}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _take(self, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self.received.append({"headers": headers, "body": body})
            try:
                payload = json.loads(body)
            except ValueError:
                return
            if not isinstance(payload, dict):
                return
            key = str(payload.get("idempotency_key", len(self.received)))
            if key in self._seen:
                return  # a retried notice: handled already
            self._seen.add(key)
            verified = self.secret is not None and hmac.compare_digest(
                headers.get("X-Keel-Signature", ""), signature(self.secret, body)
            )
            self.notices.append({"payload": payload, "verified": verified})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
