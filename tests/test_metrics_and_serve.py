"""The unattended loop end to end: serve runs, alerts reach a real webhook, Prometheus scrapes."""

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from keel.baseline import Baseline
from keel.scenario import ROLES, generate, log_weeks

SECRET = "serve-secret-of-at-least-32-bytes-long"


@pytest.fixture
def project(tmp_path, receiver):
    """A model's baseline, six logged weeks (weeks 5 and 6 shifted), and a keel.yaml with a
    rule that sends to the test's webhook receiver."""
    scenario = generate(seed=8, training_weeks=20, week_rows=1500, production_weeks=6)
    Baseline.from_data(scenario.training, **ROLES, sample_size=2000).save(tmp_path / "b.keel")
    log_weeks(tmp_path / "logs", scenario.weeks)
    (tmp_path / "keel.yaml").write_text(
        "channels:\n"
        f"  - {{name: team, type: webhook, url: '{receiver.url}', secret_env: KEEL_SERVE_SECRET}}\n"
        "monitors:\n"
        "  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n"
        "    window: 7D\n    schedule: '0 0 1 1 *'\n"
        # Every drifted feature alerts: age's weight in a surrogate fitted on a 2,000-row
        # sample sits near the 0.02 floor, and which side it falls is not this test's subject.
        "    min_importance: 0\n"
        "    alerts:\n"
        "      - {name: inputs, check: feature_drift, severity: critical, channels: [team]}\n"
    )
    environment = {
        **os.environ,
        "KEEL_SERVE_SECRET": SECRET,
        "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}",
    }
    return tmp_path, environment


def _wait(condition, seconds=90.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_serve_sends_the_alert_with_its_diagnosis_and_exposes_metrics(project, receiver):
    folder, environment = project
    server = subprocess.Popen(
        [sys.executable, "-m", "keel.cli", "monitor", "serve", "--metrics-port", "0"],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("metrics: http://127.0.0.1:"), line
        address = line.split()[1]
        assert _wait(lambda: len(receiver.received) >= 1), "no alert reached the webhook"
        scraped = urllib.request.urlopen(address, timeout=10).read().decode()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    (notice,) = receiver.received
    signed = f"{notice['headers']['X-Keel-Timestamp']}.".encode() + notice["body"]
    expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert notice["headers"]["X-Keel-Signature"] == expected
    body = json.loads(notice["body"])
    assert body["state"] == "firing" and body["severity"] == "critical"
    assert body["window"]["start"].startswith("2026-06-")  # week 6, the newest window
    assert {r["column"] for r in body["results"]} >= {"age", "income"}
    assert body["diagnosis"]["verdict"] == "data drift"
    assert 'keel_result_alerting{check="feature_drift",column="age"' in scraped
    assert 'keel_alerts{monitor="loans",rule="inputs",severity="critical",state="firing"} 1.0' in (
        scraped
    )
    assert 'keel_run_duration_seconds_count{monitor="loans"} 1.0' in scraped
    assert 'keel_notifications{channel="team",status="sent"} 1.0' in scraped


def test_cron_users_get_the_metrics_as_a_textfile_or_on_a_pushgateway(
    project, receiver, run_keel, monkeypatch
):
    folder, environment = project
    for name in ("KEEL_SERVE_SECRET", "KEEL_DATABASE_URL"):
        monkeypatch.setenv(name, environment[name])
    gateway = receiver.base_url
    result = run_keel(
        "monitor", "run", "--textfile", "keel.prom", "--pushgateway", gateway, cwd=folder
    )
    assert result.returncode == 1, result.stderr  # weeks 5 and 6 alert
    assert "alert firing: inputs:" in result.stdout and "1 sent, 0 failed" in result.stdout
    textfile = (folder / "keel.prom").read_text()
    assert 'keel_result_value{check="feature_drift",column="income"' in textfile
    assert "keel_last_run_duration_seconds" in textfile
    pushed = [
        r
        for r in receiver.received
        if r["headers"].get("Content-Type", "").startswith("text/plain")
    ]
    assert pushed and b"keel_result_threshold" in pushed[0]["body"]
    listed = run_keel("alerts", "list", cwd=folder)
    assert listed.returncode == 1 and "firing" in listed.stdout and "inputs" in listed.stdout
    silenced = run_keel(
        "alerts", "silence", "loans", "--rule", "inputs", "--hours", "1", cwd=folder
    )
    assert silenced.returncode == 0 and "silence 1: loans/inputs for 1 h" in silenced.stdout
