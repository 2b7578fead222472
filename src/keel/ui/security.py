"""The dashboard's sessions: a signed cookie naming the person, and its CSRF token.

Logging in with an admin token (``keel tokens add NAME``) makes a session: the person's
name, a random CSRF token and an expiry, signed with HMAC-SHA256 under a secret
(``KEEL_UI_SECRET``, else random per process, so a restart logs everyone out). The cookie
is HttpOnly and SameSite=Strict; the token itself is never stored in it. Every action form
carries the session's CSRF token in a hidden field, compared in constant time.

>>> sessions = Sessions(b"k" * 32)
>>> cookie, session = sessions.issue("ada", now=1000.0)
>>> sessions.read(cookie, now=1001.0)["name"], sessions.read(cookie + "x", now=1001.0)
('ada', None)
>>> sessions.read(cookie, now=1000.0 + SESSION_SECONDS + 1) is None
True
>>> csrf_matches(session, session["csrf"]), csrf_matches(session, "guess"), csrf_matches(None, "")
(True, False, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from typing import Any

COOKIE = "keel_session"
SECRET_VARIABLE = "KEEL_UI_SECRET"
#: A session lasts a working day.
SESSION_SECONDS = 12 * 3600


def secret_from_environment() -> bytes:
    """``KEEL_UI_SECRET`` (its bytes) when set, else 32 random bytes for this process."""
    configured = os.environ.get(SECRET_VARIABLE)
    return configured.encode("utf-8") if configured else secrets.token_bytes(32)


class Sessions:
    """Signs and reads session cookies under one secret (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def issue(self, name: str, now: float | None = None) -> tuple[str, dict[str, Any]]:
        """A new session for ``name``: (the cookie's value, the session)."""
        session = {
            "name": name,
            "csrf": secrets.token_urlsafe(32),
            "expires": (now if now is not None else time.time()) + SESSION_SECONDS,
        }
        body = base64.urlsafe_b64encode(json.dumps(session, sort_keys=True).encode()).decode()
        return f"{body}.{self._sign(body)}", session

    def read(self, cookie: str | None, now: float | None = None) -> dict[str, Any] | None:
        """The session a cookie carries, or None (absent, forged, altered or expired)."""
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        try:
            session = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        if not isinstance(session, dict) or not {"name", "csrf", "expires"} <= set(session):
            return None
        if float(session["expires"]) < (now if now is not None else time.time()):
            return None
        return session

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()


def csrf_matches(session: dict[str, Any] | None, presented: str | None) -> bool:
    """Whether ``presented`` is the session's CSRF token (constant-time); False without a
    session or a token."""
    if session is None or not presented:
        return False
    return hmac.compare_digest(str(session["csrf"]).encode(), presented.encode())
