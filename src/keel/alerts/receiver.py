"""A local webhook receiver: what a team's endpoint does with keel's notices, runnable here.

It listens on 127.0.0.1. With a shared secret (at least 32 bytes) it
refuses, with HTTP 401 and before parsing anything, a request whose
``X-Keel-Signature`` does not match ``X-Keel-Timestamp`` and the body, whose
timestamp is more than 5 minutes from its clock, or whose signature it has
seen already (a replay); it drops a notice whose idempotency key it has
already handled (a retry) and keeps the rest. ``keel demo`` starts one to
show alerts arriving; tests use it as a real server that can also fail on
purpose (``status``, ``delay``, ``close``).

>>> import time, urllib.request, urllib.error
>>> from keel.alerts.channels import signature
>>> key = b"k" * 32
>>> with WebhookReceiver(secret=key) as receiver:
...     body = b'{"idempotency_key": "a:firing:0", "state": "firing"}'
...     sent = int(time.time())
...     request = urllib.request.Request(receiver.url, data=body, method="POST",
...         headers={"X-Keel-Timestamp": str(sent), "X-Keel-Signature": signature(key, body, sent)})
...     _ = urllib.request.urlopen(request, timeout=5).read()
...     try:
...         urllib.request.urlopen(request, timeout=5)  # the same request again: a replay
...     except urllib.error.HTTPError as error:
...         print(error.code, receiver.refused[-1])
401 replayed signature
>>> [(n["verified"], n["payload"]["state"]) for n in receiver.notices]
[(True, 'firing')]
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from keel.alerts.channels import TOLERANCE_SECONDS, verify
from keel.alerts.config import MIN_SECRET_BYTES
from keel.errors import ConfigError


class WebhookReceiver:
    def __init__(self, secret: bytes | None = None) -> None:
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"a webhook secret of {len(secret)} bytes: at least {MIN_SECRET_BYTES} are needed"
            )
        self.secret = secret
        self.received: list[dict[str, Any]] = []  # every request, as it came
        self.notices: list[dict[str, Any]] = []  # distinct notices, parsed and verified
        self.refused: list[str] = []  # why each refused request was refused
        self.status, self.delay, self.close = 200, 0.0, False
        self._seen: set[str] = set()
        self._signatures: dict[str, float] = {}  # signature -> when seen (replay window)
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
                refused = receiver._take(dict(self.headers), body)
                try:
                    self.send_response(401 if refused else receiver.status)
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

    def _take(self, headers: dict[str, str], body: bytes) -> str | None:
        """Keep one request; returns why it was refused, if it was."""
        with self._lock:
            self.received.append({"headers": headers, "body": body})
            verified = False
            if self.secret is not None:
                signed = headers.get("X-Keel-Signature")
                reason = verify(self.secret, body, headers.get("X-Keel-Timestamp"), signed)
                now = time.time()
                self._signatures = {
                    s: at for s, at in self._signatures.items() if now - at <= TOLERANCE_SECONDS
                }
                if reason is None and signed in self._signatures:
                    reason = "replayed signature"
                if reason is not None:
                    self.refused.append(reason)
                    return reason
                self._signatures[signed] = now
                verified = True
            try:
                payload = json.loads(body)
            except ValueError:
                return None
            if not isinstance(payload, dict):
                return None
            key = str(payload.get("idempotency_key", len(self.received)))
            if key in self._seen:
                return None  # a retried notice: handled already
            self._seen.add(key)
            self.notices.append({"payload": payload, "verified": verified})
            return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
