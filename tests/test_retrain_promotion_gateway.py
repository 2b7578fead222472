"""The promotion loop through a real gateway on loopback: ``keel serve models:/loans@champion``
answers with the champion and shadows the ``challenger`` alias; the caller's labels come
back; ``compare`` pairs the logs the gateway wrote, a person approves with a token, and a
restarted gateway answers with the new champion."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import yaml

from keel.monitor.config import parse_config
from keel.registry.aliases import promote
from keel.registry.embedded import DEFAULT_ROOT, EmbeddedRegistry
from keel.retrain.promotion import approve, compare
from keel.store import ResultStore
from keel.store.logs import LogWriter
from keel.tokens import add_token

from .common.serving import FEATURES, Server, pipeline, training_frame

BATCH, BATCHES = 100, 8


def test_a_shadowed_challenger_is_compared_on_the_gateways_logs_and_promoted(tmp_path):
    from keel.baseline import Baseline

    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = ResultStore(url)
    registry = EmbeddedRegistry(store, tmp_path / DEFAULT_ROOT)
    frame = training_frame()
    baseline = Baseline.from_data(frame, target="label", id="customer_id", sample_size=50)
    # The champion learnt a wrong threshold (x > 0.8); the challenger the real one.
    for labels in ((frame.x > 0.8).astype(int), frame.label):
        run = registry.log_run("loans", {}, {"baseline.keel": baseline.to_bytes()})
        model = pipeline(1.0).fit(frame[FEATURES], labels)
        registry.register("loans", model, run, tags={"keel.baseline": baseline.fingerprint})
    promote(registry, store, "loans", 1, "champion", "first model", "ada")
    promote(registry, store, "loans", 2, "challenger", "retrained", "keel-retrain")

    config = tmp_path / "serve.yaml"
    served = {
        "model": "models:/loans@champion",
        "entity_keys": ["customer_id"],
        "shadow_queue": 10_000,
        "shadow_timeout": 30,
    }
    config.write_text(
        yaml.safe_dump(
            {"serve": {"reload_seconds": 0, "min_free_mb": 0, "models": {"loans": served}}}
        )
    )
    env = {"KEEL_REGISTRY": "embedded", "KEEL_DATABASE_URL": url}
    traffic = training_frame(rows=BATCH * BATCHES, seed=7)
    traffic["customer_id"] = [f"t{i}" for i in range(len(traffic))]
    ids = [f"req-{i:05d}" for i in range(len(traffic))]
    server = Server(config, tmp_path / "logs", env=env, cwd=tmp_path)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for start in range(0, len(traffic), BATCH):
            rows = traffic.iloc[start : start + BATCH]
            body = {
                "records": json.loads(rows[[*FEATURES, "customer_id"]].to_json(orient="records")),
                "request_ids": ids[start : start + BATCH],
            }
            answer = client.post("/v1/models/loans/predict", json=body)
            assert answer.status_code == 200, answer.text
    assert server.stop() == 0, server.stderr()  # drains the shadows, writes every log

    with LogWriter(tmp_path / "logs", "labels", model="loans") as writer:
        now = datetime.now(UTC)
        writer.append(
            [
                {"request_id": rid, "event_time": now, "label": int(label)}
                for rid, label in zip(ids, traffic.label, strict=True)
            ]
        )
    monitor = parse_config(
        f"""
monitors:
  - name: loans-monitor
    model: loans
    baseline: {tmp_path / "b.keel"}
    logs: {tmp_path / "logs"}
    window: 1D
    retrain: {{min_effect: 0.1, margins: {{accuracy: 0.05}}}}
""",
        "keel.yaml",
    )[0]
    # Decided a day on: the horizon is planned once a first day of shadow answers is in.
    run = compare(monitor, store, registry=registry, as_of=now + timedelta(hours=25))
    assert run.counts["shadowed"] == len(traffic) and run.counts["dropped"] == 0, run.counts
    assert run.counts["paired"] == len(traffic) and run.horizon <= len(traffic)
    assert run.status == "pending", run.reason
    done = approve(store, run.run, add_token(store, "erin"), registry=registry)
    assert done.status == "promoted" and registry.aliases("loans")["champion"] == 2

    server = Server(config, tmp_path / "logs2", env=env, cwd=tmp_path)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        record = {
            "record": {
                **json.loads(traffic.iloc[[0]][FEATURES].to_json(orient="records"))[0],
                "customer_id": "t0",
            }
        }
        assert client.post("/v1/models/loans/predict", json=record).json()["model_version"] == "2"
    assert server.stop() == 0, server.stderr()
    # The promoted version still holds the challenger alias: it is never shadowed by itself.
    assert registry.aliases("loans")["challenger"] == 2
    assert not list((tmp_path / "logs2" / "predictions").glob("model=loans.shadow/**/*.parquet"))
