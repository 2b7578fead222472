"""Admin tokens: one per person, only a hash stored, constant-time checks, a shared token
allowed and named ``shared-token``. A real SQLite store; the CLI in a subprocess."""

import sqlite3

import pytest
import sqlalchemy as sa

from keel.store import ResultStore
from keel.tokens import (
    SHARED_TOKEN_ACTOR,
    TokenError,
    add_token,
    hash_token,
    list_tokens,
    revoke_token,
    verify_token,
)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("KEEL_ADMIN_TOKEN", raising=False)
    return ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")


def test_a_token_verifies_as_its_owner_and_nothing_else_does(store):
    ada, bob = add_token(store, "ada"), add_token(store, "bob")
    assert ada != bob
    assert verify_token(store, ada) == "ada"
    assert verify_token(store, bob) == "bob"
    for wrong in (None, "", ada[:-1], ada + "x", ada.upper(), hash_token(ada)):
        assert verify_token(store, wrong) is None


def test_only_the_hash_is_stored_never_the_token(store, tmp_path):
    token = add_token(store, "ada")
    store.engine.dispose()
    raw = (tmp_path / "keel.db").read_bytes()
    assert token.encode() not in raw
    rows = sqlite3.connect(tmp_path / "keel.db").execute("SELECT * FROM keel_tokens").fetchall()
    assert len(rows) == 1 and hash_token(token) in rows[0]
    assert all(token not in str(value) for value in rows[0])


def test_a_token_carries_at_least_32_random_bytes(store):
    tokens = {add_token(store, f"p{i}") for i in range(5)}
    assert len(tokens) == 5
    # token_urlsafe(32) is 43 characters of base64 (6 bits each): 258 bits.
    assert all(len(t.removeprefix("keel_")) >= 43 for t in tokens)


def test_a_revoked_token_stops_verifying_and_a_new_one_can_be_made(store):
    old = add_token(store, "ada")
    with pytest.raises(TokenError, match="'ada' already has a token"):
        add_token(store, "ada")
    revoke_token(store, "ada", actor="bob")
    assert verify_token(store, old) is None
    new = add_token(store, "ada")
    assert verify_token(store, new) == "ada" and verify_token(store, old) is None
    listed = list_tokens(store)
    assert [(r["name"], r["revoked_at"] is None) for r in listed] == [
        ("ada", False),
        ("ada", True),
    ]
    assert all("token_hash" not in r for r in listed)
    events = store.events()
    assert events["action"].tolist() == ["token added", "token revoked", "token added"]
    assert events["actor"].tolist()[1] == "bob"
    with pytest.raises(TokenError, match="no active token named 'carol'"):
        revoke_token(store, "carol")


def test_the_shared_token_is_recorded_as_shared_token(store, monkeypatch):
    assert verify_token(store, "correct horse battery staple") is None
    monkeypatch.setenv("KEEL_ADMIN_TOKEN", "correct horse battery staple")
    assert verify_token(store, "correct horse battery staple") == SHARED_TOKEN_ACTOR
    assert verify_token(store, "correct horse battery") is None
    monkeypatch.setenv("KEEL_ADMIN_TOKEN", "")  # set but empty: never matches
    assert verify_token(store, "") is None


@pytest.mark.parametrize("name", ["", "two words", "shared-token", "x" * 201, "-dash"])
def test_names_that_cannot_be_told_apart_or_printed_are_refused(store, name):
    with pytest.raises(TokenError, match="is not valid"):
        add_token(store, name)


def test_a_version_4_store_gains_the_token_table_when_opened(tmp_path):
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    ResultStore(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for name in ("keel_tokens", "keel_model_versions", "keel_model_aliases"):
            connection.execute(sa.text(f"DROP TABLE {name}"))
        for name in ("keel_training_runs", "keel_alias_audit"):
            connection.execute(sa.text(f"DROP TABLE {name}"))
        connection.execute(sa.text("UPDATE keel_schema_version SET version = 4"))
    engine.dispose()
    store = ResultStore(url)
    assert store.version == 5
    assert verify_token(store, add_token(store, "ada")) == "ada"


def test_the_command_line_prints_the_token_once_and_exits_2_on_misuse(run_keel, tmp_path):
    added = run_keel("tokens", "add", "ada")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("keel_") and "shown once" in added.stderr
    store = ResultStore(f"sqlite:///{tmp_path / '.keel' / 'keel.db'}")
    assert verify_token(store, token) == "ada"
    listed = run_keel("tokens", "list")
    assert listed.returncode == 0 and "ada" in listed.stdout and token not in listed.stdout
    assert hash_token(token) not in listed.stdout
    assert run_keel("tokens", "add", "ada").returncode == 2
    assert run_keel("tokens", "revoke", "bob").returncode == 2
    revoked = run_keel("tokens", "revoke", "ada")
    assert revoked.returncode == 0 and verify_token(store, token) is None
    assert "revoked" in run_keel("tokens", "list").stdout
