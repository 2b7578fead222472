"""``keel.yaml``: monitors declared in a file, validated, with errors that name the key and line.

    monitors:
      - name: loans
        model: loans                      # whose prediction log to read
        baseline: keel-demo/baseline.keel
        source: logs                      # the prediction log (default), or a data path
        window: 7D
        allowed_lateness: 1D              # a window closes this long after its end
        false_alarm_rate: 0.01
        calibration: keel-demo/baseline.calibration-7D.json   # optional
        schedule: "*/15 * * * *"          # cron, for keel monitor serve

>>> text = "monitors:\\n  - name: m\\n    model: m\\n    baseline: b.keel\\n    window: 1D\\n"
>>> [m.name for m in parse_config(text, "keel.yaml")]
['m']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.errors import ConfigError
from keel.windows import WindowSpec


class MonitorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    baseline: str
    source: str = "logs"
    window: str
    allowed_lateness: str = "0h"
    false_alarm_rate: float = Field(default=0.01, gt=0, lt=1)
    calibration: str | None = None
    timestamp: str = "event_time"
    logs: str | None = None
    schedule: str = "*/15 * * * *"

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        spec = WindowSpec.parse(value)
        if spec.period is None:
            raise ValueError("a monitor's window is a period (1h, 1D, 7D)")
        return value

    @field_validator("allowed_lateness")
    @classmethod
    def _lateness(cls, value: str) -> str:
        WindowSpec.parse(value if value not in ("0", "0h") else "1h")
        return value

    @property
    def lateness_seconds(self) -> float:
        if self.allowed_lateness in ("0", "0h"):
            return 0.0
        return WindowSpec.parse(self.allowed_lateness).period_ns / 1e9


def load_config(path: str | Path = "keel.yaml") -> list[MonitorConfig]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    return parse_config(path.read_text(), str(path))


def parse_config(text: str, source: str) -> list[MonitorConfig]:
    try:
        document = yaml.compose(text)
        payload = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML ({error})") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("monitors"), list):
        raise ConfigError(f"{source}: expected a top-level 'monitors:' list")
    monitors, names = [], set()
    for index, entry in enumerate(payload["monitors"]):
        try:
            monitor = MonitorConfig.model_validate(entry)
        except (ValidationError, ConfigError) as error:
            raise ConfigError(_explain(error, source, document, index)) from error
        if monitor.name in names:
            raise ConfigError(f"{source}: monitor {monitor.name!r} is declared twice")
        names.add(monitor.name)
        monitors.append(monitor)
    return monitors


def _explain(error: Exception, source: str, document: Any, index: int) -> str:
    if not isinstance(error, ValidationError):
        return f"{source}: monitors[{index}]: {error}"
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    line = _line_of(document, index, first["loc"][0] if first["loc"] else None)
    where = f" (line {line})" if line else ""
    return f"{source}{where}: monitors[{index}].{key}: {first['msg']}"


def _line_of(document: Any, index: int, key: Any) -> int | None:
    """The 1-based line of a monitor's key in the YAML, from the composed node's marks."""
    try:
        monitors = next(v for k, v in document.value if k.value == "monitors")
        entry = monitors.value[index]
        for name, _ in entry.value:
            if name.value == key:
                return name.start_mark.line + 1
        return entry.start_mark.line + 1
    except (AttributeError, StopIteration, IndexError):
        return None
