"""A generated production scenario with known changes, for the demo, the tests and benchmarks.

A lending-style table: customers apply with an age, income, requested
amount, tenure, country and device; the label says whether they defaulted.
Training covers 26 weeks; production follows for 10 weeks, each week as
many applications as a training week:

* weeks 1–4: quiet, the same distribution as training;
* weeks 5–6: covariate shift: applicants are older (+8 years) and richer
  (income ×1.5);
* weeks 7–8: an upstream unit change: ``amount`` arrives in cents, 100× the
  reference;
* week 9: a null spike: a join starts losing ``income`` for a quarter of rows;
* week 10: a new category: ``device`` reports "smart-tv" for 12% of rows;
* week 11: a broken correlation: ``amount`` (which rises with ``income``) is
  joined to the wrong applications, so the two no longer move together,
  while each column's own distribution is unchanged;
* week 12: quiet again;
* from week 13 on: concept drift: the same inputs, a new relationship to the label (it
  follows the device, and the amount far less); it persists.

With ``user_features=True`` (the demo) each application also names its ``user_id`` and
carries a user-level windowed feature, ``user_applications_7d``: how many applications
the same user made in the 7 days before it (``USER_FEATURE``, ``[t − 7D, t)``), as the
online state served it, with ``user_applications_7d__as_of`` (when the served value
was computed). Two production weeks serve it wrong (training–serving skew):

* week 15: a truncated window: the online state keeps only the last day, so the served
  count misses the older six days (the offline truth counts all seven);
* week 16: a stale value: the online state stopped updating when the week began, so
  every request is served the count as of that moment.

Applying again within a week is a risk of its own: each application beyond the first
adds to the default probability, so the model leans on the feature and a skewed week
costs money.

Weeks start on Thursdays, as 7-day windows aligned to the Unix epoch do.

>>> scenario = generate(seed=0, training_weeks=2, week_rows=500)
>>> scenario.training.num_rows, len(scenario.weeks), scenario.changes[7]["kind"]
(1000, 11, 'unit change')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

START = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday: 7-day windows from the epoch start here
COUNTRIES = np.array(["DE", "FR", "ES", "IT", "NL", "PL"])
COUNTRY_SHARES = np.array([0.3, 0.25, 0.15, 0.15, 0.1, 0.05])
DEVICES = np.array(["mobile", "desktop", "tablet"])
DEVICE_SHARES = np.array([0.6, 0.3, 0.1])
FEATURES = ["age", "income", "amount", "tenure_months", "country", "device"]
CHANGES = {
    5: {"kind": "covariate shift", "columns": ["age", "income"]},
    6: {"kind": "covariate shift", "columns": ["age", "income"]},
    7: {"kind": "unit change", "columns": ["amount"], "factor": 100},
    8: {"kind": "unit change", "columns": ["amount"], "factor": 100},
    9: {"kind": "null spike", "columns": ["income"], "share": 0.25},
    10: {"kind": "new category", "columns": ["device"], "value": "smart-tv", "share": 0.12},
    11: {"kind": "broken correlation", "columns": ["amount", "income"]},
    # Week 12 is quiet again. Then the same inputs with a new relationship to the label:
    # only realized performance can see it. It persists (CONCEPT_DRIFT_FROM): the world
    # changed, and only a model retrained on the new relationship serves it well.
    13: {"kind": "concept drift", "columns": []},
    14: {"kind": "concept drift", "columns": []},
}
#: The production weeks of the story (the demo's first part): their random draws are the
#: same however many weeks are generated after them.
STORY_WEEKS = 16
#: From this production week on, every week's labels follow the new relationship (the
#: skewed weeks' too: their serving fault is on top of it).
CONCEPT_DRIFT_FROM = 13
CONCEPT_DRIFT = {"kind": "concept drift", "columns": []}
#: The user-level feature's name, and its definition as keel.yaml's ``features:`` holds it.
USER_FEATURE = "user_applications_7d"
USER_FEATURE_DEFINITION = {
    "name": USER_FEATURE,
    "entity": "user_id",
    "aggregation": "count",
    "window": "7D",
    "available_time": "available_time",  # when the feature pipeline learned of it
}
#: The weeks that serve the user-level feature wrong (with ``user_features=True``).
SKEW_CHANGES = {
    15: {"kind": "truncated window", "columns": [USER_FEATURE], "kept": "1D"},
    # A frozen value is distributed like a fresh one: no drift check can see it.
    16: {"kind": "stale value", "columns": [USER_FEATURE], "drift_visible": False},
}


#: The scenario's columns by role, as ``Baseline.from_data`` takes them.
ROLES = {"target": "defaulted", "timestamp": "event_time", "id": "application_id"}
#: ... and with a model's outputs (``keel.demo.score``) added.
SCORED_ROLES = {**ROLES, "score": "score", "prediction": "prediction"}


def log_weeks(
    root: Any,
    weeks: list[pa.Table],
    model: str = "loans",
    keep_labels: bool = False,
    version: str | None = None,
) -> None:
    """Write weeks to a model's prediction log as a service would: the application id is
    the request id, the label (``defaulted``) is left out unless ``keep_labels``, and
    ``version`` (if given) is each record's ``model_version``."""
    from keel.store.logs import LogWriter

    with LogWriter(root, "predictions", model) as writer:
        for week in weeks:
            served = week.rename_columns(
                ["request_id" if c == ROLES["id"] else c for c in week.column_names]
            )
            if not keep_labels and ROLES["target"] in served.column_names:
                served = served.drop_columns([ROLES["target"]])
            if version is not None:
                served = served.append_column(
                    "model_version", pa.array([version] * served.num_rows)
                )
            for batch in served.to_batches(max_chunksize=2_000):  # as a gateway would
                writer.append(pa.Table.from_batches([batch]))


def log_labels_of(root: Any, rows: pa.Table, arrived: Any, model: str = "loans") -> None:
    """Write the labels of some scenario rows to the label log, as they arrive: ``arrived``
    is the label's event time (one time, or one per row)."""
    from keel.store.logs import LogWriter

    if not isinstance(arrived, pa.Array | pa.ChunkedArray):
        arrived = pa.array([arrived] * rows.num_rows, pa.timestamp("us", tz="UTC"))
    with LogWriter(root, "labels", model) as writer:
        writer.append(
            pa.table(
                {
                    "request_id": rows[ROLES["id"]],
                    "event_time": arrived,
                    ROLES["target"]: rows[ROLES["target"]],
                }
            )
        )


@dataclass
class Scenario:
    training: pa.Table
    weeks: list[pa.Table]
    changes: dict[int, dict] = field(default_factory=dict)  # week number -> what changed
    start: datetime = START
    #: With user features: every application as the feature pipeline saw it (``user_id``,
    #: ``event_time``, ``available_time``), from a week before training on.
    user_events: pa.Table | None = None

    def production(self) -> pa.Table:
        """All production weeks as one time-ordered log."""
        return pa.concat_tables(self.weeks)

    def week_start(self, number: int) -> datetime:
        """When production week ``number`` (from 1) starts."""
        training_weeks = round(
            (self.weeks[0].column("event_time")[0].as_py() - self.start).days / 7
        )
        return self.start + timedelta(weeks=training_weeks + number - 1)


def generate(
    seed: int = 7,
    training_weeks: int = 26,
    week_rows: int = 10_000,
    production_weeks: int = 11,
    user_features: bool = False,
) -> Scenario:
    """The scenario's tables: training weeks, then production weeks with the planted changes.

    >>> scenario = generate(seed=0, training_weeks=2, week_rows=500, production_weeks=16,
    ...                     user_features=True)
    >>> scenario.changes[15]["kind"], USER_FEATURE in scenario.training.column_names
    ('truncated window', True)
    """
    rng = np.random.default_rng(seed)
    training = _applications(
        rng, week_rows * training_weeks, START, weeks=training_weeks, first_id=0
    )
    weeks = []
    for week in range(1, production_weeks + 1):
        start = START + timedelta(weeks=training_weeks + week - 1)
        change = CHANGES.get(week) or (CONCEPT_DRIFT if week >= CONCEPT_DRIFT_FROM else {})
        weeks.append(
            _applications(
                rng,
                week_rows,
                start,
                weeks=1,
                first_id=training.num_rows + (week - 1) * week_rows,
                change=change,
            )
        )
    persisting = {w: CONCEPT_DRIFT for w in range(CONCEPT_DRIFT_FROM, production_weeks + 1)}
    changes = {**persisting, **CHANGES, **(SKEW_CHANGES if user_features else {})}
    events = None
    if user_features:
        # Their own generator: every other column is the same as without them.
        training, weeks, events = _with_user_feature(
            np.random.default_rng([seed, 21]),
            training,
            weeks,
            week_rows,
            np.random.default_rng([seed, 21, STORY_WEEKS]),
        )
    changes = {k: v for k, v in changes.items() if k <= production_weeks}
    return Scenario(training, weeks, changes, user_events=events)


def window_counts(
    users: np.ndarray, times: np.ndarray, at_users: np.ndarray, at: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: how many events of its user fall in ``[at − window, at)``, and the time of
    the newest of them (``-1`` when none). Times are integers (seconds); vectorized: one
    sort and two binary searches.

    >>> users, times = np.array([1, 1, 1, 2]), np.array([0, 5, 10, 5])
    >>> window_counts(users, times, np.array([1, 1, 2]), np.array([10, 11, 5]), 10)
    (array([2, 2, 0]), array([ 5, 10, -1]))
    """
    span = int(max(times.max(initial=0), at.max(initial=0))) + window + 1
    keys = np.sort(users.astype(np.int64) * span + times.astype(np.int64))
    query = at_users.astype(np.int64) * span + at.astype(np.int64)
    last = np.searchsorted(keys, query, side="left")
    first = np.searchsorted(keys, query - window, side="left")
    counts = last - first
    newest = np.where(counts > 0, keys[np.maximum(last - 1, 0)] - at_users * span, -1)
    return counts, newest


def _with_user_feature(
    rng: np.random.Generator,
    training: pa.Table,
    weeks: list[pa.Table],
    week_rows: int,
    later_rng: np.random.Generator,
) -> tuple[pa.Table, list[pa.Table], pa.Table]:
    """Add ``user_id`` and the user-level feature (as served) to every table; and the
    feature's events: the applications, after a week of them before training began (so
    that the first training week's users have a history, as later weeks' do). Weeks past
    ``STORY_WEEKS`` draw from ``later_rng``: generating more weeks never changes the first."""
    tables = [training, *weeks[:STORY_WEEKS]]
    users = [rng.integers(0, week_rows, table.num_rows) for table in tables]  # ~1 a week each
    start = int(training["event_time"].cast(pa.int64()).to_numpy().min())
    history_time = np.sort(start - 1 - rng.integers(0, 7 * 86_400, week_rows))
    history_user = rng.integers(0, week_rows, week_rows)
    later = weeks[STORY_WEEKS:]
    users += [later_rng.integers(0, week_rows, table.num_rows) for table in later]
    tables += later
    seconds = [table["event_time"].cast(pa.int64()).to_numpy() for table in tables]
    every_user = np.concatenate([history_user, *users])
    every_time = np.concatenate([history_time, *seconds])
    window = 7 * 86_400
    out = []
    for number, (table, user, second) in enumerate(zip(tables, users, seconds, strict=True)):
        kind = SKEW_CHANGES.get(number, {}).get("kind")  # number 0 is training
        at, kept = second, window
        if kind == "truncated window":
            kept = 86_400
        elif kind == "stale value":  # frozen when the week began: the value as of then
            at = np.full_like(second, second.min())
        true_counts, _ = window_counts(every_user, every_time, user, second, window)
        counts, _ = window_counts(every_user, every_time, user, at, kept)
        # Applying again within a week is a risk of its own: each application beyond the
        # first adds 8 points of default probability (capped at 40), whatever else changed.
        extra = np.minimum(0.08 * np.maximum(true_counts - 1, 0), 0.4)
        draws = (rng if number <= STORY_WEEKS else later_rng).random(table.num_rows)
        defaulted = table["defaulted"].to_numpy() | (draws < extra)
        table = table.set_column(
            table.schema.get_field_index("defaulted"), "defaulted", pa.array(defaulted, pa.int8())
        )
        # The served value's own timestamp: when it was computed (the frozen moment when
        # stale; at the request otherwise).
        as_of = pa.array(at, pa.int64()).cast(pa.timestamp("s", tz="UTC"))
        out.append(
            table.add_column(1, "user_id", pa.array(np.char.add("user-", user.astype(str))))
            .append_column(USER_FEATURE, pa.array(counts, pa.int64()))
            .append_column(USER_FEATURE + "__as_of", as_of)
        )
    times = pa.array(every_time, pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    events = pa.table(
        {
            "user_id": pa.array(np.char.add("user-", every_user.astype(str))),
            "event_time": times,
            "available_time": times,  # known the moment it is made
        }
    )
    return out[0], out[1:], events


def _applications(
    rng: np.random.Generator,
    rows: int,
    start: datetime,
    weeks: int,
    first_id: int,
    change: dict | None = None,
) -> pa.Table:
    kind = (change or {}).get("kind")
    shifted = kind == "covariate shift"  # younger applicants with lower incomes: riskier
    age = np.clip(rng.normal(40 - 8.0 * shifted, 11, rows), 18, 90).round()
    income_noise = rng.normal(size=rows)
    income = np.exp(np.log(42_000 * (0.6 if shifted else 1.0)) + 0.45 * income_noise).round(-2)
    # Richer applicants ask for more: the amount's noise follows the income's (r = 0.7),
    # unless the join is broken and it follows nothing.
    linked = 0.0 if kind == "broken correlation" else 0.7
    amount_noise = linked * income_noise + np.sqrt(1 - linked**2) * rng.normal(size=rows)
    amount = np.exp(np.log(8_000) + 0.8 * amount_noise).round(2)
    tenure = rng.poisson(30, rows)
    country = rng.choice(COUNTRIES, rows, p=COUNTRY_SHARES)
    device = rng.choice(DEVICES, rows, p=DEVICE_SHARES)
    # Default risk rises with the amount relative to income and falls with age and tenure;
    # after a concept drift, it follows the device instead, and the amount far less.
    logit = -2.2 + 2.0 * (amount / income) - 0.02 * (age - 40) - 0.01 * (tenure - 30)
    if kind == "concept drift":
        logit = -2.45 + 0.5 * (amount / income) + 1.3 * (device == "mobile") - 0.01 * (tenure - 30)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    if kind == "unit change":
        amount = amount * change["factor"]
    income_mask = None
    if kind == "null spike":
        income_mask = rng.random(rows) < change["share"]
    if kind == "new category":
        device = np.where(rng.random(rows) < change["share"], change["value"], device)
    offsets = np.sort(rng.random(rows)) * weeks * 7 * 86_400
    event_time = np.datetime64(start.replace(tzinfo=None), "s") + offsets.astype("timedelta64[s]")
    ids = np.char.add("app-", np.arange(first_id, first_id + rows).astype(str))
    return pa.table(
        {
            "application_id": ids,
            "event_time": pa.array(event_time, type=pa.timestamp("s", tz="UTC")),
            "age": age,
            "income": pa.array(income, mask=income_mask),
            "amount": amount,
            "tenure_months": tenure,
            "country": country,
            "device": device,
            "defaulted": label,
        }
    )


def correlated_features(rows: int, rng: np.random.Generator, linked: float = 0.8) -> pd.DataFrame:
    """x and y standard normal with correlation ``linked``, an independent z, a 3-category c.

    Lowering ``linked`` breaks the correlation while every marginal stays the same: the
    case only multivariate checks can see (their tests and ``benchmarks/``).

    >>> frame = correlated_features(20_000, np.random.default_rng(0))
    >>> round(float(frame["x"].corr(frame["y"])), 1), sorted(frame["c"].unique())
    (0.8, ['a', 'b', 'c'])
    """
    import pandas as pd

    x = rng.normal(size=rows)
    y = linked * x + np.sqrt(1 - linked**2) * rng.normal(size=rows)
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "z": rng.normal(size=rows),
            "c": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
