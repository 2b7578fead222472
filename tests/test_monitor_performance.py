"""Realized performance in the monitor: labels join late, revise windows, and tell concept drift."""

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import roc_auc_score

from keel.baseline import Baseline
from keel.demo import holdout_rows, score, train_model
from keel.monitor.config import parse_config
from keel.monitor.run import run_monitor
from keel.scenario import SCORED_ROLES, generate, log_labels_of, log_weeks
from keel.store import ResultStore
from keel.store.queries import read_labelled


@pytest.fixture(scope="module")
def world():
    """Six production weeks with stable inputs; from week 5 the labels relate differently to
    the inputs (a third of them flipped): concept drift, invisible to the drift checks."""
    scenario = generate(seed=21, training_weeks=20, week_rows=3000, production_weeks=4)
    model, metrics = train_model(scenario.training, seed=21)
    training = score(model, scenario.training)
    baseline = Baseline.from_data(
        training, **SCORED_ROLES, metrics=metrics, sample_size=2000, holdout=holdout_rows(training)
    )
    weeks = [score(model, week) for week in scenario.weeks]
    for number, source in ((5, weeks[0]), (6, weeks[1])):  # two more quiet weeks of inputs
        moved = pc.add(source["event_time"], pa.scalar(timedelta(weeks=4)))
        week = source.set_column(source.schema.get_field_index("event_time"), "event_time", moved)
        ids = pc.binary_join_element_wise(week["application_id"], f"w{number}", "-")
        week = week.set_column(0, "application_id", ids)
        flip = np.random.default_rng(number).random(week.num_rows) < 1 / 3
        labels = np.where(flip, 1 - week["defaulted"].to_numpy(), week["defaulted"].to_numpy())
        weeks.append(
            week.set_column(week.schema.get_field_index("defaulted"), "defaulted", pa.array(labels))
        )
    return scenario, baseline, weeks


def _setup(tmp_path, world, extra=""):
    scenario, baseline, weeks = world
    baseline.save(tmp_path / "b.keel")
    log_weeks(tmp_path / "logs", weeks)
    monitor = parse_config(
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n"
        "    window: 7D\n    false_alarm_rate: 0.01\n"
        "    performance: {task: binary, label: defaulted, metrics: [roc_auc, accuracy]"
        f"{extra}}}\n",
        "keel.yaml",
    )[0]
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    end = scenario.week_start(1) + timedelta(weeks=6, days=1)
    return monitor, store, end


def _label(tmp_path, weeks, share=1.0, delay=timedelta(days=3)):
    for week in weeks:
        rows = week.slice(0, int(week.num_rows * share))
        log_labels_of(tmp_path / "logs", rows, pc.add(rows["event_time"], pa.scalar(delay)))


def _performance(store, metric="roc_auc"):
    frame = store.latest(monitor="loans", check="performance", metric=metric)
    return frame.sort_values("window_start").reset_index(drop=True)


def test_realized_metrics_equal_scikit_learns_on_each_windows_joined_rows(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world)
    _label(tmp_path, world[2])
    run_monitor(monitor, store, now=end)
    stored = _performance(store)
    assert len(stored) == 6
    joined = read_labelled(tmp_path / "logs", "loans")
    first = joined.filter(
        pc.less(
            joined["event_time"], pa.scalar(world[0].week_start(2), pa.timestamp("us", tz="UTC"))
        )
    )
    expected = roc_auc_score(first["defaulted"].to_numpy(), first["score"].to_numpy())
    assert stored["value"].iloc[0] == pytest.approx(expected, abs=1e-12)
    assert stored["details"].iloc[0]["lower"] < expected < stored["details"].iloc[0]["upper"]
    assert stored["threshold"].iloc[0] == pytest.approx(world[1].metrics["roc_auc"])


def test_concept_drift_alerts_on_performance_with_the_inputs_quiet(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world)
    _label(tmp_path, world[2])
    run_monitor(monitor, store, now=end)
    assert _performance(store)["status"].tolist() == ["ok"] * 4 + ["alert"] * 2
    drift = store.latest(monitor="loans", check="feature_drift")
    assert (drift["status"] != "alert").all()  # nothing in the inputs moved
    verdicts = store.latest(monitor="loans", check="diagnosis").sort_values("window_start")
    assert [d["verdict"] for d in verdicts["details"]] == ["healthy"] * 4 + ["concept drift"] * 2


def test_labels_arriving_late_keep_a_window_provisional_then_revise_it(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world)
    _label(tmp_path, world[2][:5])
    _label(tmp_path, world[2][5:], share=0.3)  # the newest week: early labels only
    run_monitor(monitor, store, now=end)
    early = _performance(store).iloc[5]
    assert early["details"]["provisional"] and early["status"] in ("ok", "warn")
    share = store.latest(monitor="loans", check="labels", metric="labelled_share")
    assert share.sort_values("window_start")["value"].iloc[5] == pytest.approx(0.3, abs=0.01)
    _label(tmp_path, [world[2][5].slice(int(world[2][5].num_rows * 0.3))])
    second = run_monitor(monitor, store, now=end + timedelta(hours=1))
    assert second["windows"] == 1  # only the window whose labels changed
    late = _performance(store).iloc[5]
    assert late["revision"] == 1 and not late["details"]["provisional"]
    assert late["status"] == "alert"
    assert "revised window" in set(store.events()["action"])
    from keel.result import RESULT_KEY

    everything = store.history(monitor="loans")  # a revisit stores nothing twice
    assert not everything.duplicated([*RESULT_KEY, "revision"]).any()


def test_mature_unlabelled_rows_count_as_negative_where_the_domain_says_so(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world, ", label_maturity: 7D, unlabelled_as: 0")
    run_monitor(monitor, store, now=end + timedelta(days=30))  # no label ever came
    share = store.latest(monitor="loans", check="labels", metric="labelled_share")
    assert set(share["value"]) == {1.0}
    accuracy = _performance(store, "accuracy")
    assert (
        accuracy["status"].notna().all()
        and (accuracy["details"].map(lambda d: d["labelled_rows"]) > 0).all()
    )


def test_labels_that_stop_arriving_alert(tmp_path, world):
    from datetime import UTC, datetime

    monitor, store, _ = _setup(tmp_path, world, ", labels_expected_within: 2D")
    _label(tmp_path, world[2][:2])  # ingested now, in wall-clock time
    run_monitor(monitor, store, now=datetime.now(UTC) + timedelta(hours=1))

    def stopped():
        found = store.latest(monitor="loans", check="labels", metric="hours_since_last_label")
        newest = found.sort_values("window_start").iloc[-1]  # on the newest closed window
        return newest["status"], newest["value"]

    assert stopped()[0] == "ok"
    run_monitor(monitor, store, now=datetime.now(UTC) + timedelta(days=3))  # none since
    status, hours = stopped()
    assert status == "alert" and hours == pytest.approx(72, abs=0.5)


def test_a_label_the_model_never_produced_is_an_error_result_not_a_crash(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world, ", classes: [0, 1]")
    week = world[2][0]
    strange = pa.array(["maybe"] * week.num_rows)
    log_labels_of(tmp_path / "logs", week.set_column(8, "defaulted", strange), week["event_time"])
    run_monitor(monitor, store, now=end)
    first = _performance(store).iloc[0]
    assert first["status"] == "error" and "never produced: ['maybe']" in first["details"]["reason"]


VALUE = "{tp: 500, fp: -50, fn: -1000, tn: 0}"
CAUGHT = (
    "sum(amount) FILTER (WHERE prediction = 1 AND defaulted = 1) "
    "/ nullif(count(*) FILTER (WHERE prediction = 1), 0)"
)


def test_the_value_matrix_gives_value_per_window_and_per_1000_predictions(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world, f", value_matrix: {VALUE}")
    _label(tmp_path, world[2])
    run_monitor(monitor, store, now=end)
    per_1000 = store.latest(monitor="loans", check="kpi", metric="value_per_1000")
    first = per_1000.sort_values("window_start").iloc[0]
    week = world[2][0]
    truth, guess = week["defaulted"].to_numpy(), week["prediction"].to_numpy()
    by_hand = (
        (
            500 * ((truth == 1) & (guess == 1)).sum()
            - 50 * ((truth == 0) & (guess == 1)).sum()
            - 1000 * ((truth == 1) & (guess == 0)).sum()
        )
        / len(truth)
        * 1000
    )
    assert first["value"] == pytest.approx(by_hand)
    assert first["details"]["lower"] < by_hand < first["details"]["upper"]


def test_a_kpi_expression_is_evaluated_per_window_with_duckdb(tmp_path, world):
    monitor, store, end = _setup(
        tmp_path,
        world,
        '}\n    kpis:\n      - {name: caught_per_flag, expression: "'
        + CAUGHT
        + '", alert_below: 1.0',
    )
    _label(tmp_path, world[2])
    run_monitor(monitor, store, now=end)
    kpi = store.latest(monitor="loans", check="kpi", metric="caught_per_flag")
    first = kpi.sort_values("window_start").iloc[0]
    week = world[2][0].to_pandas()
    flagged = week[week["prediction"] == 1]
    expected = flagged.loc[flagged["defaulted"] == 1, "amount"].sum() / len(flagged)
    assert first["value"] == pytest.approx(expected)
    assert first["status"] == "ok" and first["threshold"] == 1.0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("sum(amount", "not a valid expression"),
        ("sum(amout)", 'Referenced column "amout" not found'),
        ("amount * 2", "use an aggregate"),
    ],
)
def test_a_broken_kpi_is_refused_when_the_configuration_loads(tmp_path, world, expression, message):
    from keel.errors import ConfigError

    world[1].save(tmp_path / "b.keel")
    text = (
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    window: 7D\n"
        "    performance: {task: binary, label: defaulted}\n"
        f'    kpis:\n      - {{name: k, expression: "{expression}"}}\n'
    )
    with pytest.raises(ConfigError, match=r"line 7\): monitors\[0\]\.kpis: KPI 'k'") as raised:
        parse_config(text, "keel.yaml")
    assert message in str(raised.value)


def test_a_kpi_alert_reaches_a_webhook_with_the_concept_drift_diagnosis(
    tmp_path, world, receiver, monkeypatch
):
    from keel.alerts.delivery import deliver

    monkeypatch.setenv("KEEL_TEST_SECRET", "k" * 32)
    scenario, baseline, weeks = world
    baseline.metrics = {**baseline.metrics, "value_per_1000": 0.0}
    try:
        baseline.save(tmp_path / "b.keel")
    finally:
        baseline.metrics = {k: v for k, v in baseline.metrics.items() if k != "value_per_1000"}
    # the label column logged with the predictions too: the label log's wins
    log_weeks(tmp_path / "logs", weeks, keep_labels=True)
    _label(tmp_path, weeks)
    monitor = parse_config(
        "channels:\n"
        f"  - {{name: team, type: webhook, url: '{receiver.url}', secret_env: KEEL_TEST_SECRET}}\n"
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n    window: 7D\n"
        f"    performance: {{task: binary, label: defaulted, metrics: [roc_auc], "
        f"value_matrix: {VALUE}}}\n"
        "    alerts:\n"
        "      - {name: money, check: kpi, metric: value_per_1000, channels: [team]}\n",
        "keel.yaml",
    )[0]
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    run_monitor(monitor, store, now=scenario.week_start(1) + timedelta(weeks=6, days=1))
    deliver(store, monitor.channels)
    (notice,) = receiver.notices
    body = notice["payload"]
    assert body["rule"] == "money" and body["state"] == "firing"
    assert [r["metric"] for r in body["results"]] == ["value_per_1000"]
    assert body["diagnosis"]["verdict"] == "concept drift"
    assert "value_per_1000" in body["diagnosis"]["summary"]


def test_the_monitor_report_shows_bands_warnings_and_the_diagnosis_in_a_browser(
    tmp_path, world, open_page, run_keel, monkeypatch
):
    monitor, store, end = _setup(tmp_path, world, f", value_matrix: {VALUE}")
    _label(tmp_path, world[2][:5])
    _label(tmp_path, world[2][5:], share=0.3)  # the newest week: the riskiest 30% only
    run_monitor(monitor, store, now=end)
    monkeypatch.setenv("KEEL_DATABASE_URL", f"sqlite:///{tmp_path / 'keel.db'}")
    made = run_keel("monitor", "report", "loans", "-o", "report.html")
    assert made.returncode == 0, made.stderr
    page, errors = open_page(tmp_path / "report.html")
    assert errors == []
    rows = page.locator("section.series").first.locator("table.windows tbody tr")
    assert rows.count() == 6
    texts = rows.all_inner_texts()
    assert "concept drift: roc_auc" in texts[4]
    assert "metrics provisional" in texts[5]
    titles = page.locator(".chart h3").all_inner_texts()
    assert any(t.startswith("performance roc_auc") and "holdout" in t for t in titles)
    assert page.locator(".chart svg").first.inner_html().count("estimated") >= 1  # both lines
    assert any(t.startswith("KPI value_per_1000") for t in titles)
    assert page.locator(".chart svg").count() == len(titles)


def test_performance_is_estimated_before_labels_and_is_blind_to_concept_drift(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world)
    run_monitor(monitor, store, now=end)  # no label yet
    estimated = store.latest(monitor="loans", check="estimated_performance", metric="roc_auc")
    estimated = estimated.sort_values("window_start")
    assert len(estimated) == 6 and estimated["value"].notna().all()
    assert all(d["reliable"] for d in estimated["details"])  # the inputs never left the reference
    _label(tmp_path, world[2])
    run_monitor(monitor, store, now=end + timedelta(hours=1))
    realized = _performance(store)
    assert realized["status"].tolist()[4:] == ["alert", "alert"]  # the concept drift
    values = estimated["value"].to_numpy()
    assert np.abs(values[4:] - values[:4].mean()).max() < 0.03  # the estimate stays flat
    assert (estimated["status"] != "alert").all()


def test_labels_that_shift_once_decided_alert_and_the_diagnosis_names_the_rates(tmp_path, world):
    monitor, store, end = _setup(tmp_path, world)
    _label(tmp_path, world[2][:5])
    _label(tmp_path, world[2][5:], share=0.3)  # the newest week: early labels only
    run_monitor(monitor, store, now=end)
    shift = store.latest(monitor="loans", metric="label_shift").sort_values("window_start")
    # weeks 1-4 as the holdout; week 5 has a third of its labels flipped; week 6 is provisional
    assert shift["status"].tolist() == ["ok"] * 4 + ["alert", "warn"]
    assert shift["details"].iloc[5]["provisional"]
    week = world[2][4]["defaulted"].to_numpy()
    assert f"positive rate {week.mean():.2g} vs" in shift["details"].iloc[4]["summary"]
    verdicts = store.latest(monitor="loans", check="diagnosis").sort_values("window_start")
    assert "label shift: positive rate" in verdicts["details"].iloc[4]["summary"]


def test_a_segment_is_estimated_with_the_whole_holdouts_fit_and_never_label_shifted(
    tmp_path, world
):
    _, store, end = _setup(tmp_path, world)
    monitor = parse_config(
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n"
        "    window: 7D\n    false_alarm_rate: 0.01\n"
        "    performance: {task: binary, label: defaulted, metrics: [accuracy]}\n"
        "    segments: [{name: country, column: country}]\n    max_segments: 2\n",
        "keel.yaml",
    )[0]
    _label(tmp_path, world[2])
    run_monitor(monitor, store, now=end)
    estimated = store.latest(monitor="loans", check="estimated_performance", metric="accuracy")
    segments = estimated[estimated["segment"].notna() & (estimated["segment"] != "")]
    assert len(segments) and segments["value"].notna().all()  # the whole holdout's calibration
    shifted = store.latest(monitor="loans", metric="label_shift")
    assert len(shifted) == 6 and (shifted["segment"].isna() | (shifted["segment"] == "")).all()
