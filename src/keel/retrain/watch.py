"""A shadowed challenger watched window by window: the ``challenger`` check's Results.

``challenger_results(monitor, store, window_start, window_end, now)`` is the call a
monitor makes for each window it checks while a challenger is shadowed (or a canary
runs): the **running** comparison of every request the challenger answered up to the
window's end, with the labels matured (by ``performance.label_maturity``) as of ``now``,
judged by the same gate ``compare`` uses, as Results of check ``challenger``
(``keel.checks.challenger``): one per guarded metric and segment (Δ and its lower bound),
``paired_labels`` against the horizon, ``shadow_drop_share``; a canary adds
``latency_p99_ms`` and ``error_rate``. Until n reaches the horizon they are all
``insufficient_data``. They never promote: only ``compare`` records a run.

The horizon is the one ``compare`` fixes (the ``promotion horizon`` event); when none is
fixed yet and a first day of shadow answers is in, this call fixes it, by the same rule.
No challenger, a challenger that is the champion, or no shadow answers up to the
window's end: no Results (the window had nothing to compare).

``store_challenger_results(monitor, store, now)`` writes them for every closed window of
the monitor from the challenger's first answer to ``now`` (``keel retrain compare MONITOR
--store-results``); rerun, it writes only what changed (the store's revisions).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel.result import Result
from keel.retrain.gate import evaluate_gate
from keel.windows import window_key

if TYPE_CHECKING:  # the monitor imports the policy; retrain never imports the monitor
    from keel.monitor.config import MonitorConfig


def challenger_results(
    monitor: MonitorConfig,
    store: Any,
    window_start: datetime,
    window_end: datetime,
    now: datetime | None = None,
    *,
    registry: Any = None,
    entity: str | None = None,
    segment: str | None = None,
) -> list[Result]:
    """The ``challenger`` Results of one monitor window (see the module docstring).

    >>> import tempfile, pathlib, textwrap, datetime as dt
    >>> from keel.monitor.config import parse_config
    >>> from keel.store import ResultStore
    >>> from keel.registry.embedded import EmbeddedRegistry
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    >>> monitor = parse_config(textwrap.dedent(f'''
    ...     monitors:
    ...       - {{name: m, model: loans, baseline: b.keel, window: 7D, logs: {folder},
    ...          retrain: {{}}}}'''), "keel.yaml")[0]
    >>> end = dt.datetime(2026, 1, 8, tzinfo=dt.UTC)
    >>> challenger_results(monitor, store, end - dt.timedelta(days=7), end,
    ...                    registry=EmbeddedRegistry(store, folder))
    []
    """
    from keel.checks.challenger import challenger_results as as_results
    from keel.retrain import promotion

    policy = getattr(monitor, "retrain", None)
    if policy is None:
        return []
    registry = registry if registry is not None else promotion._open_registry(store)
    now = _aware(now or datetime.now(UTC))
    window_start, window_end = _aware(window_start), _aware(window_end)
    aliases = registry.aliases(monitor.model)
    champion, challenger = aliases.get(promotion.CHAMPION), aliases.get(promotion.CHALLENGER)
    if challenger is None or challenger == champion:
        return []
    as_of = min(window_end, now)
    where = dict(
        monitor=monitor.name,
        model=monitor.model,
        model_version=str(challenger),
        window_start=window_key(window_start.timestamp()),  # the monitor's own keys
        window_end=window_key(window_end.timestamp()),
    )
    if policy.labels_depend_on_decision:
        from keel.retrain.canary import canary_report

        found = canary_report(monitor, store, challenger, as_of, labels_as_of=now)
        if found is None:
            return []
        report, extra = found
        return as_results(
            report.to_dict(),
            max_shadow_drop_share=policy.max_shadow_drop_share,
            **where,
            details={"champion_version": champion, "comparison": "canary", **extra},
        )
    pairs = promotion._pairs(monitor, challenger, as_of, entity, segment, labels_as_of=now)
    if pairs.shadowed == 0:
        return []
    planned = promotion._horizon(store, monitor, policy, challenger, pairs, now)
    if planned is None or pairs.n < 2:
        report = promotion._report(policy, planned, pairs, None)
    else:
        report = evaluate_gate(
            pairs.champion,
            pairs.challenger,
            pairs.labels,
            policy.gate_config(planned, seed_parts=("retrain-gate", monitor.name, str(challenger))),
            segments=pairs.segments,
            entities=pairs.entities,
            shadow_drop_share=pairs.drop_share,
        )
    report = promotion.latency_guard(report, pairs, policy)
    return as_results(
        report.to_dict(),
        max_shadow_drop_share=policy.max_shadow_drop_share,
        **where,
        details={"champion_version": champion, "comparison": "shadow", "shadowed": pairs.shadowed},
    )


def store_challenger_results(
    monitor: MonitorConfig, store: Any, now: datetime | None = None, *, registry: Any = None
) -> list[Result]:
    """Write the ``challenger`` Results of every closed monitor window from the challenger's
    first shadow answer to ``now``; returns them (empty when nothing is shadowed).

    >>> import tempfile, pathlib, textwrap
    >>> from keel.monitor.config import parse_config
    >>> from keel.store import ResultStore
    >>> from keel.registry.embedded import EmbeddedRegistry
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    >>> monitor = parse_config(textwrap.dedent(f'''
    ...     monitors:
    ...       - {{name: m, model: loans, baseline: b.keel, window: 1D, logs: {folder},
    ...          retrain: {{}}}}'''), "keel.yaml")[0]
    >>> store_challenger_results(monitor, store, registry=EmbeddedRegistry(store, folder))
    []
    """
    from keel.errors import ConfigError
    from keel.retrain import promotion
    from keel.windows import WindowSpec

    policy = getattr(monitor, "retrain", None)
    if policy is None:
        return []
    spec = WindowSpec.parse(monitor.window)
    if spec.rows is not None:
        raise ConfigError("challenger Results need a time window (1h, 1D, 7D), not row windows")
    registry = registry if registry is not None else promotion._open_registry(store)
    now = _aware(now or datetime.now(UTC))
    first = _first_answer(monitor, registry, now)
    if first is None:
        return []
    period = timedelta(microseconds=spec.period_ns // 1000)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start = epoch + period * ((first - epoch) // period)
    found: list[Result] = []
    while start + period <= now:
        found += challenger_results(monitor, store, start, start + period, now, registry=registry)
        start += period
    if found:
        store.write(found)
    return found


def _first_answer(monitor, registry, now) -> datetime | None:
    """When the challenger's first shadow (or canary) row was logged, up to ``now``."""
    from keel.retrain import promotion
    from keel.retrain.shadow_pairs import SHADOW_SUFFIX
    from keel.store.logs import log_root
    from keel.store.queries import log_files, read_log

    challenger = registry.aliases(monitor.model).get(promotion.CHALLENGER)
    if challenger is None:
        return None
    root = log_root(monitor.logs)
    policy = monitor.retrain
    model = monitor.model if policy.labels_depend_on_decision else monitor.model + SHADOW_SUFFIX
    if not log_files(root, "predictions", model, None, now):
        return None
    table = read_log(root, "predictions", model, None, now)
    if not table.num_rows or "model_version" not in table.column_names:
        return None
    import pyarrow.compute as pc

    mine = table.filter(pc.equal(pc.cast(table["model_version"], "string"), str(challenger)))
    if not mine.num_rows:
        return None
    return _aware(pc.min(mine["event_time"]).as_py())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
