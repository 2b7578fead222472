"""Sending one notification through one channel: a signed webhook, Slack, or email.

Each ``send_*`` either returns (delivered) or raises ``DeliveryError`` with a
one-line reason; none waits longer than the channel's ``timeout_seconds``
per network operation. Retrying is ``keel.alerts.delivery``'s job.

The webhook body is the notification's JSON (``docs/formats.md``: "Alert
notifications"), UTF-8, keys sorted. Its signature is the HMAC-SHA256 of
those exact bytes under the channel's secret, sent as
``X-Keel-Signature: sha256=<hex>``; ``X-Keel-Idempotency-Key`` repeats the
body's key so receivers can drop a notice they already handled.

>>> body = webhook_body({"alert_id": "a1", "state": "firing"})
>>> body
b'{"alert_id": "a1", "state": "firing"}'
>>> signature(b"secret", body)[:15]
'sha256=88701972'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from keel.alerts.config import ChannelConfig
from keel.errors import KeelError


class DeliveryError(KeelError):
    """A channel did not take a notification (down, refusing, too slow)."""


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, default=str).encode()


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def send(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    """Deliver ``payload`` through ``channel`` or raise DeliveryError."""
    senders = {"webhook": send_webhook, "slack": send_slack, "email": send_email}
    try:
        senders[channel.type](channel, payload)
    except DeliveryError:
        raise
    except (OSError, smtplib.SMTPException, ValueError) as error:
        raise DeliveryError(f"{channel.name}: {type(error).__name__}: {error}") from error


def send_webhook(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    body = webhook_body(payload)
    _post(
        channel,
        body,
        {
            "Content-Type": "application/json",
            "X-Keel-Signature": signature(channel.secret(), body),
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
        if smtp.has_extn("starttls"):  # encrypt whenever the server offers it
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        credentials = channel.credentials()
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
