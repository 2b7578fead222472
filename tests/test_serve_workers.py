"""``keel serve --workers 2``: two processes answer on one port, each with its own gateway,
and a graceful stop leaves every answer of both in the log once."""

from __future__ import annotations

import httpx

from keel.store.queries import read_log

from .common.serving import Server, make_models, write_config


def test_two_workers_answer_and_every_answer_is_logged_once(tmp_path):
    models = make_models(tmp_path / "models")
    config = write_config(
        tmp_path / "serve.yaml", models, challengers={"challenger": str(models["challenger"])}
    )
    server = Server(config, tmp_path / "logs", "--workers", "2")
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
