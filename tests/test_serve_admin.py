"""The canary split is sticky (an entity keeps its arm, and keeps it while its arm grows);
admin actions need a per-person token (401 without one, 403 with a wrong one, each saying
how to get one) and then move weights, promote, roll back and reload without a restart."""

from __future__ import annotations

import shutil

import httpx
import pytest

from keel.store import ResultStore
from keel.store.queries import read_log
from keel.tokens import add_token

from .common.serving import Server, make_models, write_config

SHARED = "shared-admin-token-for-the-test-0123456789"


@pytest.fixture(scope="module")
def canaried(tmp_path_factory):
    folder = tmp_path_factory.mktemp("canary")
    models = make_models(folder / "models")
    url = f"sqlite:///{folder / 'keel.db'}"
    ada = add_token(ResultStore(url), "ada")
    config = write_config(
        folder / "serve.yaml",
        models,
        canaries={"canary": str(models["canary"])},
        weights={"champion": 0.5, "canary": 0.5},
        store_url=url,
    )
    server = Server(config, folder / "logs", env={"KEEL_ADMIN_TOKEN": SHARED})
    client = httpx.Client(base_url=server.url, timeout=30)
    yield server, client, models, ada, url
    client.close()
    server.stop()


def ask(client, customer, x=0.5):
    record = {"x": x, "y": 1.0, "color": "green", "customer_id": customer}
    response = client.post("/v1/models/loans/predict", json={"record": record})
    assert response.status_code == 200, response.text
    return response.json()


def test_each_customer_keeps_its_arm_and_both_arms_answer(canaried):
    _, client, _, _, _ = canaried
    first = {f"c{i}": ask(client, f"c{i}")["route"] for i in range(40)}
    assert set(first.values()) == {"champion", "canary"}
    again = {c: ask(client, c, x=-1.0)["route"] for c in first}
    assert again == first, "the same customer takes the same route whatever its inputs"
    batch = client.post(
        "/v1/models/loans/predict",
        json={"records": [{"x": 0.0, "y": 1.0, "color": "red", "customer_id": c} for c in first]},
    ).json()["predictions"]
    assert [p["route"] for p in batch] == list(first.values())
    versions = {p["route"]: p["model_version"] for p in batch}
    assert versions["champion"] != versions["canary"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer not-a-token"}, 403),
        ({"authorization": "Basic x"}, 401),
    ],
)
def test_admin_actions_refuse_without_a_valid_token_and_say_how_to_get_one(
    canaried, headers, status
):
    _, client, _, _, _ = canaried
    for method, path, body in [
        ("PUT", "/v1/admin/models/loans/weights", {"weights": {"champion": 1.0}}),
        ("POST", "/v1/admin/models/loans/promote", {"arm": "canary"}),
        ("POST", "/v1/admin/models/loans/rollback", None),
        ("POST", "/v1/admin/models/loans/reload", None),
    ]:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert "keel tokens add NAME" in response.json()["detail"]
    weights = client.get("/v1/models").json()["loans"]["weights"]
    assert weights == {"champion": 0.5, "canary": 0.5}, "nothing changed"


def test_raising_the_canary_weight_moves_customers_onto_it_and_none_off_it(canaried):
    _, client, _, ada, url = canaried
    before = {f"c{i}": ask(client, f"c{i}")["route"] for i in range(40)}
    refused = client.put(
        "/v1/admin/models/loans/weights",
        json={"weights": {"champion": 0.5, "canary": 0.6}},
        headers={"authorization": f"Bearer {ada}"},
    )
    assert refused.status_code == 422 and "sum to 1" in refused.json()["detail"]
    response = client.put(
        "/v1/admin/models/loans/weights",
        json={"weights": {"champion": 0.1, "canary": 0.9}},
        headers={"authorization": f"Bearer {ada}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["weights"] == {"champion": 0.1, "canary": 0.9}
    after = {c: ask(client, c)["route"] for c in before}
    assert all(after[c] == "canary" for c, arm in before.items() if arm == "canary")
    assert sum(arm == "canary" for arm in after.values()) > sum(
        arm == "canary" for arm in before.values()
    )
    events = ResultStore(url).events()
    audited = events[events.action == "serve weights"]
    assert list(audited.actor) == ["ada"] and list(audited.subject) == ["loans"]


def test_promote_rollback_and_reload_switch_the_champion_without_a_restart(canaried):
    server, client, models, ada, _ = canaried
    admin = {"authorization": f"Bearer {SHARED}"}
    served = client.get("/v1/models").json()["loans"]
    old, canary = served["champion"]["version"], served["canaries"]["canary"]["version"]

    promoted = client.post("/v1/admin/models/loans/promote", json={"arm": "canary"}, headers=admin)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["champion"]["version"] == canary and promoted.json()["previous"] == old
    answer = ask(client, "anyone")
    assert (answer["route"], answer["model_version"]) == ("champion", canary)

    rolled = client.post("/v1/admin/models/loans/rollback", headers=admin)
    assert rolled.status_code == 200 and rolled.json()["champion"]["version"] == old
    assert ask(client, "anyone")["model_version"] == old

    shutil.copy(models["challenger"], models["champion"])  # a new file in the same place
    reloaded = client.post("/v1/admin/models/loans/reload", headers=admin)
    assert reloaded.status_code == 200, reloaded.text
    new = reloaded.json()["champion"]["version"]
    assert new not in (old, canary) and reloaded.json()["changed"]["champion"] == new
    assert ask(client, "someone")["model_version"] == new
    assert client.post("/v1/admin/models/loans/rollback", headers=admin).status_code == 200
    again = client.post("/v1/admin/models/loans/reload", headers=admin).json()
    assert again["changed"] == {} and again["champion"]["version"] == old, "held back"
    assert ask(client, "someone")["model_version"] == old

    nothing = client.post("/v1/admin/models/loans/promote", json={"arm": "nope"}, headers=admin)
    assert nothing.status_code == 422 and "nothing named 'nope'" in nothing.json()["detail"]

    assert server.stop() == 0, server.stderr()
    log = read_log(server.log_root, "predictions", "loans").to_pylist()
    versions = {row["model_version"] for row in log if row["route"] == "champion"}
    assert {old, canary, new} <= versions, "the log says which version answered each request"
    assert "admin promote by shared-token" in server.stderr()
    assert "admin weights by ada" in server.stderr()
