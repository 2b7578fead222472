"""``keel serve models:/NAME@champion``: the champion comes from the registry with the
baseline its run recorded, the ``challenger`` alias shadows it, and a reload follows an
alias that moved."""

from __future__ import annotations

import httpx
import yaml

from keel.registry.embedded import DEFAULT_ROOT, EmbeddedRegistry
from keel.store import ResultStore

from .common.serving import FEATURES, Server, pipeline, training_frame

SHARED = "registry-test-shared-admin-token-0123456789"


def test_the_champion_alias_answers_its_challenger_shadows_and_a_moved_alias_reloads(tmp_path):
    from keel.baseline import Baseline

    url = f"sqlite:///{tmp_path / 'keel.db'}"
    registry = EmbeddedRegistry(ResultStore(url), tmp_path / DEFAULT_ROOT)
    frame = training_frame()
    baseline = Baseline.from_data(frame, target="label", id="customer_id", sample_size=50)
    for c in (1.0, 0.1):
        model = pipeline(c).fit(frame[FEATURES], frame.label)
        run = registry.log_run(
            "loans", {"params": {"C": c}}, {"baseline.keel": baseline.to_bytes()}
        )
        registry.register("loans", model, run)
    registry.set_alias("loans", "champion", 1)
    registry.set_alias("loans", "challenger", 2)
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "serve": {
                    "reload_seconds": 0,
                    "min_free_mb": 0,
                    "models": {
                        "loans": {"model": "models:/loans@champion", "entity_keys": ["customer_id"]}
                    },
                }
            }
        )
    )
    env = {"KEEL_REGISTRY": "embedded", "KEEL_DATABASE_URL": url, "KEEL_ADMIN_TOKEN": SHARED}
    server = Server(config, tmp_path / "logs", env=env, cwd=tmp_path)
    record = {"record": {"x": 0.2, "y": 1.0, "color": "red", "customer_id": "c1"}}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/v1/models/loans/predict", json=record).json()
        assert answer["model_version"] == "1", answer
        shadows = client.get("/v1/models").json()["loans"]["shadows"]
        assert shadows["challenger"]["state"] == "running"
        assert shadows["challenger"]["version"] == "2"
        registry.set_alias("loans", "champion", 2)
        reloaded = client.post(
            "/v1/admin/models/loans/reload", headers={"authorization": f"Bearer {SHARED}"}
        )
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["champion"] == {"version": "2", "uri": "models:/loans@champion"}
        assert client.post("/v1/models/loans/predict", json=record).json()["model_version"] == "2"
        bad = client.post("/v1/models/loans/predict", json={"record": {"x": "no"}})
        assert bad.status_code == 422, "the registry's baseline checks the inputs"
    assert server.stop() == 0, server.stderr()
