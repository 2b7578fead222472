"""``keel serve``: the gateway (``keel.serve``) on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.errors import ConfigError

app = typer.Typer(help="Serve models: the champion answers, challengers shadow, all is logged.")


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        name, sep, location = value.partition("=")
        if not sep or not name or not location:
            raise ConfigError(f"{what} {value!r}: give NAME=VALUE")
        pairs[name] = location
    return pairs


@app.command()
def serve(
    model: Annotated[
        str | None, typer.Argument(help="A skops model file, or models:/NAME@ALIAS.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A serve configuration (YAML).")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="The baseline file whose schema checks the inputs.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The model's name (default: file name).")] = None,
    challenger: Annotated[
        list[str] | None, typer.Option(help="NAME=FILE: a shadow (repeatable).")
    ] = None,
    canary: Annotated[list[str] | None, typer.Option(help="ARM=FILE: a canary arm.")] = None,
    weight: Annotated[
        list[str] | None, typer.Option(help="ARM=WEIGHT of the split (champion=0.9).")
    ] = None,
    entity_key: Annotated[
        list[str] | None, typer.Option(help="A column that keys routing (sticky).")
    ] = None,
    trust: Annotated[
        list[str] | None, typer.Option(help="A type the model file may hold (skops).")
    ] = None,
    shadow_share: Annotated[float, typer.Option(help="Share of requests shadowed.")] = 1.0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8000,
    log_root: Annotated[
        Path | None, typer.Option(help="Prediction log root (KEEL_LOG_ROOT, .keel/logs).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="durable (default, KEEL_LOG_MODE) or fast.")
    ] = None,
    reload_seconds: Annotated[
        float | None, typer.Option(help="Poll the sources this often (0: never).")
    ] = None,
    min_free_mb: Annotated[
        int | None, typer.Option(help="Not ready below this much free disk.")
    ] = None,
    store: Annotated[str | None, typer.Option(help="Store URL (admin tokens).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (each its own shadows and WAL).")
    ] = None,
) -> None:
    """Serve models over HTTP until SIGINT/SIGTERM, then stop gracefully (nothing lost)."""
    import sys

    from keel.serve.app import serve as run
    from keel.serve.config import ModelConfig, ServeConfig

    if config is not None:
        if model is not None:
            raise ConfigError("give a model file or --config, not both")
        settings = ServeConfig.load(config)
    elif model is None:
        raise ConfigError("say what to serve: keel serve MODEL --baseline FILE, or --config FILE")
    else:
        weights = {k: float(v) for k, v in _pairs(weight, "--weight").items()}
        canaries = _pairs(canary, "--canary")
        if canaries and not weights:
            raise ConfigError("--canary needs --weight for each arm (--weight champion=0.9 ...)")
        model_name = name or (
            model.split("/")[-1].split("@")[0]
            if model.startswith("models:/")
            else Path(model).name.split(".")[0]
        )
        settings = ServeConfig(
            models=[
                ModelConfig(
                    name=model_name,
                    model=model,
                    baseline=str(baseline) if baseline else None,
                    entity_keys=list(entity_key or []),
                    canaries=canaries,
                    weights=weights or {"champion": 1.0},
                    challengers=_pairs(challenger, "--challenger"),
                    shadow_share=shadow_share,
                    trusted=list(trust or []),
                )
            ]
        )
    settings.host, settings.port = host, port
    if log_root is not None:
        settings.log_root = log_root
    if mode is not None:
        if mode not in ("durable", "fast"):
            raise ConfigError(f"--mode {mode!r}: durable or fast")
        settings.log_mode = mode
    if reload_seconds is not None:
        settings.reload_seconds = reload_seconds
    if min_free_mb is not None:
        settings.min_free_mb = min_free_mb
    if store is not None:
        settings.store_url = store
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"--workers {workers}: at least 1")
        settings.workers = workers

    def announce(url: str) -> None:
        names = ", ".join(m.name for m in settings.models)
        print(
            f"keel serve: {url} serving {names}; log {settings.log_root} "
            f"({settings.log_mode}); Ctrl-C stops",
            flush=True,
        )
        sys.stdout.flush()

    run(settings, announce)
