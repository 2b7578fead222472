"""Segments: the same checks per slice, against that slice's reference, sharing the budget."""

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.monitor.config import parse_config
from keel.monitor.run import run_monitor
from keel.scenario import ROLES, generate, log_weeks
from keel.segments import segment_values, split
from keel.store import ResultStore


@pytest.fixture(scope="module")
def shifted_in_france(tmp_path_factory):
    """Four quiet weeks, except that in week 4 French applicants earn 60% more: a shift
    in a quarter of the rows that the whole sees diluted and the segment sees plainly."""
    folder = tmp_path_factory.mktemp("segments")
    scenario = generate(seed=31, training_weeks=20, week_rows=4000, production_weeks=4)
    Baseline.from_data(scenario.training, **ROLES, sample_size=10_000).save(folder / "b.keel")
    last = scenario.weeks[3]
    french = pc.equal(last["country"], "FR")
    income = pc.if_else(french, pc.multiply(last["income"], 1.6), last["income"])
    weeks = [*scenario.weeks[:3], last.set_column(3, "income", income)]
    log_weeks(folder / "logs", weeks)
    monitor = parse_config(
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {folder / 'b.keel'}\n    logs: {folder / 'logs'}\n    window: 7D\n"
        "    segments:\n      - {name: country, column: country}\n"
        "      - {name: customer, expression: \"CASE WHEN tenure_months < 24 THEN 'new' "
        "ELSE 'returning' END\"}\n",
        "keel.yaml",
    )[0]
    store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    outcome = run_monitor(monitor, store, now=scenario.week_start(5) + timedelta(days=1))
    return store, outcome, scenario


def test_a_shift_in_one_segment_alerts_there_and_only_there(shifted_in_france):
    store, _, scenario = shifted_in_france
    drift = store.latest(monitor="loans", check="feature_drift")
    last = scenario.week_start(4).strftime("%Y-%m-%dT00:00:00Z")
    alerting = drift[(drift["status"] == "alert")]
    in_last = set(alerting[alerting["window_start"] == last]["segment"].dropna())
    assert {s for s in in_last if s.startswith("country=")} == {"country=FR"}
    assert alerting[alerting["segment"] == "country=FR"]["column"].tolist() == ["income"]
    # French applicants are in both customer segments: both see a part of the shift
    assert {s for s in in_last if s.startswith("customer=")} <= {
        "customer=new",
        "customer=returning",
    }
    quiet = alerting[alerting["window_start"] != last]
    assert quiet.empty, quiet[["segment", "window_start", "column"]]


def test_every_segment_is_judged_against_its_own_reference(shifted_in_france):
    store, _, _ = shifted_in_france
    drift = store.latest(monitor="loans", check="feature_drift")
    segments = set(drift["segment"].dropna())
    assert {"country=DE", "country=FR", "customer=new", "customer=returning"} <= segments
    country = drift[(drift["column"] == "country") & drift["segment"].notna()]
    assert (country["status"] != "alert").all()  # country=DE is all DE, in both sides


def test_the_false_alarm_budget_is_shared_across_segments(shifted_in_france):
    store, _, _ = shifted_in_france
    segments = store.latest(monitor="loans", check="feature_drift")["segment"].dropna().nunique()
    verdicts = store.latest(monitor="loans", check="multivariate")
    whole = verdicts[verdicts["segment"].isna()]["details"].iloc[0]
    assert segments >= 6
    assert whole.get("tail") == pytest.approx(0.01 / (segments + 1) / 10)


def test_the_monitor_report_has_a_section_per_segment(shifted_in_france):
    from keel.report.monitor import monitor_report_html

    store, _, _ = shifted_in_france
    page = monitor_report_html(store, "loans")
    assert "all rows" in page and "country=FR" in page and "customer=new" in page


def test_split_keeps_the_most_frequent_values_with_enough_rows():
    rows = pa.table({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 5 + [None] * 3})
    assert [label for label, _ in split(rows, "c", column="c", cap=5, min_rows=10)] == [
        "c=a",
        "c=b",
    ]
    assert [label for label, _ in split(rows, "c", column="c", cap=1, min_rows=1)] == ["c=a"]
    values = segment_values(pa.table({"x": np.arange(4)}), expression="x % 2 = 0")
    assert values.to_pylist() == ["true", "false", "true", "false"]


def test_a_segment_expression_naming_an_unknown_column_is_refused_at_load(tmp_path):
    Baseline.from_data(
        generate(seed=1, training_weeks=2, week_rows=500).training, sample_size=500
    ).save(tmp_path / "b.keel")
    text = (
        "monitors:\n  - name: m\n    model: m\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    window: 7D\n"
        '    segments:\n      - {name: s, expression: "tenure < 6"}\n'
    )
    with pytest.raises(ConfigError, match=r"line 6\): monitors\[0\]\.segments: segment 's'"):
        parse_config(text, "keel.yaml")
    both = text.replace('expression: "tenure < 6"', 'column: country, expression: "1"')
    with pytest.raises(ConfigError, match="a column or an expression"):
        parse_config(both, "keel.yaml")
