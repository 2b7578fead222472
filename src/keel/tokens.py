"""Admin tokens, one per person: who did an admin action, by name, never by a shared secret.

``add_token`` makes a random token (``secrets.token_urlsafe(32)``: 32 random bytes), stores
only its SHA-256 in the store, and returns the token once; ``verify_token`` takes what a
caller presented and returns the owner's name, or None. Every comparison is constant-time
(``hmac.compare_digest``), and every active hash is compared, so the time taken does not say
which one (if any) matched. A single ``KEEL_ADMIN_TOKEN`` (from the environment) is allowed
for the embedded default; it is recorded as the actor ``shared-token``.

>>> import tempfile, pathlib
>>> from keel.store import ResultStore
>>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
>>> token = add_token(store, "ada")
>>> verify_token(store, token), verify_token(store, token + "x"), verify_token(store, None)
('ada', None, None)
>>> revoke_token(store, "ada"); verify_token(store, token) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from typing import Any

from keel.errors import KeelError

SHARED_TOKEN_ACTOR = "shared-token"
ADMIN_TOKEN_VARIABLE = "KEEL_ADMIN_TOKEN"
TOKEN_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")


class TokenError(KeelError):
    """A token name that is not valid, already taken, or unknown."""


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of a token: what the store keeps instead of the token.

    >>> hash_token("abc")[:12]
    'ba7816bf8f01'
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_token(store: Any, name: str) -> str:
    """Make a token for ``name``, store its hash, and return the token (shown once, never
    stored). A name with an active token is refused: revoke it first.

    >>> import tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> len(add_token(store, "ada")) >= 43
    True
    >>> add_token(store, "ada")
    Traceback (most recent call last):
    ...
    keel.tokens.TokenError: 'ada' already has a token; revoke it first (keel tokens revoke ada)
    """
    _check_name(name)
    token = "keel_" + secrets.token_urlsafe(TOKEN_BYTES)
    from keel.store import StoreError

    try:
        store.add_token_hash(name, hash_token(token))
    except StoreError as error:
        if "already has a token" in str(error):
            raise TokenError(
                f"{name!r} already has a token; revoke it first (keel tokens revoke {name})"
            ) from None
        raise
    store.log_event(name, "token added", subject=name)
    return token


def verify_token(store: Any, presented: str | None) -> str | None:
    """The name of the person whose token ``presented`` is, ``shared-token`` for the
    ``KEEL_ADMIN_TOKEN`` from the environment, or None (no token, unknown, revoked).

    >>> import os, tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> os.environ["KEEL_ADMIN_TOKEN"] = "s3cret-shared-value"
    >>> verify_token(store, "s3cret-shared-value"), verify_token(store, "s3cret")
    ('shared-token', None)
    >>> del os.environ["KEEL_ADMIN_TOKEN"]
    """
    if not presented:
        return None
    candidate = presented.encode("utf-8")
    matched: str | None = None
    shared = os.environ.get(ADMIN_TOKEN_VARIABLE)
    if shared and hmac.compare_digest(candidate, shared.encode("utf-8")):
        matched = SHARED_TOKEN_ACTOR
    digest = hash_token(presented).encode()
    for row in store.token_rows(active_only=True):
        # Compare every row (no early exit), so the time does not tell which matched.
        if hmac.compare_digest(digest, row["token_hash"].encode()) and matched is None:
            matched = row["name"]
    return matched


def list_tokens(store: Any) -> list[dict]:
    """Every token's name, when it was made and when revoked (never a hash), oldest first.

    >>> import tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> _ = add_token(store, "ada")
    >>> [(row["name"], row["revoked_at"]) for row in list_tokens(store)]
    [('ada', None)]
    """
    return [
        {"name": r["name"], "created_at": r["created_at"], "revoked_at": r["revoked_at"]}
        for r in store.token_rows()
    ]


def revoke_token(store: Any, name: str, actor: str | None = None) -> None:
    """Revoke ``name``'s active token (it stops verifying at once); unknown names are refused.

    >>> import tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> revoke_token(store, "bob")
    Traceback (most recent call last):
    ...
    keel.tokens.TokenError: no active token named 'bob' (keel tokens list shows them)
    """
    if store.revoke_token_hash(name) == 0:
        raise TokenError(f"no active token named {name!r} (keel tokens list shows them)")
    store.log_event(actor or name, "token revoked", subject=name)


def _check_name(name: str) -> None:
    if not _NAME.match(name or "") or name == SHARED_TOKEN_ACTOR:
        raise TokenError(
            f"token name {name!r} is not valid: letters, digits and . _ @ - (not "
            f"{SHARED_TOKEN_ACTOR!r}), up to 200 characters"
        )
