"""The HTTP face of the gateway (FastAPI), and running it (uvicorn). Thin: every decision is
``keel.serve.gateway``'s.

Endpoints: ``POST /v1/models/{name}/predict``, ``POST /v1/features/ingest`` (events for the
online features, docs/features.md), ``GET /v1/models``, ``GET /healthz``,
``GET /readyz``, ``GET /metrics``, and the admin actions under ``/v1/admin/`` (a per-person
token, ``Authorization: Bearer TOKEN``; ``keel tokens add NAME`` makes one), among them
``POST /v1/admin/promotions/{run}/approve`` and ``/reject`` (``keel.retrain.promotion``).
"""

import contextlib
import json
import logging
import os
import socket
import sys
from typing import Any

from keel.errors import ConfigError, KeelError
from keel.serve.config import ServeConfig
from keel.serve.gateway import Gateway, Refusal
from keel.serve.validation import InvalidInput

log = logging.getLogger("keel.serve")
HOW_TO_GET_A_TOKEN = (
    "admin actions need a per-person token: ask an operator to run `keel tokens add NAME` "
    "and send it as 'Authorization: Bearer TOKEN'"
)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(
        json.dumps(body, allow_nan=False, default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _refused(error: Exception) -> Any:
    if isinstance(error, InvalidInput):
        body = {"detail": str(error)}
        if error.column is not None:
            body["column"] = error.column
        if error.record is not None:
            body["record"] = error.record
        return _json(422, body)
    if isinstance(error, Refusal):
        headers = (
            {"Retry-After": str(error.details["retry_after"])}
            if "retry_after" in (error.details)
            else None
        )
        return _json(error.status, error.body(), headers)
    if isinstance(error, ConfigError):  # an admin request the gateway cannot carry out
        return _json(422, {"detail": str(error)})
    return _json(503, {"detail": str(error)})


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, or a 413 Refusal past ``limit`` bytes (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise Refusal(413, f"the body is {declared} bytes; at most {limit} are taken")
        except ValueError:
            raise Refusal(400, "Content-Length is not a number") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"the body is over {limit} bytes; at most {limit} are taken")
        chunks.append(chunk)
    return b"".join(chunks)


def _record_schema(served: Any) -> dict[str, Any]:
    """A record's JSON Schema: the model's inputs, less the online features the gateway
    looks up itself (a record that sends one is refused)."""
    schema = served.deployment.champion.inputs.json_schema()
    if served.features is None:
        return schema
    looked_up = {n for f in served.features.definitions for n in (f.name, f.as_of)}
    return {
        **schema,
        "properties": {k: v for k, v in schema["properties"].items() if k not in looked_up},
        "required": [name for name in schema["required"] if name not in looked_up],
    }


def _predict_body_schema(gateway: Gateway) -> dict[str, Any]:
    records = [_record_schema(s) for s in gateway.served.values()]
    record: dict[str, Any] = records[0] if len(records) == 1 else {"anyOf": records}
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {"record": record, "request_id": {"type": "string"}},
                "required": ["record"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "records": {"type": "array", "items": record, "minItems": 1},
                    "request_ids": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["records"],
                "additionalProperties": False,
            },
        ]
    }


def create_app(config: ServeConfig, gateway: Gateway | None = None, on_ready: Any = None) -> Any:
    """The FastAPI app serving ``config``: the gateway starts with the app and is closed
    (shadows drained, logs written and compacted) when it stops. A ``gateway`` given here
    is the caller's: started if it is not, closed by the caller.

    >>> create_app.__name__
    'create_app'
    """
    from fastapi import FastAPI, Request

    owned = gateway is None
    gateway = gateway or Gateway(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        if gateway.started_at is None:
            gateway.start()
            gateway.wait_for_shadows(60)
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if owned:
                gateway.close()

    app = FastAPI(
        title="keel serve",
        summary="Answers with the champion, shadows challengers, logs every prediction.",
        version="1",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    limit = config.max_body_bytes

    @app.post(
        "/v1/models/{name}/predict",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object"}  # filled in once the models are loaded
                    }
                },
            }
        },
        responses={
            200: {"description": "The answer(s), with request id(s) and model version."},
            400: {"description": "The body is not JSON."},
            404: {"description": "No such model here."},
            413: {"description": "The body (or batch) is too large."},
            422: {"description": "An input is missing, extra or of the wrong kind."},
            503: {"description": "The prediction could not be logged; not answered."},
        },
    )
    async def predict(name: str, request: Request) -> Any:
        """Answer one record (``{"record": {...}}``) or a batch (``{"records": [...]}``)."""
        try:
            body = await read_body(request, limit)
            return _json(200, await gateway.predict(name, body))
        except (InvalidInput, Refusal) as error:
            response = _refused(error)
            gateway.metrics.responses.labels(
                name if name in gateway.served else "-", str(response.status_code)
            ).inc()
            return response

    @app.post("/v1/features/ingest")
    async def ingest_features(request: Request) -> Any:
        """Events for the online features: ``{"records": [{...}, ...]}``, stamped available
        now, appended to the event log and the online state (``keel.features.ingest``);
        ``{"records": []}`` is a heartbeat (the states are current up to now)."""
        import asyncio

        try:
            body = await read_body(request, limit)
            return _json(200, await asyncio.to_thread(gateway.ingest_features, body))
        except (InvalidInput, Refusal) as error:
            return _refused(error)

    @app.get("/v1/models")
    async def models() -> Any:
        """Each model's champion, canaries and weights, shadows and log."""
        return _json(200, gateway.models())

    @app.get("/healthz")
    async def healthz() -> Any:
        """The process is up and answering (``pid``: which worker answered)."""
        return _json(200, {"status": "ok", "pid": os.getpid()})

    @app.get("/readyz")
    async def readyz() -> Any:
        """Ready: every champion loaded and every log writable (else 503 with the reasons)."""
        import asyncio

        ready, body = await asyncio.to_thread(gateway.readiness)
        return _json(200 if ready else 503, body)

    @app.get("/metrics")
    async def metrics() -> Any:
        """Prometheus metrics."""
        from starlette.responses import Response

        return Response(gateway.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def _actor(request: Request) -> str:
        import asyncio

        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            raise Refusal(401, f"no admin token given; {HOW_TO_GET_A_TOKEN}")
        from keel.tokens import verify_token

        store = await asyncio.to_thread(gateway.admin_store)
        actor = await asyncio.to_thread(verify_token, store, token.strip())
        if actor is None:
            raise Refusal(
                403,
                f"that token is not a valid admin token (revoked or mistyped); "
                f"{HOW_TO_GET_A_TOKEN}",
            )
        return actor

    async def _admin(request: Request, action: Any, *args: Any, field: str | None = None) -> Any:
        """Authenticate first (401/403), then read the body's ``field`` if asked, then act."""
        from keel.serve.gateway import parse_body

        try:
            actor = await _actor(request)
            if field is not None:
                body = parse_body(await read_body(request, 65_536) or b"{}")
                value = body.get(field) if isinstance(body, dict) else None
                if field == "forget":  # the whole body: {"column", "values"}
                    value = body if isinstance(body, dict) else None
                if field == "arm" and value is None:
                    value = "canary"
                wanted = dict if field in ("weights", "forget") else str
                if not isinstance(value, wanted):
                    raise InvalidInput(
                        'the body is {"column": ENTITY_KEY, "values": [VALUE, ...]}'
                        if field == "forget"
                        else 'the body is {"weights": {"champion": W, ARM: W}}'
                        if field == "weights"
                        else 'the body is {"arm": NAME} (a canary arm or a challenger)'
                    )
                args = (*args, value)
            return _json(200, await gateway.run_admin(action, *args, actor))
        except (InvalidInput, Refusal, KeelError) as error:
            return _refused(error)

    @app.put("/v1/admin/models/{name}/weights")
    async def set_weights(name: str, request: Request) -> Any:
        """Set the canary split: ``{"weights": {"champion": 0.9, "canary": 0.1}}``."""
        return await _admin(request, gateway.set_weights, name, field="weights")

    @app.post("/v1/admin/models/{name}/promote")
    async def promote(name: str, request: Request) -> Any:
        """Promote a canary arm or a challenger: ``{"arm": "canary"}``."""
        return await _admin(request, gateway.promote, name, field="arm")

    @app.post("/v1/admin/models/{name}/rollback")
    async def rollback(name: str, request: Request) -> Any:
        """The champion before the last promotion or reload answers again."""
        return await _admin(request, gateway.rollback, name)

    @app.post("/v1/admin/models/{name}/reload")
    async def reload(name: str, request: Request) -> Any:
        """Load new versions of the model's sources now (as every ``reload_seconds``)."""
        return await _admin(request, gateway.reload, name)

    @app.post("/v1/admin/models/{name}/forget")
    async def forget(name: str, request: Request) -> Any:
        """Forget entities: ``{"column": "customer_id", "values": ["c1", "c2"]}``; what was
        logged for them goes from the model's logs (and its shadows'). Returns the counts."""
        return await _admin(request, gateway.forget, name, field="forget")

    async def _decide(request: Request, run: str, verb: str) -> Any:
        """Approve or reject a promotion run through ``keel.retrain.promotion`` with the
        caller's bearer token (the library verifies it and audits every refusal)."""
        import asyncio

        from keel.serve.gateway import parse_body

        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        try:
            body = parse_body(await read_body(request, 65_536) or b"{}")
        except (InvalidInput, Refusal):
            body = None
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            reason = None
        store = await asyncio.to_thread(gateway.admin_store)
        done, status, said = await asyncio.to_thread(
            _promotion_decision, store, run, verb, token or None, reason
        )
        if done is not None:
            return _json(200, done)
        if not token:
            said = f"{said}; {HOW_TO_GET_A_TOKEN}"
        return _json(status, {"detail": said, "run": run})

    @app.post("/v1/admin/promotions/{run}/approve")
    async def approve_promotion(run: str, request: Request) -> Any:
        """Approve a pending promotion run (``keel retrain status`` lists them): the
        champion alias moves to the challenger, audited under the token's owner. Body
        (optional): ``{"reason": "..."}``. Needs a per-person token (not the shared one)."""
        return await _decide(request, run, "approve")

    @app.post("/v1/admin/promotions/{run}/reject")
    async def reject_promotion(run: str, request: Request) -> Any:
        """Reject a pending promotion run: ``{"reason": "..."}`` (required). Needs a
        per-person token."""
        return await _decide(request, run, "reject")

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original_openapi()
        if gateway.served:
            body = schema["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]
            body["content"]["application/json"]["schema"] = _predict_body_schema(gateway)
            parameters = schema["paths"]["/v1/models/{name}/predict"]["post"]["parameters"]
            for parameter in parameters:
                if parameter["name"] == "name":
                    parameter["schema"] = {"type": "string", "enum": sorted(gateway.served)}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _promotion_decision(
    store: Any, run: str, verb: str, token: str | None, reason: str | None
) -> tuple[dict | None, int, str]:
    """(the decided run, or None; the HTTP status; the refusal) of an approval or a
    rejection. Every refusal is the library's, audited by it: 401 without a token, 403 with
    one that is not a person's, 404 for an unknown run, 422 for a rejection without a
    reason, 409 otherwise (not pending, the champion moved, another promotion running)."""
    from keel.retrain.promotion import PromotionRefused, approve, get_run, reject
    from keel.tokens import SHARED_TOKEN_ACTOR, verify_token

    registry = _registry(store)
    try:
        if verb == "approve":
            found = approve(store, run, token, registry=registry, reason=reason or None)
        else:
            found = reject(store, run, token, reason or "", registry=registry)
        return found.to_dict(), 200, ""
    except PromotionRefused as error:
        said = str(error)
    owner = verify_token(store, token) if token else None
    if token is None:
        return None, 401, said
    if owner is None or owner == SHARED_TOKEN_ACTOR:
        return None, 403, said
    try:
        get_run(store, run)
    except KeelError:
        return None, 404, said
    if verb == "reject" and not (reason or "").strip():
        return None, 422, said
    return None, 409, said


def _registry(store: Any) -> Any:
    """The registry promotions move aliases in: ``KEEL_REGISTRY`` when set, MLflow when a
    URI names one, else keel's embedded registry in the admin store (as ``keel ui``)."""
    from keel.registry import open_registry
    from keel.registry.mlflow import configured_uri

    kind = os.environ.get("KEEL_REGISTRY") or ("mlflow" if configured_uri() else "embedded")
    return open_registry(kind, store=store)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    >>> sock = bind("127.0.0.1", 0); sock.getsockname()[1] > 0
    True
    >>> sock.close()
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: without, a response's headers and body (two writes) meet
    # the client's delayed ACK and each answer waits 40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class JsonLines(logging.Formatter):
    """Log records as one JSON object a line: time, level, logger, message (and the error).

    >>> record = logging.LogRecord("keel.serve", logging.WARNING, "", 0, "a %s", ("b",), None)
    >>> json.loads(JsonLines().format(record))["message"]
    'a b'
    """

    def format(self, record: logging.LogRecord) -> str:
        from datetime import UTC, datetime

        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _server_class() -> Any:
    import signal
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a stop asked by a signal exits 0 once done (uvicorn
        re-raises the signal after its graceful shutdown, which reads as a crash)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server


CONFIG_VARIABLE = "KEEL_SERVE_CONFIG"
READY_VARIABLE = "KEEL_SERVE_READY_FOLDER"


def _log_json_lines() -> None:
    logger = logging.getLogger("keel.serve")
    if not any(isinstance(h.formatter, JsonLines) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def worker_app() -> Any:
    """The app of one ``--workers`` process: a gateway of its own (models, shadow processes,
    log writers), started with the app, from the configuration in ``KEEL_SERVE_CONFIG``."""
    sys.setswitchinterval(0.0005)
    _log_json_lines()
    config = ServeConfig.from_dict(json.loads(os.environ[CONFIG_VARIABLE]))
    folder = os.environ.get(READY_VARIABLE)

    def ready() -> None:
        if folder:
            with open(os.path.join(folder, str(os.getpid())), "w"):
                pass

    return create_app(config, on_ready=ready)


def _serve_workers(config: ServeConfig, announce: Any) -> None:
    """``workers`` processes on one socket (uvicorn's supervisor restarts any that dies);
    each has its own gateway: its own shadow processes and its own WAL segments (several
    writers share a log folder safely: each segment is locked by its writer and compacted
    under its own name)."""
    import shutil
    import tempfile
    import threading
    import time

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    ready = tempfile.mkdtemp(prefix="keel-serve-ready-")
    os.environ[CONFIG_VARIABLE] = json.dumps(config.to_dict())
    os.environ[READY_VARIABLE] = ready
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    settings = uvicorn.Config(
        "keel.serve.app:worker_app",
        factory=True,
        workers=config.workers,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=65_536,
    )
    supervisor = Multiprocess(settings, sockets=[sock])

    def wait_for_workers() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not supervisor.should_exit.is_set():
            if len(os.listdir(ready)) >= config.workers:
                if announce is not None:
                    announce(f"http://{host}:{port}")
                return
            time.sleep(0.1)

    threading.Thread(target=wait_for_workers, daemon=True).start()
    try:
        supervisor.run()
    finally:
        sock.close()
        shutil.rmtree(ready, ignore_errors=True)


def serve(config: ServeConfig, announce: Any = None) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (finish requests in flight,
    drain the shadows, write and compact the logs). ``announce(url)`` is called once the
    models are loaded and the socket listens."""
    import uvicorn

    _log_json_lines()
    if config.workers > 1:
        _serve_workers(config, announce)
        return
    # The committer and shadow threads hand the GIL back and forth with the event loop; at
    # Python's default 5 ms switch interval a woken thread can wait that long for it, which
    # would add milliseconds to each durable answer.
    sys.setswitchinterval(0.0005)
    gateway = Gateway(config)
    gateway.start()
    gateway.wait_for_shadows(60)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    app = create_app(config, gateway)
    server = _server_class()(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            limit_max_requests=None,
            h11_max_incomplete_event_size=65_536,
        )
    )
    if announce is not None:
        announce(f"http://{host}:{port}")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        gateway.close()  # requests in flight are done: drain shadows, write every log
