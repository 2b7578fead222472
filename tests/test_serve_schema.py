"""schemathesis against the gateway's own OpenAPI schema, in process: whatever it sends
(valid records, wrong types, missing fields, odd ids, tokens), the answer is never a 5xx."""

from __future__ import annotations

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from .common.serving import make_models, write_config


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    from keel.serve.app import create_app
    from keel.serve.config import ServeConfig
    from keel.serve.gateway import Gateway

    folder = tmp_path_factory.mktemp("schema")
    models = make_models(folder / "models")
    path = write_config(
        folder / "serve.yaml",
        models,
        canaries={"canary": str(models["canary"])},
        weights={"champion": 0.7, "canary": 0.3},
        store_url=f"sqlite:///{folder / 'keel.db'}",
        log_root=str(folder / "logs"),
    )
    config = ServeConfig.load(path)
    gateway = Gateway(config)
    gateway.start()
    settings_ = schemathesis.config.SchemathesisConfig.from_dict(
        {"generation": {"mode": "all"}}  # valid requests and ones that break the schema
    )
    yield schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(config, gateway), config=settings_
    )
    gateway.close()


schema = schemathesis.pytest.from_fixture("api_schema")
STATUSES: collections.Counter = collections.Counter()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_schema_allows_or_breaks_gets_a_5xx(case):
    response = case.call()
    STATUSES[(case.operation.path, response.status_code)] += 1
    case.validate_response(response, checks=[not_a_server_error])


def test_the_fuzzing_reached_answers_and_refusals():
    """Runs after the fuzzing: it got real answers and real refusals, not only one kind."""
    predicted = {code for (path, code) in STATUSES if path.endswith("/predict")}
    assert 200 in predicted and predicted & {400, 413, 422}, dict(STATUSES)
    admin = {code for (path, code) in STATUSES if "/admin/" in path}
    assert admin <= {401, 403, 405}, dict(STATUSES)  # 405: a method the path lacks
