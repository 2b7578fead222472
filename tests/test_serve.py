"""keel serve answers with the champion, refuses bad input with a 4xx that names the
problem (never a 5xx), says whether it is ready, exports its metrics, and logs every answer
it gave: all against a real server on loopback."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from keel.store.queries import read_log

from .common.serving import Server, make_models, write_config

GOOD = {"x": 0.3, "y": 1.5, "color": "red", "customer_id": "c1"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    models = make_models(folder / "models")
    config = write_config(folder / "serve.yaml", models)
    server = Server(config, folder / "logs")
    client = httpx.Client(base_url=server.url, timeout=30)
    answered: list[str] = []
    yield server, client, models, answered
    client.close()
    server.stop()


def champion_scores(models, records):
    import pandas as pd

    from keel.serve.models import load_skops

    model = load_skops(models["champion"])
    frame = pd.DataFrame.from_records(records, columns=["x", "y", "color"])
    return list(model.predict_proba(frame)[:, 1])


def test_one_record_is_answered_by_the_champion_with_its_request_id_and_version(served):
    server, client, models, answered = served
    response = client.post("/v1/models/loans/predict", json={"record": GOOD, "request_id": "first"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "first" and body["route"] == "champion"
    assert body["model_version"].startswith("sha256:")
    assert body["score"] == pytest.approx(champion_scores(models, [GOOD])[0], abs=1e-12)
    assert body["prediction"] in (0, 1)
    answered.append("first")


def test_a_batch_returns_one_answer_per_record_in_order_with_generated_ids(served):
    server, client, models, answered = served
    records = [{**GOOD, "x": x} for x in (-3.0, 0.0, 3.0)]
    response = client.post("/v1/models/loans/predict", json={"records": records})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    scores = [p["score"] for p in predictions]
    assert scores == pytest.approx(champion_scores(models, records), abs=1e-12)
    assert scores == sorted(scores)  # in the order sent: the score rises with x
    ids = [p["request_id"] for p in predictions]
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
    answered.extend(ids)
    given = client.post(
        "/v1/models/loans/predict", json={"records": records[:2], "request_ids": ["b1", "b2"]}
    )
    assert [p["request_id"] for p in given.json()["predictions"]] == ["b1", "b2"]
    answered.extend(["b1", "b2"])


BAD_BODIES = [
    (b'{"record": {"x": 1', 400, "not valid JSON"),
    (b"not json at all", 400, "not valid JSON"),
    (b"\xff\xfe\x00", 400, "not valid JSON"),
    (b"[" * 50_000, 400, "not valid JSON"),
    (b"[1, 2]", 422, "'record' or 'records'"),
    (b'"text"', 422, "'record' or 'records'"),
    (b"{}", 422, "exactly one of"),
    (json.dumps({"record": GOOD, "records": [GOOD]}).encode(), 422, "exactly one of"),
    (json.dumps({"record": GOOD, "extra": 1}).encode(), 422, "unknown field"),
    # A caller's own event time is a replay's, and only when the server is told to accept it.
    (json.dumps({"record": GOOD, "event_time": "2026-01-01"}).encode(), 422, "unknown field"),
    (json.dumps({"record": [1, 2]}).encode(), 422, "expected an object"),
    (json.dumps({"records": []}).encode(), 422, "non-empty list"),
    (json.dumps({"records": {"a": 1}}).encode(), 422, "non-empty list"),
    (json.dumps({"record": {**GOOD, "x": "0.3"}}).encode(), 422, "column 'x': expected a number"),
    (json.dumps({"record": {**GOOD, "x": True}}).encode(), 422, "column 'x': expected a number"),
    (json.dumps({"record": {**GOOD, "x": None}}).encode(), 422, "column 'x': null"),
    (json.dumps({"record": {**GOOD, "x": [1]}}).encode(), 422, "column 'x'"),
    (json.dumps({"record": {**GOOD, "x": 2**70}}).encode(), 422, "64-bit"),
    (json.dumps({"record": {**GOOD, "color": 3}}).encode(), 422, "column 'color': expected text"),
    (json.dumps({"record": {"x": 0.3, "color": "red"}}).encode(), 422, "column 'y': missing"),
    (json.dumps({"record": {**GOOD, "z": 1}}).encode(), 422, "column 'z': not an input"),
    (json.dumps({"record": {**GOOD, "customer_id": 1.5}}).encode(), 422, "entity key"),
    (b'{"record": {"x": NaN, "y": 1, "color": "red"}}', 422, "NaN"),
    (b'{"record": {"x": Infinity, "y": 1, "color": "red"}}', 422, "Infinity"),
    (b'{"record": {"x": -Infinity, "y": 1, "color": "red"}}', 422, "-Infinity"),
    (b'{"record": {"x": 1e400, "y": 1, "color": "red"}}', 422, "not a finite number"),
    (b'{"record": {"x": 1, "y": 1, "color": "\\ud800"}}', 422, "not valid Unicode"),
    (json.dumps({"record": GOOD, "request_id": 7}).encode(), 422, "request id"),
    (json.dumps({"records": [GOOD, GOOD], "request_ids": ["a"]}).encode(), 422, "one per record"),
    (json.dumps({"records": [GOOD, GOOD], "request_ids": ["a", "a"]}).encode(), 422, "own id"),
    (json.dumps({"records": [GOOD] * 1001}).encode(), 413, "at most 1000"),
    (b'{"record": "' + b"x" * 1_100_000 + b'"}', 413, "at most 1048576"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_input_is_a_clear_4xx_naming_what_was_wrong(served, body, status, says):
    _, client, _, _ = served
    response = client.post(
        "/v1/models/loans/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_a_wrong_column_is_named_in_its_own_field(served):
    _, client, _, _ = served
    response = client.post(
        "/v1/models/loans/predict", json={"records": [GOOD, {**GOOD, "y": "much"}]}
    )
    assert response.status_code == 422
    assert response.json()["column"] == "y" and response.json()["record"] == 1


def test_an_unknown_model_is_a_404_listing_the_models_served(served):
    _, client, _, _ = served
    response = client.post("/v1/models/nope/predict", json={"record": GOOD})
    assert response.status_code == 404 and "loans" in response.json()["detail"]


def test_health_readiness_and_metrics(served):
    server, client, _, _ = served
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["pid"] == server.process.pid
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    metrics = client.get("/metrics").text
    assert 'keel_serve_request_seconds_count{model="loans",route="champion"}' in metrics
    assert "keel_wal_fsync_seconds_count" in metrics
    assert 'keel_wal_backlog_records{log="loans"} 0.0' in metrics
    count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('keel_serve_records_total{model="loans",route="champion"}')
    )
    assert count >= 6


def test_the_openapi_schema_describes_the_records_from_the_baseline(served):
    _, client, _, _ = served
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/v1/models/{name}/predict"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    record = body["oneOf"][0]["properties"]["record"]
    assert record["required"] == ["x", "y", "color"]
    assert record["properties"]["x"] == {"type": "number"}


def test_a_graceful_stop_leaves_every_answer_in_the_log_once_with_its_fields(served):
    server, client, _, answered = served
    for i in range(20):
        response = client.post(
            "/v1/models/loans/predict", json={"record": {**GOOD, "customer_id": f"k{i}"}}
        )
        answered.append(response.json()["request_id"])
    assert server.stop() == 0, server.stderr()
    log = read_log(server.log_root, "predictions", "loans")
    ids = log.column("request_id").to_pylist()
    assert sorted(ids) == sorted(answered), "every answer logged, once, nothing else"
    rows = {row["request_id"]: row for row in log.to_pylist()}
    first = rows["first"]
    assert first["record_format"] == "keel.serve/1"
    assert first["model_name"] == "loans" and first["model_version"].startswith("sha256:")
    assert first["role"] == "champion" and first["route"] == "champion"
    assert first["customer_id"] == "c1"
    assert (first["x"], first["y"], first["color"]) == (0.3, 1.5, "red")
    assert 0 <= first["score"] <= 1 and first["prediction"] in (0, 1)
    assert first["latency_ms"] > 0 and not math.isnan(first["latency_ms"])
    assert first["event_time"].tzinfo is not None
