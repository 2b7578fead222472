"""``keel train``: train through an entrypoint and record everything that made the model.

Exit codes: 0 trained and registered, 2 could not (bad data, entrypoint, registry).
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Annotated

import typer
from rich.console import Console

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)


def train(
    entrypoint: Annotated[
        str, typer.Argument(help="path/to/train.py:function (or module:function).")
    ],
    data: Annotated[str, typer.Option(help="Training data: Parquet, CSV or a folder.")],
    holdout: Annotated[
        str | None, typer.Option(help="Rows the model does not learn from (a file).")
    ] = None,
    holdout_last: Annotated[
        str | None, typer.Option(help="Hold out the latest share of --data by time (20%).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="k=v passed to the entrypoint (repeatable).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the entrypoint file's name).")
    ] = None,
    target: Annotated[str, typer.Option(help="Target (label) column.")] = "target",
    timestamp: Annotated[str | None, typer.Option(help="Event-time column.")] = None,
    id: Annotated[str | None, typer.Option(help="Row or entity id column.")] = None,  # noqa: A002
) -> None:
    """Train through ENTRYPOINT and register the model with everything that made it.

    Calls ENTRYPOINT(train: pyarrow.Table, params: dict) -> model, scores the holdout, and
    registers the model with its lineage: data fingerprints, code, params, environment,
    holdout metrics and a baseline."""
    from keel.errors import ConfigError
    from keel.tracking import load_entrypoint, track

    params = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: write key=value")
        params[key] = _value(value)
    function = load_entrypoint(entrypoint)
    model_name = name or entrypoint.rpartition(":")[0].rsplit("/", 1)[-1].removesuffix(".py")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with track(
            model_name,
            train=data,
            holdout=holdout,
            holdout_last=holdout_last,
            params=params,
            target=target,
            timestamp=timestamp,
            id=id,
            entrypoint=entrypoint,
        ) as run:
            version = run.log_model(function(run.train, dict(run.params)))
    for warning in caught:
        if "dirty git tree" in str(warning.message):
            err.print(f"[yellow]warning:[/] {warning.message}", highlight=False)
    record, metrics = run.record, run.record["holdout"]["metrics"]
    shown = [
        f"{k} {metrics[k]:.4g} [{metrics[k + '_lower']:.4g}, {metrics[k + '_upper']:.4g}]"
        for k in ("roc_auc", "accuracy", "rmse", "mae")
        if k in metrics and f"{k}_lower" in metrics
    ]
    out.print(
        f"{version.ref} registered in the {run.registry.kind} registry ({run.registry.uri}); "
        f"run {record['run_id']}, baseline {record['baseline']['id']}",
        highlight=False,
    )
    out.print(
        f"trained on {record['data']['train']['rows']:,} rows, holdout "
        f"{record['data']['holdout']['rows']:,} rows: {', '.join(shown) or 'no metrics'}",
        highlight=False,
    )


def _value(text: str):
    """A param's value: JSON when it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text
