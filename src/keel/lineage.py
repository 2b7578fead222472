"""What trained this model? ``keel lineage loans@champion`` answers from the records.

It walks version → training run → datasets → baseline → monitors that watch it, and says
what trained it (data with fingerprints and time ranges, code, params, environment, the
holdout metrics), who moved its aliases and why (keel's audit), and which monitor windows
and alerts the monitors recorded for that version. The same walk, JSON-ready, is
``lineage()``; ``describe()`` prints it.

>>> import tempfile, pathlib
>>> from sklearn.dummy import DummyClassifier
>>> from keel.store import ResultStore
>>> from keel.registry.embedded import EmbeddedRegistry
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> registry = EmbeddedRegistry(ResultStore(f"sqlite:///{folder / 'keel.db'}"), folder)
>>> run = registry.log_run("loans", {"params": {"C": 1}}, {})
>>> _ = registry.register("loans", DummyClassifier().fit([[0], [1]], [0, 1]), run)
>>> found = lineage(registry, registry.store, "loans@1")
>>> found["version"]["ref"], found["run"]["params"], found["reproducible"]
('loans@1', {'C': 1}, False)
"""

from __future__ import annotations

import json
from typing import Any

LINEAGE_REPORT_FORMAT = "keel.lineage-report/v1"


def lineage(registry: Any, store: Any, ref: str) -> dict[str, Any]:
    """The lineage of the version ``ref`` names (see the module docstring), JSON-ready."""
    from keel.registry.aliases import history
    from keel.registry.base import resolve

    version = resolve(registry, ref)
    record = registry.run_record(version.run_id) if version.run_id else {}
    intervals = history(registry, store, version.name)
    moves = [i for i in intervals if i["version"] == version.version]
    aliases_now = sorted(
        alias
        for alias, number in registry.aliases(version.name).items()
        if number == version.version
    )
    data = record.get("data") or {}
    reproducible = bool(
        record
        and all((data.get(role) or {}).get("reproducible") for role in ("train", "holdout"))
        and (record.get("code") or {}).get("entrypoint")
        and (record.get("code") or {}).get("commit")
    )
    return {
        "format": LINEAGE_REPORT_FORMAT,
        "ref": ref,
        "registry": {"kind": registry.kind, "uri": registry.uri},
        "version": {
            "name": version.name,
            "version": version.version,
            "ref": version.ref,
            "created_at": version.created_at,
            "flavour": version.flavour,
            "aliases": aliases_now,
            "tags": version.tags,
        },
        "run": {
            "id": version.run_id,
            "started_at": record.get("started_at"),
            "finished_at": record.get("finished_at"),
            "user": record.get("user"),
            "params": record.get("params"),
            "model": record.get("model"),
        },
        "data": data,
        "code": {k: v for k, v in (record.get("code") or {}).items() if k != "diff"}
        | {"diff_stored": bool((record.get("code") or {}).get("diff"))},
        "environment": record.get("environment"),
        "holdout": record.get("holdout"),
        "baseline": record.get("baseline"),
        "promotions": moves,
        "monitors": _monitors(store, version.name, version.version),
        "reproducible": reproducible,
    }


def _monitors(store: Any, name: str, number: int) -> list[dict[str, Any]]:
    """Monitors of this model (bound to this version's baseline or not), with the windows and
    alerting Results they stored for this version."""
    from keel.binding import bound_version

    found = []
    table = store.table("monitors")
    for row in table.to_dict("records"):
        config = json.loads(row["config"]) if row["config"] else {}
        if row["model"] != name and bound_version(str(config.get("baseline", ""))) is None:
            continue
        bound = bound_version(str(config.get("baseline", "")))
        if bound is not None and bound[0] != name:
            continue
        results = store.latest(monitor=row["name"])
        if len(results):
            versions = results["model_version"]
            mine = versions == str(number)
            if bound == (name, number):  # a log that names no version: judged on this one
                mine |= versions.isna() | (versions == "")
            results = results[mine]
        windows = sorted(set(results["window_start"].dropna())) if len(results) else []
        alerting = results[results["status"] == "alert"] if len(results) else results
        found.append(
            {
                "monitor": row["name"],
                "window": config.get("window"),
                "baseline": config.get("baseline"),
                "bound_to_this_version": bound == (name, number),
                "windows": len(windows),
                "first_window": windows[0] if windows else None,
                "last_window": windows[-1] if windows else None,
                "alerting_results": int(len(alerting)),
                "alerting_windows": sorted(set(alerting["window_start"].dropna()))
                if len(alerting)
                else [],
            }
        )
    return found


def describe(found: dict[str, Any]) -> list[str]:
    """The lineage as lines a person reads (what ``keel lineage`` prints).

    >>> describe({"ref": "loans@1", "version": {"ref": "loans@1", "aliases": []},
    ...           "registry": {"kind": "embedded", "uri": "keel:x"}, "run": {}, "data": {},
    ...           "code": {}, "promotions": [], "monitors": [], "reproducible": False})[0]
    'loans@1 is loans@1 (embedded registry keel:x)'
    """
    version, run, code = found["version"], found["run"], found["code"]
    lines = [
        f"{found['ref']} is {version['ref']} ({found['registry']['kind']} registry "
        f"{found['registry']['uri']})"
    ]
    if version.get("aliases"):
        lines.append(f"  aliases now: {', '.join(version['aliases'])}")
    if run.get("id"):
        lines.append(
            f"  trained {run.get('finished_at') or run.get('started_at') or '?'} by "
            f"{run.get('user') or '?'} (run {run['id']})"
        )
    if code.get("entrypoint") or code.get("commit"):
        state = "dirty, diff stored" if code.get("diff_stored") else "dirty, no diff"
        state = state if code.get("dirty") else "clean"
        lines.append(
            f"  code: {code.get('entrypoint') or '?'} at commit "
            f"{(code.get('commit') or 'none')[:12]} ({state}) in {code.get('repo')}"
        )
    for role in ("train", "holdout"):
        data = found["data"].get(role)
        if not data:
            continue
        span = " → ".join(data["time_range"]) if data.get("time_range") else "no time column"
        source = data.get("source") or "an in-memory table (no source: cannot be reproduced)"
        lines.append(
            f"  {role} data: {source}, {data['rows']:,} rows, {span}, fingerprint "
            f"{data['fingerprint'][:16]}"
        )
    if run.get("params") is not None:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(run["params"].items())) or "none"
        lines.append(f"  params: {shown}")
    environment = found.get("environment") or {}
    if environment:
        packages = environment.get("packages", {})
        key = [p for p in ("scikit-learn", "numpy", "pandas", "pyarrow", "keel") if p in packages]
        lines.append(
            f"  environment: Python {environment.get('python')}; "
            + ", ".join(f"{p} {packages[p]}" for p in key)
            + f" ({len(packages)} packages recorded)"
        )
    metrics = (found.get("holdout") or {}).get("metrics") or {}
    if metrics:
        names = [k for k in ("roc_auc", "accuracy", "log_loss", "rmse", "mae") if k in metrics]
        lines.append(
            f"  holdout ({int(metrics.get('holdout_rows', 0)):,} rows): "
            + ", ".join(
                f"{k} {metrics[k]:.4g}"
                + (
                    f" [{metrics[k + '_lower']:.4g}, {metrics[k + '_upper']:.4g}]"
                    if f"{k}_lower" in metrics
                    else ""
                )
                for k in names
            )
        )
    baseline = found.get("baseline")
    if baseline:
        lines.append(f"  baseline: {baseline['id']} ({baseline['rows']:,} training rows)")
    for move in found["promotions"]:
        was = "" if move["certain"] else f" (uncertain since {move['earliest_start']})"
        lines.append(
            f"  {move['alias']}: {move['action']} {move['start']} by {move['actor']}: "
            f"{move['reason']}{was}" + (f", until {move['end']}" if move["end"] else "")
        )
    for monitor in found["monitors"]:
        bound = "reads this version's baseline" if monitor["bound_to_this_version"] else ""
        lines.append(
            f"  monitor {monitor['monitor']} ({monitor['window']}{', ' + bound if bound else ''}"
            f"): {monitor['windows']} windows of this version, "
            f"{len(monitor['alerting_windows'])} alerting"
        )
    if not found["reproducible"]:
        lines.append("  reproducible: no (keel reproduce says why)")
    return lines
