"""Alerts from pending to resolved, grouped, deduplicated, silenced, delivered to real servers."""

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from keel.alerts.delivery import deliver, queue
from keel.alerts.engine import active, evaluate, silence
from keel.diagnosis import diagnose
from keel.errors import ConfigError
from keel.monitor.config import parse_config
from keel.result import Result
from keel.store import ResultStore

SECRET = "s3cret-for-tests-of-32-bytes-or-more"
START = datetime(2026, 3, 2, tzinfo=UTC)
COLUMNS = ("age", "income", "amount", "device")


def _config(url, rule="", channels=""):
    return parse_config(
        "channels:\n"
        f"  - {{name: hook, type: webhook, url: '{url}', secret_env: KEEL_TEST_SECRET,"
        " timeout_seconds: 1}\n"
        f"{channels}"
        "monitors:\n"
        "  - name: loans\n"
        "    model: loans\n"
        "    baseline: b.keel\n"
        "    window: 1D\n"
        "    alerts:\n"
        "      - {name: drift, check: feature_drift"
        # the defaults, unless the rule sets them itself (keel.yaml refuses a repeated key)
        + ("" if "for:" in rule else ", for: 2")
        + ("" if "channels:" in rule else ", channels: [hook]")
        + f"{rule}}}\n",
        "keel.yaml",
    )[0]


def _window(store, day, drifted, version="1"):
    """Write one checked window's Results: the named columns drifted, the others did not."""
    start = START + timedelta(days=day)
    rows = [
        Result(
            "feature_drift",
            column,
            "wasserstein",
            0.4 if column in drifted else 0.01,
            0.1,
            "alert" if column in drifted else "ok",
        )
        for column in COLUMNS
    ]
    rows.append(diagnose(rows).to_result())
    rows.append(Result("window", None, "rows", 1000.0, None, "ok"))
    stamp = dict(
        monitor="loans",
        model="loans",
        model_version=version,
        window_start=start.isoformat().replace("+00:00", "Z"),
        window_end=(start + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
    )
    from dataclasses import replace

    store.write([replace(r, **stamp) for r in rows])
    return start + timedelta(days=1, hours=1)  # when that window has closed


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_TEST_SECRET", SECRET)
    return ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")


def _states(transitions):
    return [(t.rule, t.state) for t in transitions]


def test_an_alert_goes_pending_then_fires_once_grouped_then_resolves(store, receiver):
    monitor = _config(receiver.url)
    now = _window(store, 0, set())
    assert evaluate(monitor, store, now) == []
    now = _window(store, 1, {"age", "income", "amount"})
    assert _states(evaluate(monitor, store, now)) == [("drift", "pending")]
    now = _window(store, 2, {"age", "income", "amount"})
    fired = evaluate(monitor, store, now)
    assert _states(fired) == [("drift", "firing")]
    assert fired[0].summary == "3 features drifted in window 2026-03-04: age, amount, income"
    assert fired[0].notices == {"hook": "queued"}
    assert evaluate(monitor, store, now) == []  # evaluated again: nothing new, nobody told
    assert deliver(store, monitor.channels, now) == {"sent": 1, "failed": 0, "waiting": 0}
    assert deliver(store, monitor.channels, now)["sent"] == 0  # sent once
    now = _window(store, 3, {"age"})
    assert evaluate(monitor, store, now) == []  # still firing: one more window, no new notice
    now = _window(store, 4, set())
    resolved = evaluate(monitor, store, now)
    assert _states(resolved) == [("drift", "resolved")]
    assert resolved[0].alert_id == fired[0].alert_id
    deliver(store, monitor.channels, now)
    states = [json.loads(r["body"])["state"] for r in receiver.received]
    assert states == ["firing", "resolved"]
    assert active(store).empty and len(active(store, everything=True)) == 1


def test_the_webhook_body_is_signed_and_carries_the_results_and_the_diagnosis(store, receiver):
    monitor = _config(receiver.url)
    _window(store, 0, {"income"})
    now = _window(store, 1, {"income", "age"})
    evaluate(monitor, store, now)
    deliver(store, monitor.channels, now)
    (notice,) = receiver.received
    sent = notice["headers"]["X-Keel-Timestamp"]
    assert abs(int(sent) - time.time()) < 60
    signed = f"{sent}.".encode() + notice["body"]  # the timestamp is signed with the body
    expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert notice["headers"]["X-Keel-Signature"] == expected
    body = json.loads(notice["body"])
    assert notice["headers"]["X-Keel-Idempotency-Key"] == body["idempotency_key"]
    assert body["idempotency_key"] == f"{body['alert_id']}:firing:0"
    assert body["version"] == "keel.alert/v1"
    assert (body["monitor"], body["model"], body["model_version"]) == ("loans", "loans", "1")
    assert body["window"] == {"start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z"}
    assert sorted(r["column"] for r in body["results"]) == ["age", "income"]
    assert body["diagnosis"]["verdict"] == "data drift"


def test_a_silenced_rule_records_its_notice_without_sending_it_until_the_silence_expires(
    store, receiver
):
    monitor = _config(receiver.url)
    now = _window(store, 0, {"age"})
    silence(store, "loans", "drift", hours=50, reason="known migration", now=now)
    now = _window(store, 1, {"age"})
    assert evaluate(monitor, store, now)[0].notices == {"hook": "silenced"}
    now = _window(store, 2, set())
    assert evaluate(monitor, store, now)[0].notices == {"hook": "silenced"}  # resolved, silently
    _window(store, 3, {"age"})
    now = _window(store, 4, {"age"})  # 2 days later: the silence has expired
    assert evaluate(monitor, store, now)[0].notices == {"hook": "queued"}
    deliver(store, monitor.channels, now)
    assert len(receiver.received) == 1


def test_a_cooldown_keeps_a_flapping_alert_from_notifying_again(store, receiver):
    monitor = _config(receiver.url, rule=", cooldown: 3D, for: 1")
    now = _window(store, 0, {"age"})
    assert evaluate(monitor, store, now)[0].notices == {"hook": "queued"}
    now = _window(store, 1, set())
    assert evaluate(monitor, store, now)[0].state == "resolved"
    now = _window(store, 2, {"age"})
    again = evaluate(monitor, store, now)
    assert again[0].state == "firing" and again[0].notices == {"hook": "cooldown"}


def test_a_new_model_version_is_its_own_alert(store, receiver):
    monitor = _config(receiver.url, rule=", for: 1")
    _window(store, 0, {"age"}, version="1")
    now = _window(store, 0, {"age"}, version="2")
    fired = evaluate(monitor, store, now)
    assert [t.payload["model_version"] for t in fired] == ["1", "2"]
    assert len({t.alert_id for t in fired}) == 2


def test_a_failing_or_hanging_channel_is_retried_later_and_never_blocks_another(
    store, receiver, tmp_path, monkeypatch
):
    from keel.alerts.receiver import WebhookReceiver

    slow = WebhookReceiver()
    slow.delay = 5.0  # longer than the channel's 1 s timeout
    try:
        other = (
            f"  - {{name: slow, type: webhook, url: '{slow.url}', secret_env: KEEL_TEST_SECRET,"
            " timeout_seconds: 1}\n"
        )
        monitor = _config(receiver.url, rule=", for: 1, channels: [hook, slow]", channels=other)
        receiver.status = 500
        now = _window(store, 0, {"age"})
        evaluate(monitor, store, now)
        began = time.monotonic()
        counts = deliver(store, monitor.channels, now, wait_seconds=10)
        assert time.monotonic() - began < 4  # the hanging one costs its timeout, not more
        assert counts == {"sent": 0, "failed": 2, "waiting": 0}
        errors = sorted(queue(store)["last_error"])
        assert "HTTP 500" in errors[0] and "timed out" in errors[1]
        assert deliver(store, monitor.channels, now)["sent"] == 0  # not due before its backoff
        receiver.status, slow.delay = 200, 0.0
        restarted = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")  # a restart in between
        later = now + timedelta(minutes=1)
        assert deliver(restarted, monitor.channels, later) == {"sent": 2, "failed": 0, "waiting": 0}
        assert set(queue(restarted)["attempts"]) == {2}
    finally:
        slow.stop()


def test_a_closed_connection_is_a_recorded_failure(store, receiver):
    monitor = _config(receiver.url, rule=", for: 1")
    receiver.close = True
    now = _window(store, 0, {"age"})
    evaluate(monitor, store, now)
    assert deliver(store, monitor.channels, now)["failed"] == 1
    assert queue(store)["status"].tolist() == ["queued"]  # kept, to be retried


def test_slack_gets_a_readable_message_with_blocks(store, receiver, monkeypatch):
    monkeypatch.setenv("KEEL_TEST_SLACK_URL", receiver.url)
    monitor = parse_config(
        "channels:\n  - {name: team, type: slack, url_env: KEEL_TEST_SLACK_URL}\n"
        "monitors:\n  - name: loans\n    model: loans\n    baseline: b.keel\n    window: 1D\n"
        "    alerts: [{name: drift, check: feature_drift, channels: [team]}]\n",
        "keel.yaml",
    )[0]
    now = _window(store, 0, {"income"})
    evaluate(monitor, store, now)
    deliver(store, monitor.channels, now)
    message = json.loads(receiver.received[0]["body"])
    assert message["text"].startswith(":rotating_light: [FIRING] loans: 1 feature drifted")
    sections = " ".join(b["text"]["text"] for b in message["blocks"])
    assert "*Diagnosis* data drift: income" in sections


def test_email_goes_through_a_real_smtp_server_and_a_refused_login_is_recorded(store, monkeypatch):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Inbox:
        messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
            self.messages.append(envelope)
            return "250 OK"

    import socket

    with socket.socket() as probe:  # a free port for the server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    accept = {"ok": True}
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=lambda *args: AuthResult(success=accept["ok"], handled=False),
        auth_require_tls=False,
    )
    controller.start()
    try:
        monkeypatch.setenv("KEEL_TEST_SMTP_USER", "keel")
        monkeypatch.setenv("KEEL_TEST_SMTP_PASSWORD", "pw")
        monitor = parse_config(
            "channels:\n  - {name: mail, type: email, host: 127.0.0.1, port: "
            f"{port}, from: keel@example.com, to: [oncall@example.com],"
            " username_env: KEEL_TEST_SMTP_USER, password_env: KEEL_TEST_SMTP_PASSWORD,"
            " allow_plaintext_login: true}\n"
            "monitors:\n  - name: loans\n    model: loans\n    baseline: b.keel\n"
            "    window: 1D\n    alerts: [{name: drift, check: feature_drift, channels: [mail]}]\n",
            "keel.yaml",
        )[0]
        accept["ok"] = False
        now = _window(store, 0, {"income"})
        evaluate(monitor, store, now)
        assert deliver(store, monitor.channels, now)["failed"] == 1
        assert "refused the login" in queue(store)["last_error"].iloc[0]
        accept["ok"] = True
        assert deliver(store, monitor.channels, now + timedelta(minutes=1))["sent"] == 1
        (envelope,) = inbox.messages
        text = envelope.content.decode()
        assert envelope.rcpt_tos == ["oncall@example.com"]
        assert "Subject: [keel firing] loans: 1 feature drifted" in text
        assert "diagnosis: data drift: income" in text
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("check: feature_drfit", "unknown check 'feature_drfit'; valid checks: challenger, "),
        ("check: quality, metric: nulls", "check 'quality' has no metric 'nulls'; valid metrics"),
        ("check: quality, condition: 'about 3'", "use 'status'"),
        ("check: quality, channels: [pager]", "names channel 'pager'; declared channels: hook"),
    ],
)
def test_a_rule_naming_what_does_not_exist_is_refused_when_the_file_loads(
    rule, message, monkeypatch
):
    monkeypatch.setenv("KEEL_TEST_SECRET", SECRET)
    text = (
        "channels:\n"
        "  - {name: hook, type: webhook, url: 'http://x', secret_env: KEEL_TEST_SECRET}\n"
        "monitors:\n  - name: loans\n    model: loans\n    baseline: b.keel\n    window: 1D\n"
        f"    alerts:\n      - {{name: r, {rule}}}\n"
    )
    with pytest.raises(ConfigError, match=r"line 9\): monitors\[0\]\.alerts\.0") as raised:
        parse_config(text, "keel.yaml")
    assert message in str(raised.value)


def test_a_channel_without_its_secret_is_refused_when_the_file_loads(monkeypatch):
    monkeypatch.delenv("KEEL_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="environment variable KEEL_TEST_SECRET is not set"):
        _config("http://127.0.0.1:1/hook")
    monkeypatch.setenv("KEEL_TEST_SECRET", SECRET)
    with pytest.raises(ConfigError, match="needs secret_env"):
        parse_config(
            "channels:\n  - {name: hook, type: webhook, url: 'http://x'}\nmonitors: []\n", "k"
        )


def test_a_rule_can_compare_with_the_calibrated_threshold_or_a_number():
    from keel.alerts.config import AlertRule

    calibrated = AlertRule.model_validate(
        {"name": "r", "check": "multivariate", "metric": "domain_auc", "condition": "> calibrated"}
    )
    assert calibrated.breaches(0.61, 0.58, "ok") and not calibrated.breaches(0.55, 0.58, "alert")
    assert not calibrated.breaches(None, 0.58, "alert")  # no value: nothing to compare
    floor = AlertRule.model_validate({"name": "r", "check": "quality", "condition": "<= 0.7"})
    assert floor.breaches(0.7, None, "ok") and not floor.breaches(0.71, None, "ok")
    assert calibrated.matches("multivariate", "domain_auc", None)
    assert not calibrated.matches("multivariate", "reconstruction_error", None)


def _days(count):
    return [(START + timedelta(days=d)).isoformat().replace("+00:00", "Z") for d in range(count)]


@pytest.mark.parametrize("notify_history", [False, True])
def test_a_backfill_replays_every_window_and_notifies_only_the_state_at_its_end(
    store, notify_history
):
    from keel.alerts.engine import replay

    monitor = _config("http://127.0.0.1:9", rule=", for: 1")
    for day, drifted in enumerate([set(), {"age"}, set(), {"age"}, {"age", "income"}]):
        now = _window(store, day, drifted)
    transitions = replay(monitor, store, _days(5), now, notify_history=notify_history)
    # Every episode in order, as five runs would have stored them.
    assert [(t.state, t.window_start[:10]) for t in transitions] == [
        ("firing", "2026-03-03"),
        ("resolved", "2026-03-04"),
        ("firing", "2026-03-05"),
    ]
    episodes = active(store, everything=True).sort_values("first_window")
    assert episodes[["first_window", "state"]].values.tolist() == [
        ["2026-03-03T00:00:00Z", "resolved"],
        ["2026-03-05T00:00:00Z", "firing"],
    ]
    notices = queue(store).sort_values("id")
    states = [json.loads(p)["state"] for p in notices["payload"]]
    assert states == ["firing", "resolved", "firing"]
    if notify_history:
        assert notices["status"].tolist() == ["queued"] * 3
    else:  # only the alert firing at the end is told; the episode that came and went is kept
        assert notices["status"].tolist() == ["backfill", "backfill", "queued"]
        assert transitions[-1].notices == {"hook": "queued"}
