"""Sending one notification through one channel: a signed webhook, Slack, or email.

Each ``send_*`` either returns (delivered) or raises ``DeliveryError`` with a
one-line reason; none waits longer than the channel's ``timeout_seconds``
per network operation. Retrying is ``keel.alerts.delivery``'s job.

The webhook body is the notification's JSON (``docs/formats.md``: "Alert
notifications"), UTF-8, keys sorted. It is sent with ``X-Keel-Timestamp``
(Unix seconds when it was sent) and ``X-Keel-Signature: sha256=<hex>``, the
HMAC-SHA256 under the channel's secret of the timestamp, a ``.``, and the
body's exact bytes; a receiver refuses a signature that does not match, a
timestamp more than 5 minutes from its clock, or a signature it has already
seen (a replay). ``X-Keel-Idempotency-Key`` repeats the body's key so
receivers can drop a notice they already handled (keel's own retries are
signed afresh, so they are not replays).

>>> body = webhook_body({"alert_id": "a1", "state": "firing"})
>>> body
b'{"alert_id": "a1", "state": "firing"}'
>>> key = b"k" * 32
>>> signed = signature(key, body, 1767571200)
>>> signed[:15]
'sha256=6427d113'
>>> verify(key, body, "1767571200", signed, now=1767571230) is None
True
>>> verify(key, body, "1767571200", signed, now=1767572000)
'stale timestamp: 800 s from now (at most 300)'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any, Protocol

from keel.alerts.config import ChannelConfig
from keel.errors import DeliveryError  # noqa: F401 - also importable from here


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, default=str).encode()


#: How far a webhook's timestamp may be from the receiver's clock (seconds).
TOLERANCE_SECONDS = 300


def signature(secret: bytes, body: bytes, timestamp: int | str) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    body: bytes,
    timestamp: str | None,
    signed: str | None,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> str | None:
    """Why a webhook request must be refused (None when its signature is good and fresh).

    Checks the signature over the raw bytes, in constant time, before anything is parsed.
    Replays of a fresh, good signature are the receiver's to catch (remember signatures
    for ``tolerance`` seconds): ``WebhookReceiver`` does.
    """
    if not timestamp or not signed:
        return "no X-Keel-Timestamp or X-Keel-Signature"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"timestamp {timestamp[:20]!r} is not Unix seconds"
    if not hmac.compare_digest(signature(secret, body, timestamp), signed):
        return "signature mismatch"
    drift = abs((time.time() if now is None else now) - sent)
    if drift > tolerance:
        return f"stale timestamp: {drift:.0f} s from now (at most {tolerance:.0f})"
    return None


class Channel(Protocol):
    """A kind of channel: deliver one notification, within ``channel.timeout_seconds``, or
    raise ``DeliveryError`` naming the channel. Each kind is registered in ``CHANNELS``;
    ``tests/common/test_channels.py`` runs one battery over all of them against real local
    servers (delivered once, a refused connection and a server that never answers)."""

    def __call__(self, channel: ChannelConfig, payload: dict[str, Any]) -> None: ...


def send(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    """Deliver ``payload`` through ``channel`` or raise DeliveryError."""
    try:
        CHANNELS[channel.type](channel, payload)
    except DeliveryError:
        raise
    except (OSError, smtplib.SMTPException, ValueError) as error:
        raise DeliveryError(f"{channel.name}: {type(error).__name__}: {error}") from error


def send_webhook(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    body = webhook_body(payload)
    sent = int(time.time())
    _post(
        channel,
        body,
        {
            "Content-Type": "application/json",
            "X-Keel-Timestamp": str(sent),
            "X-Keel-Signature": signature(channel.secret(), body, sent),
            "X-Keel-Idempotency-Key": str(payload.get("idempotency_key", "")),
        },
    )


def send_slack(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    body = json.dumps(slack_message(payload)).encode()
    _post(channel, body, {"Content-Type": "application/json"})


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: a text fallback and readable blocks."""
    icon = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}.get(
        payload.get("state"), ":bell:"
    )
    title = f"{icon} [{payload.get('state', '').upper()}] {payload.get('monitor')}: " + str(
        payload.get("summary")
    )
    window = payload.get("window") or {}
    lines = [
        f"*Model* {payload.get('model')} {payload.get('model_version') or ''}".strip(),
        f"*Window* {window.get('start')} – {window.get('end')}",
        f"*Rule* {payload.get('rule')} ({payload.get('severity')})",
    ]
    diagnosis = payload.get("diagnosis") or {}
    if diagnosis.get("summary"):
        lines.append(f"*Diagnosis* {diagnosis['summary']}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    if payload.get("report_url"):
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{payload['report_url']}|Open the report>"},
            }
        )
    return {"text": title, "blocks": blocks}


def email_text(payload: dict[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of an alert email."""
    subject = f"[keel {payload.get('state')}] {payload.get('monitor')}: {payload.get('summary')}"
    lines = [
        str(payload.get("summary")),
        "",
        f"monitor:  {payload.get('monitor')}",
        f"model:    {payload.get('model')} {payload.get('model_version') or ''}",
        f"window:   {payload.get('window', {}).get('start')} – "
        f"{payload.get('window', {}).get('end')}",
        f"rule:     {payload.get('rule')} ({payload.get('severity')})",
    ]
    diagnosis = payload.get("diagnosis") or {}
    if diagnosis.get("summary"):
        lines.append(f"diagnosis: {diagnosis['summary']}")
    for result in payload.get("results", [])[:20]:
        lines.append(
            f"  {result.get('check')} {result.get('column') or ''} {result.get('metric')}: "
            f"{result.get('value')} (threshold {result.get('threshold')})"
        )
    if payload.get("report_url"):
        lines += ["", f"report: {payload['report_url']}"]
    lines += ["", f"alert id {payload.get('alert_id')}, key {payload.get('idempotency_key')}"]
    return subject, "\n".join(lines)


def send_email(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    subject, text = email_text(payload)
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = (
        subject,
        channel.sender,
        ", ".join(channel.to),
    )
    message["X-Keel-Idempotency-Key"] = str(payload.get("idempotency_key", ""))
    message.set_content(text)
    with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_seconds) as smtp:
        smtp.ehlo()
        encrypted = smtp.has_extn("starttls")
        if encrypted:  # encrypt whenever the server offers it
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        credentials = channel.credentials()
        if credentials and not encrypted and not channel.allow_plaintext_login:
            raise DeliveryError(
                f"{channel.name}: the SMTP server {channel.host}:{channel.port} offers no "
                "STARTTLS; keel does not send the password in plaintext (set "
                "allow_plaintext_login: true on the channel to allow it)"
            )
        if credentials:
            try:
                smtp.login(*credentials)
            except smtplib.SMTPAuthenticationError as error:
                raise DeliveryError(
                    f"{channel.name}: the SMTP server refused the login ({error.smtp_code})"
                ) from error
        smtp.send_message(message)


def _post(channel: ChannelConfig, body: bytes, headers: dict[str, str]) -> None:
    request = urllib.request.Request(channel.target(), data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=channel.timeout_seconds) as response:
            response.read(1024)
    except urllib.error.HTTPError as error:
        raise DeliveryError(f"{channel.name}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryError(f"{channel.name}: {reason}") from error


#: Every kind of channel, by the ``type`` a channel declares in keel.yaml.
CHANNELS: dict[str, Channel] = {"webhook": send_webhook, "slack": send_slack, "email": send_email}
