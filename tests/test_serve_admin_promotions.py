"""The gateway's admin endpoints for a promotion, over real HTTP: ``keel serve`` in a
subprocess on loopback, its admin store a SQLite file holding keel's embedded registry
(loans v1 champion, v2 challenger) and a pending run that ``keel.retrain.promotion.compare``
recorded from the gateway's three logs. ``POST /v1/admin/promotions/{run}/approve`` and
``/reject`` call ``keel.retrain.promotion``: refused without a token (401), with a wrong or
the shared one (403), each refusal audited; a rejection needs a reason (422); an approval
moves the champion and the audit names the token's owner."""

from __future__ import annotations

import httpx
import pytest

from keel.store import ResultStore

from .common.serving import Server, make_models, write_config
from .test_retrain_promotion import _monitor, _write_logs

SHARED = "shared-admin-token-for-the-test-0123456789"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    from sklearn.dummy import DummyClassifier

    from keel.registry.aliases import promote
    from keel.registry.embedded import EmbeddedRegistry
    from keel.retrain.promotion import compare
    from keel.tokens import add_token

    folder = tmp_path_factory.mktemp("promotions")
    url = f"sqlite:///{folder / 'keel.db'}"
    store = ResultStore(url)
    registry = EmbeddedRegistry(store)
    for _ in range(2):
        run = registry.log_run("loans", {}, {})
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        registry.register("loans", model, run, tags={"keel.baseline": "b.keel"})
    promote(registry, store, "loans", 1, "champion", "first model", "ada")
    promote(registry, store, "loans", 2, "challenger", "retrained", "keel-retrain")
    _write_logs(folder / "logs")
    monitor = _monitor(folder)
    pending = compare(monitor, store, registry=registry)
    assert pending.status == "pending", pending.reason
    ada = add_token(store, "ada")
    models = make_models(folder / "models")
    config = write_config(folder / "serve.yaml", models, store_url=url)
    server = Server(
        config,
        folder / "served-logs",
        env={"KEEL_ADMIN_TOKEN": SHARED, "KEEL_REGISTRY": "embedded"},
    )
    client = httpx.Client(base_url=server.url, timeout=60)
    yield {
        "client": client,
        "store": store,
        "registry": registry,
        "monitor": monitor,
        "run": pending.run,
        "ada": ada,
    }
    client.close()
    server.stop()


def refused_rows(store) -> list[dict]:
    return [r for r in store.audit_rows(model="loans") if r["event"] == "refused"]


@pytest.mark.parametrize(
    ("headers", "status", "actor"),
    [
        ({}, 401, "unknown (no valid token)"),
        ({"authorization": "Bearer not-a-token"}, 403, "unknown (no valid token)"),
        ({"authorization": f"Bearer {SHARED}"}, 403, "shared-token"),
    ],
)
def test_a_missing_wrong_or_shared_token_is_refused_and_audited(gateway, headers, status, actor):
    client, store = gateway["client"], gateway["store"]
    before = len(refused_rows(store))
    for verb, body in (("approve", None), ("reject", {"reason": "no"})):
        answer = client.post(
            f"/v1/admin/promotions/{gateway['run']}/{verb}", json=body, headers=headers
        )
        assert answer.status_code == status, answer.text
        assert answer.json()["run"] == gateway["run"]
        if status == 401:
            assert "keel tokens add NAME" in answer.json()["detail"]
    audited = refused_rows(store)[before:]
    assert [r["actor"] for r in audited] == [actor, actor]
    assert gateway["registry"].aliases("loans")["champion"] == 1


def test_a_rejection_needs_a_reason_and_an_unknown_run_is_not_found(gateway):
    client, ada = gateway["client"], {"authorization": f"Bearer {gateway['ada']}"}
    answer = client.post(f"/v1/admin/promotions/{gateway['run']}/reject", json={}, headers=ada)
    assert answer.status_code == 422 and "needs a reason" in answer.json()["detail"]
    missing = client.post("/v1/admin/promotions/nosuchrun/approve", headers=ada)
    assert missing.status_code == 404 and "no promotion run" in missing.json()["detail"]


def test_an_approval_moves_the_champion_and_the_audit_names_the_person(gateway):
    client, store, run = gateway["client"], gateway["store"], gateway["run"]
    ada = {"authorization": f"Bearer {gateway['ada']}"}
    answer = client.post(
        f"/v1/admin/promotions/{run}/approve", json={"reason": "read the report"}, headers=ada
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["decided_by"], body["run"]) == ("promoted", "ada", run)
    assert gateway["registry"].aliases("loans")["champion"] == 2
    done = [
        r
        for r in store.audit_rows(model="loans")
        if r["alias"] == "champion" and r["event"] == "done"
    ][-1]
    assert (done["actor"], done["version"], done["previous_version"]) == ("ada", 2, 1)
    assert "read the report" in done["reason"]
    again = client.post(f"/v1/admin/promotions/{run}/approve", headers=ada)
    assert again.status_code == 409 and "promoted, not pending" in again.json()["detail"]


def test_a_rejection_with_a_reason_closes_a_pending_run(gateway):
    from keel.registry.aliases import rollback
    from keel.retrain.promotion import compare

    store, registry = gateway["store"], gateway["registry"]
    rollback(registry, store, "loans", "champion", "back for the test", "ada")
    pending = compare(gateway["monitor"], store, registry=registry)
    assert pending.status == "pending", pending.reason
    answer = gateway["client"].post(
        f"/v1/admin/promotions/{pending.run}/reject",
        json={"reason": "not before the holidays"},
        headers={"authorization": f"Bearer {gateway['ada']}"},
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["decision_reason"]) == (
        "rejected",
        "not before the holidays",
    )
    assert registry.aliases("loans")["champion"] == 1


def test_the_promotion_endpoints_are_in_the_openapi_schema(gateway):
    paths = gateway["client"].get("/openapi.json").json()["paths"]
    for verb in ("approve", "reject"):
        operation = paths[f"/v1/admin/promotions/{{run}}/{verb}"]["post"]
        assert "per-person token" in operation["description"]
