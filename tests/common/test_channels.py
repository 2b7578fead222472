"""The channel battery: every kind in ``keel.alerts.channels.CHANNELS`` is sent a notice
through a real local server, and the same faults: a refused connection and a server that
never answers. A new kind of channel is one function and one entry there, plus one
``_endpoint`` below, and gets these for free."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest

from keel.alerts.channels import CHANNELS, send
from keel.alerts.config import ChannelConfig
from keel.errors import DeliveryError, KeelError

SECRET = "s" * 40
PAYLOAD = {
    "version": "keel.alert/v1",
    "alert_id": 7,
    "state": "firing",
    "previous_state": "pending",
    "idempotency_key": "7:firing:1",
    "rule": "drift",
    "severity": "warning",
    "monitor": "loans",
    "model": "loans",
    "model_version": "3",
    "segment": None,
    "window": {"start": "2026-07-30T00:00:00+00:00", "end": "2026-08-06T00:00:00+00:00"},
    "first_window": "2026-07-30T00:00:00+00:00",
    "summary": "1 feature drifted in window 2026-07-30: income",
    "results": [],
    "diagnosis": {"verdict": "data drift: income"},
    "report_url": None,
}


def _config(kind: str, address: tuple[str, int], timeout: float = 5.0) -> ChannelConfig:
    host, port = address
    fields = {"name": f"the-{kind}", "type": kind, "timeout_seconds": timeout}
    if kind == "email":
        fields |= {"host": host, "port": port, "from": "keel@example.com", "to": ["a@b.org"]}
    else:
        fields |= {"url": f"http://{host}:{port}/hook"}
    if kind == "webhook":
        fields["secret_env"] = "KEEL_TEST_CHANNEL_SECRET"
    return ChannelConfig.model_validate(fields)


@contextmanager
def _endpoint(kind: str):
    """A real server for this kind: yields its address and a function listing what came."""
    if kind == "email":
        from aiosmtpd.controller import Controller

        class Inbox:
            def __init__(self) -> None:
                self.messages: list[str] = []

            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd
                self.messages.append(envelope.content.decode())
                return "250 OK"

        inbox, port = Inbox(), _free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            yield ("127.0.0.1", port), lambda: inbox.messages
        finally:
            controller.stop()
        return
    from keel.alerts.receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        port = int(receiver.base_url.rsplit(":", 1)[1])
        yield ("127.0.0.1", port), lambda: [r["body"].decode() for r in receiver.received]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _silent_server():
    """Accepts connections and never says a word (a hung SMTP or HTTP server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held, stop = [], threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("KEEL_TEST_CHANNEL_SECRET", SECRET)


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_a_notice_is_delivered_once_and_says_what_fired(kind):
    with _endpoint(kind) as (address, received):
        send(_config(kind, address), PAYLOAD)
        deadline = time.monotonic() + 5
        while not received() and time.monotonic() < deadline:
            time.sleep(0.02)
        (message,) = received()
    assert "loans" in message
    assert "income" in message


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_a_refused_connection_is_a_delivery_error_naming_the_channel(kind):
    config = _config(kind, ("127.0.0.1", _free_port()))
    with pytest.raises(DeliveryError, match=f"the-{kind}"):
        send(config, PAYLOAD)


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_a_server_that_never_answers_costs_no_more_than_the_timeout(kind):
    with _silent_server() as address:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match=f"the-{kind}"):
            send(_config(kind, address, timeout=0.5), PAYLOAD)
        assert time.monotonic() - started < 3.0


def test_delivery_errors_are_keel_errors():
    assert issubclass(DeliveryError, KeelError)
