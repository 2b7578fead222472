"""A replay through the gateway (``accept_event_time: true``): each record's own event time
is what the log holds, for the champion and its shadow alike; a bad time is a 422 naming
the record. An input the caller's own online store served may come with its
``<input>__as_of``, which is logged beside it."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from keel.store.queries import read_log

from .common.serving import Server, make_models, write_config

GOOD = {"x": 0.3, "y": 1.5, "color": "red", "customer_id": "c1"}


def test_a_replay_logs_each_records_own_event_time_and_refuses_a_bad_one(tmp_path):
    models = make_models(tmp_path / "models")
    config = write_config(
        tmp_path / "serve.yaml",
        models,
        accept_event_time=True,
        challengers={"challenger": str(models["challenger"])},
        shadow_timeout=30,
    )
    server = Server(config, tmp_path / "logs")
    times = ["2026-03-02T10:00:00+00:00", "2026-03-03T11:30:00"]  # naive: read as UTC
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post(
            "/v1/models/loans/predict",
            json={"records": [GOOD, GOOD], "request_ids": ["a", "b"], "event_times": times},
        )
        assert answer.status_code == 200, answer.text
        single = client.post(
            "/v1/models/loans/predict",
            json={"record": GOOD, "request_id": "c", "event_time": "2026-03-04T00:00:00Z"},
        )
        assert single.status_code == 200, single.text
        stamped = client.post(
            "/v1/models/loans/predict",
            json={"record": {**GOOD, "x__as_of": "2026-03-01T06:00:00"}, "request_id": "d"},
        )
        assert stamped.status_code == 200, stamped.text
        unstamped = client.post(
            "/v1/models/loans/predict", json={"record": {**GOOD, "x__as_of": "yesterday"}}
        )
        assert unstamped.status_code == 422 and "'x__as_of'" in unstamped.text, unstamped.text
        unknown = client.post(
            "/v1/models/loans/predict", json={"record": {**GOOD, "q__as_of": "2026-03-01"}}
        )
        assert unknown.status_code == 422 and "not an input" in unknown.text, unknown.text
        bad = client.post(
            "/v1/models/loans/predict",
            json={"records": [GOOD, GOOD], "event_times": ["2026-03-02", "last tuesday"]},
        )
        assert bad.status_code == 422 and "event_times 1" in bad.text, bad.text
        short = client.post(
            "/v1/models/loans/predict", json={"records": [GOOD, GOOD], "event_times": ["2026"]}
        )
        assert short.status_code == 422 and "one per record" in short.text, short.text
    assert server.stop() == 0, server.stderr()
    expected = {
        "a": datetime(2026, 3, 2, 10, tzinfo=UTC),
        "b": datetime(2026, 3, 3, 11, 30, tzinfo=UTC),
        "c": datetime(2026, 3, 4, tzinfo=UTC),
    }
    for model in ("loans", "loans.shadow"):
        log = read_log(tmp_path / "logs", "predictions", model)
        ids, at = log["request_id"].to_pylist(), log["event_time"].to_pylist()
        logged = dict(zip(ids, at, strict=True))
        assert {k: v for k, v in logged.items() if k != "d"} == expected, model
        stamps = dict(zip(ids, log["x__as_of"].to_pylist(), strict=True))
        assert stamps["d"] == datetime(2026, 3, 1, 6, tzinfo=UTC) and stamps["a"] is None
