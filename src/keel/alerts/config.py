"""Alert rules and channels, as declared in ``keel.yaml`` (validated when it loads).

    channels:
      - name: team
        type: webhook                   # webhook | slack | email
        url: https://hooks.example.com/keel
        secret_env: KEEL_WEBHOOK_SECRET # the HMAC key, read from the environment
    monitors:
      - name: loans
        ...
        alerts:
          - name: features-drifted
            check: feature_drift        # a stable check name
            metric: "*"                 # any metric of it (default), or one name
            column: "*"
            condition: status           # the Result's own verdict (default), or
                                        # "> calibrated", "> 0.2", "< 0.7", ...
            for: 2                      # consecutive windows before it fires
            severity: warning           # info | warning | critical
            cooldown: 6h                # no second firing notice sooner than this
            channels: [team]

A rule groups: every matching Result of one window (per model version and
segment) makes one alert, "3 features drifted in window X", not three.

>>> rule = AlertRule.model_validate({"name": "r", "check": "feature_drift", "condition": "> 0.2"})
>>> rule.breaches(0.3, 0.1, "ok"), rule.breaches(0.1, 0.1, "alert")
(True, False)
"""

from __future__ import annotations

import operator
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel.windows import duration_seconds

_COMPARISONS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_CONDITION = re.compile(r"^\s*(>=|<=|>|<)\s*(calibrated|[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*$")


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    check: str
    metric: str = "*"
    column: str = "*"
    condition: str = "status"
    for_windows: int = Field(default=1, ge=1, alias="for")
    severity: Literal["info", "warning", "critical"] = "warning"
    cooldown: str = "0h"
    channels: list[str] = Field(default_factory=list)

    @field_validator("condition")
    @classmethod
    def _condition(cls, value: str) -> str:
        if value != "status" and not _CONDITION.match(value):
            raise ValueError(
                f"{value!r}: use 'status' (the Result's own verdict), or a comparison and a "
                "number or 'calibrated', e.g. '> calibrated', '> 0.2', '< 0.7'"
            )
        return value

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @model_validator(mode="after")
    def _names(self) -> AlertRule:
        from keel.checks.base import stable_names

        names = stable_names()
        if self.check not in names:
            raise ValueError(
                f"unknown check {self.check!r}; valid checks: {', '.join(sorted(names))}"
            )
        if self.check != "kpi" and self.metric != "*" and self.metric not in names[self.check]:
            raise ValueError(
                f"check {self.check!r} has no metric {self.metric!r}; valid metrics: "
                f"{', '.join(sorted(names[self.check]))}"
            )
        return self

    @property
    def cooldown_seconds(self) -> float:
        return duration_seconds(self.cooldown)

    def matches(self, check: str, metric: str, column: str | None) -> bool:
        return (
            check == self.check
            and self.metric in ("*", metric)
            and self.column in ("*", column or "")
        )

    def breaches(self, value: float | None, threshold: float | None, status: str) -> bool:
        """Whether one matching Result breaks the rule."""
        if self.condition == "status":
            return status == "alert"
        found = _CONDITION.match(self.condition)
        compare, bound = _COMPARISONS[found.group(1)], found.group(2)
        limit = threshold if bound == "calibrated" else float(bound)
        if value is None or limit is None:
            return False
        return bool(compare(value, limit))


#: The shortest signing secret accepted (bytes): HMAC-SHA256 keys below 256 bits are guessable.
MIN_SECRET_BYTES = 32


class ChannelConfig(BaseModel):
    """Where notifications go. Secrets (signing keys, passwords, Slack URLs) are named by the
    environment variable that holds them, never written in the file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    type: Literal["webhook", "slack", "email"]
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    report_url: str | None = None
    host: str | None = None
    port: int = 587
    sender: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    username_env: str | None = None
    password_env: str | None = None
    #: SMTP only: send the login over a connection the server did not encrypt (off:
    #: a server that offers no STARTTLS is refused when credentials are configured).
    allow_plaintext_login: bool = False

    @model_validator(mode="after")
    def _complete(self) -> ChannelConfig:
        if self.type in ("webhook", "slack") and not (self.url or self.url_env):
            raise ValueError(f"a {self.type} channel needs url or url_env")
        if self.type == "webhook" and not self.secret_env:
            raise ValueError(
                "a webhook channel needs secret_env: the environment variable holding the "
                "key its bodies are signed with (X-Keel-Signature)"
            )
        if self.type == "email" and not (self.host and self.sender and self.to):
            raise ValueError("an email channel needs host, from and to")
        if bool(self.username_env) != bool(self.password_env):
            raise ValueError("username_env and password_env go together")
        for variable in (self.url_env, self.secret_env, self.username_env, self.password_env):
            if variable and not os.environ.get(variable):
                raise ValueError(f"environment variable {variable} is not set")
        if self.secret_env and len(os.environ[self.secret_env].encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the secret in {self.secret_env} is "
                f"{len(os.environ[self.secret_env].encode())} bytes; at least "
                f"{MIN_SECRET_BYTES} are needed (python -c 'import secrets; "
                "print(secrets.token_hex(32))' makes one)"
            )
        return self

    def target(self) -> str:
        """The URL (webhook, Slack) or SMTP host (email) to deliver to."""
        if self.type == "email":
            return self.host
        return self.url or os.environ[self.url_env]

    def secret(self) -> bytes:
        return os.environ[self.secret_env].encode()

    def credentials(self) -> tuple[str, str] | None:
        if not self.username_env:
            return None
        return os.environ[self.username_env], os.environ[self.password_env]


def rule_errors(rules: list[AlertRule], channels: dict[str, Any]) -> list[tuple[int, str]]:
    """What is wrong between rules and channels (unknown channel names, repeated rule
    names), as (index of the rule, message)."""
    errors, seen = [], set()
    for index, rule in enumerate(rules):
        if rule.name in seen:
            errors.append((index, f"alert rule {rule.name!r} is declared twice"))
        seen.add(rule.name)
        for name in rule.channels:
            if name not in channels:
                errors.append(
                    (
                        index,
                        f"alert rule {rule.name!r} names channel {name!r}; declared channels: "
                        f"{', '.join(sorted(channels)) or 'none'}",
                    )
                )
    return errors
