"""``keel serve MODEL --baseline FILE --workers 2``: two processes answer on one port, each
with its own gateway and shadow process, and a graceful stop leaves every answer of both
(and every shadow's) in the log once."""

from __future__ import annotations

import httpx

from keel.store.queries import read_log

from .common.serving import Server, make_models


def test_two_workers_answer_and_every_answer_is_logged_once(tmp_path):
    models = make_models(tmp_path / "models")
    server = Server(  # the command line's own form: the model, then its options
        None,
        tmp_path / "logs",
        str(models["champion"]),
        "--baseline", str(models["baseline"]),
        "--name", "loans",
        "--entity-key", "customer_id",
        "--challenger", f"challenger={models['challenger']}",
        "--min-free-mb", "0",
        "--workers", "2",
    )  # fmt: skip
    pids, ids = set(), []
    for i in range(30):
        with httpx.Client(base_url=server.url, timeout=30) as client:  # a new connection each
            pids.add(client.get("/healthz").json()["pid"])
            record = {"x": 0.1, "y": 1.0, "color": "red", "customer_id": f"c{i}"}
            response = client.post("/v1/models/loans/predict", json={"record": record})
            assert response.status_code == 200, response.text
            ids.append(response.json()["request_id"])
    assert len(pids) == 2, f"both workers answered: {pids}"
    assert server.stop() == 0, server.stderr()
    logged = read_log(server.log_root, "predictions", "loans").column("request_id").to_pylist()
    assert sorted(logged) == sorted(ids)
    shadowed = read_log(server.log_root, "predictions", "loans.shadow")
    assert sorted(shadowed.column("request_id").to_pylist()) == sorted(ids)
