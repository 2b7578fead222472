"""keel serve with online features: a real server on loopback, a model whose input is a
windowed feature looked up by entity key at the request's time, the ingest route that feeds
it, the served values logged with their ``__as_of``, and equal to the offline engine's
recomputation from the event log at the logged time (no training–serving skew)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml

from keel.features import compute_offline, event_log, parse_features
from keel.store.queries import read_log

from .common.serving import Server, pipeline, training_frame

FEATURES = [
    {"name": "clicks_1h", "entity": "customer_id", "aggregation": "count", "window": "1h"},
    {
        "name": "spend_1h",
        "entity": "customer_id",
        "column": "amount",
        "aggregation": "sum",
        "window": "1h",
    },
]


def _dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import skops.io

    from keel.baseline import Baseline

    folder = tmp_path_factory.mktemp("features-serve")
    frame = training_frame()
    frame["clicks_1h"] = (frame.index % 5).astype("int64")
    inputs = ["x", "y", "color", "clicks_1h"]
    model = pipeline()
    model.steps[0][1].transformers[0] = ("num", "passthrough", ["x", "y", "clicks_1h"])
    model.fit(frame[inputs], frame["label"])
    skops.io.dump(model, folder / "model.skops")
    Baseline.from_data(frame, target="label", id="customer_id", sample_size=100).save(
        folder / "baseline.keel"
    )
    (folder / "features.yaml").write_text(yaml.safe_dump({"features": FEATURES}))
    dead = f"redis://127.0.0.1:{_dead_port()}/0"
    base = {"model": "model.skops", "baseline": "baseline.keel", "entity_keys": ["customer_id"]}
    config = {
        "serve": {
            "reload_seconds": 0,
            "min_free_mb": 0,
            "models": {
                "loans": {**base, "features": {"definitions": "features.yaml"}},
                "loans_dead_store": {
                    **base,
                    "features": {"definitions": FEATURES[:1], "store": dead},
                },
                "loans_logged_only": {
                    **base,
                    "model": "plain.skops",
                    "baseline": "plain.keel",
                    "features": {"definitions": FEATURES[1:], "store": dead, "on_failure": "null"},
                },
            },
        }
    }
    plain = pipeline().fit(frame[["x", "y", "color"]], frame["label"])
    skops.io.dump(plain, folder / "plain.skops")
    Baseline.from_data(
        frame.drop(columns=["clicks_1h"]), target="label", id="customer_id", sample_size=100
    ).save(folder / "plain.keel")
    (folder / "serve.yaml").write_text(yaml.safe_dump(config))
    server = Server(folder / "serve.yaml", folder / "logs")
    client = httpx.Client(base_url=server.url, timeout=30)
    yield server, client, model, folder
    client.close()
    server.stop()


RECORD = {"x": 0.3, "y": 1.5, "color": "red"}


def test_a_feature_sent_by_the_caller_is_refused(served):
    _, client, _, _ = served
    response = client.post(
        "/v1/models/loans/predict", json={"record": {**RECORD, "customer_id": "c1", "clicks_1h": 7}}
    )
    assert response.status_code == 422
    assert "clicks_1h" in response.json()["detail"] and "looks up" in response.json()["detail"]


def test_the_gateway_says_which_features_it_looks_up_and_asks_no_caller_for_them(served):
    _, client, _, folder = served
    described = client.get("/v1/models").json()["loans"]["features"]
    assert described["names"] == ["clicks_1h", "spend_1h"]
    assert described["store"].endswith("features/online.db")
    assert described["on_failure"] == "refuse"
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]
    text = str(body)
    assert "clicks_1h" not in text and "'x'" in text


def test_bad_events_are_refused_naming_what_is_missing(served):
    _, client, _, _ = served
    response = client.post("/v1/features/ingest", json={"records": [{"customer_id": "c1"}]})
    assert response.status_code == 422
    assert "no column 'event_time'" in response.json()["detail"]
    response = client.post("/v1/features/ingest", json={"events": []})
    assert response.status_code == 422 and "records" in response.json()["detail"]


def test_an_empty_ingest_is_a_heartbeat_that_advances_the_watermark(served):
    """A pipeline with nothing new says so: the state is then current up to the beat."""
    from keel.features import OnlineFeatures

    _, client, _, folder = served
    store = client.get("/v1/models").json()["loans"]["features"]["store"]
    beat = client.post("/v1/features/ingest", json={"records": []})
    assert beat.status_code == 200, beat.text
    body = beat.json()
    assert body["ingested"] == 0
    assert list(body["failed"]) == [next(iter(body["failed"]))]  # only the dead store
    stamp = datetime.fromisoformat(body["available_time"])
    later = stamp + timedelta(minutes=1)
    with OnlineFeatures(parse_features(FEATURES, "test"), store) as state:
        got = state.get([{"customer_id": "c-quiet", "event_time": later}])
    assert got["clicks_1h"].to_pylist() == [0]
    assert got["clicks_1h__as_of"].to_pylist() == [stamp]
    response = client.post("/v1/features/ingest", json={"records": [1]})
    assert response.status_code == 422 and "object" in response.json()["detail"]


def test_a_store_that_is_down_answers_503_naming_the_feature(served):
    _, client, _, _ = served
    response = client.post(
        "/v1/models/loans_dead_store/predict", json={"record": {**RECORD, "customer_id": "c1"}}
    )
    assert response.status_code == 503, response.text
    assert "online feature 'clicks_1h' could not be looked up" in response.json()["detail"]
    assert response.json()["feature"] == "clicks_1h"
    assert response.headers["retry-after"] == "1"
    assert client.get("/healthz").status_code == 200  # serving goes on


def test_with_on_failure_null_the_feature_is_served_null_and_why_is_logged(served):
    _, client, _, _ = served
    response = client.post(
        "/v1/models/loans_logged_only/predict",
        json={"record": {**RECORD, "customer_id": "c1"}, "request_id": "n1"},
    )
    assert response.status_code == 200, response.text


def test_served_features_come_from_the_online_state_and_match_the_offline_truth(served):
    server, client, model, folder = served
    now = datetime.now(UTC)
    events = [
        {
            "customer_id": "c1",
            "amount": 10.5,
            "event_time": (now - timedelta(minutes=m)).isoformat(),
        }
        for m in (1, 5, 30)
    ] + [
        {"customer_id": "c1", "amount": 99.0, "event_time": (now - timedelta(hours=2)).isoformat()},
        {
            "customer_id": "c2",
            "amount": 1.25,
            "event_time": (now - timedelta(minutes=2)).isoformat(),
        },
    ]
    taken = client.post("/v1/features/ingest", json={"records": events})
    assert taken.status_code == 200, taken.text
    body = taken.json()
    assert body["ingested"] == 5
    assert list(body["failed"]) == [next(iter(body["failed"]))]  # the dead store, said
    assert "Connection" in next(iter(body["failed"].values()))

    records = [{**RECORD, "customer_id": c} for c in ("c1", "c2", "c9")]
    response = client.post(
        "/v1/models/loans/predict", json={"records": records, "request_ids": ["r1", "r2", "r9"]}
    )
    assert response.status_code == 200, response.text
    import pandas as pd

    expected = model.predict_proba(pd.DataFrame([{**RECORD, "clicks_1h": n} for n in (3, 1, 0)]))[
        :, 1
    ]
    scores = [p["score"] for p in response.json()["predictions"]]
    assert scores == pytest.approx(list(expected), abs=1e-12)

    server.stop()
    log = read_log(folder / "logs", "predictions", "loans").to_pandas()
    log = log.set_index("request_id").loc[["r1", "r2", "r9"]]
    assert log["clicks_1h"].tolist() == [3, 1, 0]
    assert log["spend_1h"].tolist()[:2] == [31.5, 1.25] and pd.isna(log["spend_1h"].iloc[2])
    stamp = pd.Timestamp(body["available_time"])
    # current as of the state's newest ingest, the entity never seen ("c9", 0) too
    assert (log["clicks_1h__as_of"] == stamp).all() and (log["spend_1h__as_of"] == stamp).all()
    # the skew check's question, answered here: offline at the served time = served
    definitions = parse_features(FEATURES, "test")
    truth = compute_offline(
        definitions,
        event_log(folder / "logs"),
        log.reset_index()[["customer_id", "event_time"]],
        as_of=True,
    )
    for feature in definitions:
        assert truth[feature.name].to_pylist() == [
            None if pd.isna(v) else v for v in log[feature.name].tolist()
        ]
    nulls = read_log(folder / "logs", "predictions", "loans_logged_only").to_pylist()
    assert [(r["request_id"], r["spend_1h"]) for r in nulls] == [("n1", None)]
    assert "feature 'spend_1h': ConnectionError" in nulls[0]["features_error"]
