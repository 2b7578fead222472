"""A monitor with ``skew:`` over a real prediction log: skew Results per window, stored and
diagnosed; a truncated online window reads "training–serving skew", not "data drift"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import keel
from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.features import WindowedFeature, compute_offline
from keel.monitor.config import parse_config
from keel.monitor.run import run_monitor
from keel.store import ResultStore

UTC_US = pa.timestamp("us", tz="UTC")
DAY = 86_400_000_000
START = 1_772_323_200_000_000  # Sunday 2026-03-01; 7D windows start on Thursdays
WEEK_ONE = START + 18 * DAY  # Thursday 2026-03-19
FEATURES_YAML = """features:
  - {name: clicks_7d, entity: user_id, aggregation: count, window: 7D}
  - {name: spend_7d, entity: user_id, column: amount, aggregation: sum, window: 7D}
"""
CLICKS = WindowedFeature(
    "clicks_7d", entity="user_id", column=None, aggregation="count", window="7D"
)
SPEND = WindowedFeature(
    "spend_7d", entity="user_id", column="amount", aggregation="sum", window="7D"
)
SHORT = WindowedFeature(
    "clicks_7d", entity="user_id", column=None, aggregation="count", window="3D"
)


def _requests(rng, start, days, n, prefix):
    return pa.table(
        {
            "request_id": pa.array([f"{prefix}{i}" for i in range(n)]),
            "user_id": pa.array(rng.integers(0, 1000, n)),
            "event_time": pa.array(
                np.sort(start + rng.integers(0, days * DAY, n)), pa.int64()
            ).cast(UTC_US),
        }
    )


def _served(events, requests, features):
    computed = compute_offline(list(features), events, requests)
    served = requests
    for feature in features:
        served = served.append_column(feature.name, computed.column(feature.name))
    score = 0.01 * np.asarray(served.column("clicks_7d").to_numpy(), float)
    return served.append_column("score", pa.array(np.clip(score, 0, 1)))


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(7)
    n = 16_000
    times = START + np.sort(rng.integers(0, 32 * DAY, n))
    events = pa.table(
        {
            "user_id": pa.array(rng.integers(0, 1000, n)),
            "amount": pa.array(np.round(rng.gamma(2.0, 20.0, n), 2)),
            "event_time": pa.array(times, pa.int64()).cast(UTC_US),
            "available_time": pa.array(times + 30_000_000, pa.int64()).cast(UTC_US),
        }
    )
    pq.write_table(events, tmp_path / "events.parquet")
    training = _served(events, _requests(rng, START + 8 * DAY, 10, 3_000, "t"), (CLICKS, SPEND))
    Baseline.from_data(
        training, score="score", timestamp="event_time", id="request_id", roles={"user_id": "id"}
    ).save(tmp_path / "b.keel")
    quiet = _served(events, _requests(rng, WEEK_ONE, 7, 1_500, "a"), (CLICKS, SPEND))
    truncated = _served(events, _requests(rng, WEEK_ONE + 7 * DAY, 7, 1_500, "b"), (SHORT, SPEND))
    keel.log_predictions(quiet, "clicks", root=tmp_path / "logs")
    keel.log_predictions(truncated, "clicks", root=tmp_path / "logs")
    from keel.store.logs import _flush_all

    _flush_all()  # compacted into Parquet, as at exit
    return tmp_path


def _monitor(
    folder,
    skew="    skew:\n      events: {events}\n    alerts: [{{name: skewed, check: skew}}]\n",
):
    text = FEATURES_YAML + (
        "monitors:\n  - name: clicks\n    model: clicks\n"
        f"    baseline: {folder / 'b.keel'}\n    logs: {folder / 'logs'}\n    window: 7D\n"
        + skew.format(events=folder / "events.parquet")
    )
    return parse_config(text, "keel.yaml")[0]


def test_a_truncated_online_window_reads_skew_not_drift(setup):
    store = ResultStore(f"sqlite:///{setup / 'keel.db'}")
    now = datetime.fromtimestamp((WEEK_ONE + 14 * DAY) / 1e6, UTC) + timedelta(hours=1)
    run = run_monitor(_monitor(setup), store, now=now)
    assert run.windows == 2
    stored = store.latest(monitor="clicks")
    skew = stored[stored["check"] == "skew"]
    assert {"mismatch_share", "missing_share", "extra_share", "smape", "psi"} <= set(skew["metric"])
    weeks = sorted(set(skew["window_start"]))
    first, second = weeks
    alerting = skew[skew["status"] == "alert"]
    assert set(alerting["window_start"]) == {second}
    assert set(alerting["column"]) == {"clicks_7d"}
    verdicts = stored[stored["check"] == "diagnosis"].set_index("window_start")["details"]
    assert verdicts[first]["verdict"] == "healthy"
    assert verdicts[second]["verdict"] == "training–serving skew"
    assert verdicts[second]["summary"] == (
        "training–serving skew in clicks_7d (truncated window); model outputs moved (score)"
    )
    drifted = stored[(stored["check"] == "feature_drift") & (stored["status"] == "alert")]
    assert "clicks_7d" in set(drifted[drifted["window_start"] == second]["column"])  # it drifts too
    assert second in run.alerting
    from keel.checks.base import CHECKS

    assert set(skew["metric"]) <= CHECKS["skew"].metrics
    assert [(a["rule"], a["state"]) for a in run.alerts] == [("skewed", "firing")]
    assert "1 feature skewed in window" in run.alerts[0]["summary"], run.alerts[0]["summary"]


def test_a_served_log_without_the_entity_keys_is_a_clear_error(setup):
    store = ResultStore(f"sqlite:///{setup / 'keel.db'}")
    monitor = _monitor(setup, "    skew:\n      events: {events}\n      entity_keys: [account]\n")
    now = datetime.fromtimestamp((WEEK_ONE + 14 * DAY) / 1e6, UTC) + timedelta(hours=1)
    with pytest.raises(ConfigError, match=r"monitor 'clicks': skew: .*no 'account' \(entity key\)"):
        run_monitor(monitor, store, now=now)


def test_skew_configuration_errors_name_the_key(tmp_path):
    head = "monitors:\n  - name: m\n    model: m\n    baseline: b.keel\n    window: 1D\n"
    with pytest.raises(ConfigError, match=r"monitors\[0\]\.skew\.features: 'nope' .*not declared"):
        parse_config(
            FEATURES_YAML + head + "    skew:\n      features: [nope]\n      events: e/\n", "k"
        )
    with pytest.raises(ConfigError, match=r"monitors\[0\]\.skew\.entity_keys"):
        parse_config(
            head + "    skew:\n      features: [a]\n      truth: {table: t.parquet}\n", "k"
        )
    with pytest.raises(ConfigError, match=r"\(line 8\): monitors\[0\]\.skew\.tolerance"):
        parse_config(head + "    skew:\n      features: [a]\n      tolerance: 2\n", "k")
    with pytest.raises(ConfigError, match=r"skew\.truth: feast\.refs: .*view:feature"):
        parse_config(head + "    skew:\n      truth: {feast: {repo: r, refs: [x]}}\n", "k")
    with pytest.raises(ConfigError, match=r"\(line 2\): features\[0\]\.aggregation"):
        parse_config(
            "features:\n  - {name: x, entity: u, column: a, aggregation: median, window: 1D}\n"
            + head,
            "k",
        )
    monitor = parse_config(
        FEATURES_YAML + head + "    skew:\n      events: e/\n      clock_tolerance: 2s\n", "k"
    )[0]
    from keel.monitor.config import resolve_skew

    resolved = resolve_skew(monitor)
    assert resolved.spec.features == ("clicks_7d", "spend_7d")
    assert resolved.spec.entity_keys == ("user_id",) and resolved.spec.clock_tolerance == 2.0
    assert resolved.spec.tolerance == 0.001 and resolved.spec.served_time == "event_time"
    assert {t.name for t in resolved.truths.values()} == {
        "keel.features (bitemporal: event time and availability)"
    }


def test_truth_features_reads_the_event_log_under_the_log_root_by_default(tmp_path):
    from keel.monitor.config import resolve_skew

    head = "monitors:\n  - name: m\n    model: m\n    baseline: b.keel\n    window: 1D\n"
    monitor = parse_config(
        FEATURES_YAML + head + f"    logs: {tmp_path}\n    skew: {{}}\n", "keel.yaml"
    )[0]
    truth = resolve_skew(monitor).truths["clicks_7d"]
    rows = pa.table({"request_id": ["r"], "user_id": [1], "event_time": pa.array([START], UTC_US)})
    expected = tmp_path / "features" / "events"
    with pytest.raises(ConfigError, match=f"the event log {expected} does not exist"):
        truth(rows, "event_time")


def test_a_stale_value_served_from_a_cache_reads_skew_in_the_monitor(tmp_path):
    rng = np.random.default_rng(8)
    n = 16_000
    times = START + np.sort(rng.integers(0, 32 * DAY, n))
    events = pa.table(
        {
            "user_id": pa.array(rng.integers(0, 1000, n)),
            "amount": pa.array(np.round(rng.gamma(2.0, 20.0, n), 2)),
            "event_time": pa.array(times, pa.int64()).cast(UTC_US),
        }
    )
    pq.write_table(events, tmp_path / "events.parquet")
    training = _served(events, _requests(rng, START + 8 * DAY, 10, 3_000, "t"), (CLICKS, SPEND))
    Baseline.from_data(
        training, score="score", timestamp="event_time", id="request_id", roles={"user_id": "id"}
    ).save(tmp_path / "b.keel")
    requests = _requests(rng, WEEK_ONE, 7, 1_500, "s")
    served_at = pc.cast(requests.column("event_time"), pa.int64()).to_numpy()
    cached = requests.set_column(  # values computed 6 hours before they were served
        2, "event_time", pa.array(served_at - 6 * 3_600_000_000, pa.int64()).cast(UTC_US)
    )
    served = _served(events, cached, (CLICKS, SPEND)).set_column(
        2, "event_time", requests.column("event_time")
    )
    served = served.append_column("clicks_7d__as_of", cached.column("event_time"))
    keel.log_predictions(served, "clicks", root=tmp_path / "logs")
    from keel.store.logs import _flush_all

    _flush_all()
    monitor = _monitor(
        tmp_path, "    skew:\n      events: {events}\n      ttl: {{clicks_7d: 1h}}\n"
    )
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    now = datetime.fromtimestamp((WEEK_ONE + 7 * DAY) / 1e6, UTC) + timedelta(hours=1)
    run_monitor(monitor, store, now=now)
    stored = store.latest(monitor="clicks")
    stale = stored[(stored["check"] == "skew") & (stored["metric"] == "stale_share")]
    assert stale["value"].tolist() == [1.0] and stale["status"].tolist() == ["alert"]
    verdict = stored[stored["check"] == "diagnosis"]["details"].iloc[0]
    assert verdict["summary"].startswith("training–serving skew in clicks_7d (stale value)"), (
        verdict["summary"]
    )
