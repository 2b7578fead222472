"""Shadows never touch the champion's answers: a challenger that sleeps, crashes, hangs,
raises or does not even load changes no response, and every sampled request is accounted
for in the shadow log, answered or dropped with its reason."""

from __future__ import annotations

import time

import httpx
import pytest

from keel.store.queries import read_log

from .common.serving import FAULTS, Server, fault_trust, make_models, write_config

REQUESTS = 60


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shadow")
    models = make_models(folder / "models", FAULTS)
    broken = folder / "models" / "broken.skops"
    broken.write_bytes(b"this is not a model file")
    challengers = {fault: str(models[fault]) for fault in FAULTS}
    challengers.update(
        {
            # its own queue and timeout: roomy enough that a busy machine never drops one
            "challenger": {"model": str(models["challenger"]), "queue": 1000, "timeout": 30},
            "raising": {"model": str(models["raising"]), "queue": 1000, "timeout": 30},
            "broken": str(broken),
            "sleepy": {"model": str(models["sleepy"]), "queue": 2},  # sure to overflow
        }
    )
    config = write_config(
        folder / "serve.yaml",
        models,
        challengers=challengers,
        trusted=fault_trust(),
        shadow_timeout=1.0,
        shadow_queue=16,
        drain_seconds=2,
    )
    server = Server(config, folder / "logs")
    client = httpx.Client(base_url=server.url, timeout=30)
    yield server, client, models
    client.close()
    server.stop()


def test_broken_challengers_change_no_champion_response_and_every_request_is_accounted_for(
    shadowed,
):
    import pandas as pd

    from keel.serve.models import load_skops

    server, client, models = shadowed
    ready = client.get("/readyz").json()
    assert ready["ready"] is True, "a challenger that did not load does not stop serving"
    assert any("'broken'" in note and "did not load" in note for note in ready["notes"])

    records = [
        {"x": -2 + 4 * i / REQUESTS, "y": 1.0, "color": "blue", "customer_id": f"c{i}"}
        for i in range(REQUESTS)
    ]
    answers = []
    for i, record in enumerate(records):
        response = client.post(
            "/v1/models/loans/predict", json={"record": record, "request_id": f"r{i}"}
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
    champion = load_skops(models["champion"])
    expected = champion.predict_proba(pd.DataFrame.from_records(records)[["x", "y", "color"]])
    assert [a["score"] for a in answers] == pytest.approx(list(expected[:, 1]), abs=1e-12)
    assert {a["model_version"] for a in answers} == {answers[0]["model_version"]}

    def accounted(status):
        return status["answered"] + sum(status["dropped"].values()) + status["queued"]

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        shadows = client.get("/v1/models").json()["loans"]["shadows"]
        if all(accounted(s) == REQUESTS and s["queued"] == 0 for s in shadows.values()):
            break
        time.sleep(0.2)
    assert shadows["challenger"]["answered"] == REQUESTS, shadows["challenger"]
    assert shadows["raising"]["dropped"] == {"error": REQUESTS}
    assert shadows["broken"]["state"] == "failed"
    assert shadows["broken"]["dropped"] == {"not_running": REQUESTS}
    assert shadows["crashing"]["dropped"]["crashed"] >= 1
    assert shadows["hanging"]["dropped"]["timeout"] >= 1
    assert shadows["sleepy"]["answered"] >= 1
    assert shadows["sleepy"]["dropped"].get("queue_full", 0) >= 1, shadows["sleepy"]
    for name, status in shadows.items():
        assert accounted(status) == REQUESTS, (name, status)

    metrics = client.get("/metrics").text
    for challenger, reason in [
        ("crashing", "crashed"),
        ("hanging", "timeout"),
        ("raising", "error"),
        ("sleepy", "queue_full"),
    ]:
        line = next(
            line
            for line in metrics.splitlines()
            if line.startswith("keel_shadow_dropped_total{")
            and f'challenger="{challenger}"' in line
            and f'reason="{reason}"' in line
        )
        assert float(line.split()[-1]) >= 1

    assert server.stop() == 0, server.stderr()
    log = read_log(server.log_root, "predictions", "loans.shadow").to_pylist()
    ids = {f"r{i}" for i in range(REQUESTS)}
    for challenger in ["challenger", "broken", *FAULTS]:
        rows = [row for row in log if row["challenger"] == challenger]
        assert sorted(row["request_id"] for row in rows) == sorted(ids), challenger
    good = [row for row in log if row["challenger"] == "challenger"]
    assert all(row["shadow_dropped"] is None and 0 <= row["score"] <= 1 for row in good)
    # answered in batches or alone, each request gets its own record's answer
    challenger_model = load_skops(models["challenger"])
    by_id = {row["request_id"]: row["score"] for row in good}
    direct = challenger_model.predict_proba(pd.DataFrame.from_records(records)[["x", "y", "color"]])
    assert [by_id[f"r{i}"] for i in range(REQUESTS)] == pytest.approx(list(direct[:, 1]), abs=1e-12)
    assert all(row["shadow_batch"] >= 1 for row in good)
    assert {row["answered_by_version"] for row in good} == {answers[0]["model_version"]}
    assert all(row["role"] == "shadow" for row in log)
    reasons = {row["shadow_dropped"] for row in log if row["challenger"] == "crashing"}
    assert "crashed" in reasons
    main = read_log(server.log_root, "predictions", "loans")
    assert sorted(main.column("request_id").to_pylist()) == sorted(ids)


def test_a_shadow_that_fell_behind_answers_its_queue_in_one_call_and_an_error_names_its_request():
    from keel.serve.shadow import _answer

    class Doubler:
        calls = 0

        def predict(self, rows):
            Doubler.calls += 1
            if any(row["x"] < 0 for row in rows):
                raise ValueError("negative x")
            return [{"score": 2 * row["x"]} for row in rows]

    now = time.time()
    batch = [
        (1, now, 5.0, [{"x": 1.0}]),
        (2, now - 60, 5.0, [{"x": 2.0}]),  # older than its timeout: not answered
        (3, now, 5.0, [{"x": 3.0}, {"x": 4.0}]),
    ]
    messages = _answer(Doubler(), batch)
    assert Doubler.calls == 1
    assert [(m[0], m[1]) for m in messages] == [("expired", 2), ("done", 1), ("done", 3)]
    assert messages[1][2] == [{"score": 2.0}] and messages[2][2] == [{"score": 6.0}, {"score": 8.0}]
    assert {m[4] for m in messages[1:]} == {2}  # two requests answered together

    Doubler.calls = 0
    messages = _answer(Doubler(), [(1, now, 5.0, [{"x": 1.0}]), (2, now, 5.0, [{"x": -1.0}])])
    assert Doubler.calls == 3  # the batch, then each request alone
    assert messages[0][:2] == ("done", 1) and messages[0][2] == [{"score": 2.0}]
    assert messages[1] == ("error", 2, "ValueError: negative x")
