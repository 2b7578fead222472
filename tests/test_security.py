"""Closed to abuse: no plaintext SMTP passwords, no host files through DuckDB, no replayed or
forged webhooks, no short secrets. Real servers: aiosmtpd, HTTP on 127.0.0.1."""

import socket
import time
import urllib.error
import urllib.request

import pyarrow as pa
import pytest

from keel.alerts.channels import DeliveryError, send, signature, webhook_body
from keel.alerts.config import ChannelConfig
from keel.alerts.receiver import WebhookReceiver
from keel.checks.kpis import kpi_result, kpi_value, validate_expression
from keel.errors import ConfigError
from keel.segments import segment_values, validate_segment

KEY = b"a-webhook-secret-of-at-least-32-bytes"
ROWS = pa.table({"amount": [1.0, 2.0, 3.0], "country": ["fr", "de", "fr"]})


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Inbox:
        messages: list = []
        logins: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
            self.messages.append(envelope)
            return "250 OK"

    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        inbox.logins.append(auth_data)
        return AuthResult(success=True)

    port = _free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    yield port, inbox
    controller.stop()


def _mail_channel(port, monkeypatch, **extra):
    monkeypatch.setenv("KEEL_SEC_USER", "keel")
    monkeypatch.setenv("KEEL_SEC_PASSWORD", "hunter2")
    return ChannelConfig(
        name="mail",
        type="email",
        host="127.0.0.1",
        port=port,
        sender="keel@example.com",
        to=["oncall@example.com"],
        username_env="KEEL_SEC_USER",
        password_env="KEEL_SEC_PASSWORD",
        timeout_seconds=5,
        **extra,
    )


NOTICE = {"state": "firing", "monitor": "loans", "summary": "s", "idempotency_key": "k:firing:0"}


def test_smtp_never_sends_a_password_in_plaintext_unless_allowed(smtp_server, monkeypatch):
    port, inbox = smtp_server
    with pytest.raises(DeliveryError, match="offers no STARTTLS.*allow_plaintext_login"):
        send(_mail_channel(port, monkeypatch), NOTICE)
    assert inbox.logins == [] and inbox.messages == []  # the server never saw the password
    send(_mail_channel(port, monkeypatch, allow_plaintext_login=True), NOTICE)
    assert len(inbox.logins) == 1 and len(inbox.messages) == 1


def test_smtp_without_credentials_still_sends_to_a_server_without_tls(smtp_server):
    port, inbox = smtp_server
    channel = ChannelConfig(
        name="mail", type="email", host="127.0.0.1", port=port, sender="k@e.com", to=["o@e.com"]
    )
    send(channel, NOTICE)
    assert len(inbox.messages) == 1 and inbox.logins == []


@pytest.mark.parametrize(
    "expression",
    [
        "(SELECT count(*) FROM read_csv('/etc/passwd'))",
        "(SELECT count(*) FROM read_text('/etc/passwd'))",
        "(SELECT count(*) FROM glob('/etc/*'))",
        "(SELECT count(*) FROM read_parquet('https://example.com/x.parquet'))",
    ],
)
def test_a_kpi_or_segment_expression_cannot_read_host_files(expression):
    import duckdb

    with pytest.raises(duckdb.PermissionException):
        kpi_value(expression, ROWS)
    with pytest.raises(ConfigError, match="segment expression.*disabled"):
        segment_values(ROWS, expression=f"CAST({expression} AS VARCHAR)")
    with pytest.raises(ConfigError, match="KPI 'leak'.*disabled"):
        validate_expression("leak", f"sum(amount) + {expression}", ROWS.schema)
    with pytest.raises(ConfigError, match="segment 'leak'"):
        validate_segment("leak", f"CAST({expression} AS VARCHAR)", ROWS.schema)
    result = kpi_result("leak", f"sum(amount) + {expression}", ROWS, 1.0, None)  # at run time
    assert result.status == "error" and "disabled" in str(result.details)


def test_an_expression_sees_only_the_windows_rows():
    hidden = pa.table({"secret": ["x"]})  # a Python variable DuckDB could otherwise scan
    assert hidden.num_rows == 1
    with pytest.raises(Exception, match="hidden"):
        kpi_value("(SELECT count(*) FROM hidden)", ROWS)
    assert kpi_value("max((SELECT count(*) FROM duckdb_tables()))", ROWS) == 0
    assert kpi_value("max(NOT (SELECT current_setting('enable_external_access')))", ROWS) == 1
    from keel.checks.kpis import window_connection

    with pytest.raises(Exception, match="configuration"):  # and cannot be turned back on
        window_connection(ROWS).execute("SET enable_external_access = true")
    assert kpi_value("sum(amount)", ROWS) == 6.0
    assert segment_values(ROWS, expression="upper(country)").to_pylist() == ["FR", "DE", "FR"]


def _post(receiver, body, headers):
    request = urllib.request.Request(receiver.url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _signed(body, sent, key=KEY):
    return {"X-Keel-Timestamp": str(sent), "X-Keel-Signature": signature(key, body, sent)}


def test_the_receiver_refuses_forged_stale_and_replayed_webhooks():
    body = webhook_body(NOTICE)
    now = int(time.time())
    with WebhookReceiver(secret=KEY) as receiver:
        assert _post(receiver, body, _signed(body, now, key=b"another-key-" * 4)) == 401
        assert _post(receiver, body, _signed(body, now - 36000)) == 401  # an old capture
        assert _post(receiver, body, {"X-Keel-Signature": signature(KEY, body, now)}) == 401
        tampered = body.replace(b"firing", b"resolved")
        assert _post(receiver, tampered, _signed(body, now)) == 401
        moved = _signed(body, now)
        moved["X-Keel-Timestamp"] = str(now + 1)  # a timestamp changed after signing
        assert _post(receiver, body, moved) == 401
        good = _signed(body, now)
        assert _post(receiver, body, good) == 200
        assert _post(receiver, body, good) == 401  # the same request again: a replay
        assert _post(receiver, body, _signed(body, now + 1)) == 200  # a retry, signed afresh
    receiver.refused[1] = receiver.refused[1][:16]
    assert receiver.refused == [
        "signature mismatch",
        "stale timestamp:",
        "no X-Keel-Timestamp or X-Keel-Signature",
        "signature mismatch",
        "signature mismatch",
        "replayed signature",
    ]
    assert [n["verified"] for n in receiver.notices] == [True]  # the retry was a duplicate


def test_keels_own_webhook_is_accepted_by_the_receiver(monkeypatch):
    monkeypatch.setenv("KEEL_SEC_SECRET", KEY.decode())
    with WebhookReceiver(secret=KEY) as receiver:
        channel = ChannelConfig(
            name="hook", type="webhook", url=receiver.url, secret_env="KEEL_SEC_SECRET"
        )
        send(channel, NOTICE)
    assert receiver.refused == [] and receiver.notices[0]["verified"] is True


@pytest.mark.parametrize("secret", ["k", "s3cret-for-tests", "x" * 31])
def test_a_secret_shorter_than_32_bytes_is_refused(secret, monkeypatch):
    monkeypatch.setenv("KEEL_SEC_SECRET", secret)
    with pytest.raises(ValueError, match=f"is {len(secret)} bytes; at least 32"):
        ChannelConfig(name="hook", type="webhook", url="http://x", secret_env="KEEL_SEC_SECRET")
    with pytest.raises(ConfigError, match="at least 32"):
        WebhookReceiver(secret=secret.encode())
    monkeypatch.setenv("KEEL_SEC_SECRET", "x" * 32)
    ChannelConfig(name="hook", type="webhook", url="http://x", secret_env="KEEL_SEC_SECRET")
