"""keel ui's render times on a big store: one year of daily windows, 20 monitors, 5 segments.

Run: nice -n 10 python benchmarks/ui_render.py [--folder /tmp/keel-ui-bench] [--rebuild]

Generates (once; kept in the folder) a SQLite store holding 365 daily windows × 20 monitors
× 6 series (all rows and 5 segments) × 46 Results each (drift on 8 features with 2
statistics, quality, multivariate, prediction and target drift, realized and estimated
performance, labels, a KPI, the diagnosis, the window's identity; the newest 3 windows'
performance revised once, as late labels revise it): about 2 million Result rows, written
with ``keel.store.views.bulk_insert``, plus 40 alerts and the monitors declared. Then
serves the dashboard with uvicorn on loopback and times, over real HTTP, ``--requests``
renders each of the overview, a monitor page (60 windows) and the overview fragment when
nothing changed (204); prints p50 and p95 against the 300 ms goal and the number of
database statements the first overview makes. Renders after the first draw the windows'
aggregates from the dashboard's memory (``keel.ui.memory``); ``benchmarks/ui_pages.py``
times a fresh server's and a changed window's renders too.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

MONITORS, SEGMENTS, DAYS = 20, 5, 365
#: The newest windows whose performance Results were revised once (late labels).
REVISED = 3
FEATURES = [f"f{i}" for i in range(8)]
START = datetime(2025, 12, 1, tzinfo=UTC)


def results(monitor: int):
    """Every Result of one monitor, a generator (the store takes them in chunks)."""
    import numpy as np

    from keel.result import Result

    rng = np.random.default_rng(monitor)
    name = f"monitor{monitor:02d}"
    for number in range(DAYS):
        start, end = START + timedelta(days=number), START + timedelta(days=number + 1)
        for segment in [None, *(f"region=r{s}" for s in range(SEGMENTS))]:
            common = dict(
                monitor=name,
                model=f"model{monitor:02d}",
                model_version=str(1 + number // 120),
                segment=segment,
                window_start=start.isoformat(),
                window_end=end.isoformat(),
            )
            drifted = rng.random() < 0.03
            values = rng.random(40)

            def judged(check, column, metric, value, threshold, bad=False, common=common, **extra):
                return Result(
                    check,
                    column,
                    metric,
                    float(value),
                    threshold,
                    "alert" if bad else "ok",
                    **common,
                    **extra,
                )

            for index, feature in enumerate(FEATURES):
                bad = drifted and index == 0
                yield judged("feature_drift", feature, "wasserstein", values[index] / 10, 0.1, bad)
                yield judged("feature_drift", feature, "psi", values[8 + index] / 10, 0.2, bad)
                yield judged("quality", feature, "missing_share", values[16 + index] / 100, 0.05)
            yield judged("quality", None, "volume", 1000 + values[24] * 100, None)
            yield judged("quality", None, "freshness_lag_seconds", values[25] * 3600, 86400)
            yield judged("multivariate", None, "domain_auc", 0.5 + values[26] / 20, 0.6)
            yield judged("multivariate", None, "reconstruction_error", values[27], 1.5)
            yield judged("prediction_drift", "score", "wasserstein", values[28] / 10, 0.1)
            yield judged("prediction_drift", "score", "psi", values[29] / 10, 0.2)
            yield judged("target_drift", "default", "psi", values[30] / 10, 0.2)
            for metric in ("roc_auc", "accuracy", "f1", "log_loss"):
                first = judged("performance", None, metric, 0.7 + values[31] / 10, 0.7)
                yield first
                if number >= DAYS - REVISED:  # labels came late: the metric was revised
                    yield replace(first, value=first.value - 0.05, revision=1)
            yield judged("estimated_performance", None, "roc_auc", 0.7 + values[32] / 10, 0.7)
            yield judged("estimated_performance", None, "accuracy", 0.7 + values[33] / 10, 0.7)
            yield judged("labels", None, "labelled_share", values[34], None)
            yield judged("labels", None, "label_shift", values[35] / 10, 0.1)
            yield judged("labels", None, "hours_since_last_label", values[36] * 24, None)
            yield judged("kpi", None, "value_per_1000", 100 + values[37] * 10, 90)
            verdict = "data drift" if drifted else "healthy"
            yield Result(
                "diagnosis",
                None,
                "verdict",
                2.0 if drifted else 0.0,
                None,
                "alert" if drifted else "ok",
                **common,
                details={"verdict": verdict, "summary": f"{verdict} (generated)", "causes": []},
            )
            for metric, value in (
                ("rows", 1000.0),
                ("labels", 800.0),
                ("newest_ingestion", end.timestamp()),
                ("newest_label_ingestion", end.timestamp()),
            ):
                yield Result("window", None, metric, value, None, "ok", **common)


def build(folder: Path) -> str:
    from keel.store import ResultStore
    from keel.store.views import bulk_insert

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "keel.db"
    url = f"sqlite:///{path}"
    if path.exists():
        return url
    began = time.perf_counter()
    store = ResultStore(url)
    rows = 0
    for monitor in range(MONITORS):
        rows += bulk_insert(store, results(monitor))
        store.save_monitor(f"monitor{monitor:02d}", f"model{monitor:02d}", {"window": "1d"})
    for number in range(40):
        monitor = f"monitor{number % MONITORS:02d}"
        store.alerts.save(
            f"alert{number}",
            (monitor, f"rule{number}", "", ""),
            severity="warning",
            first_window=(START + timedelta(days=DAYS - 3)).isoformat(),
            started_at=START + timedelta(days=DAYS - 2),
            state="firing" if number % 2 else "pending",
            last_window=(START + timedelta(days=DAYS - 1)).isoformat(),
            revision=0,
            updated_at=(START + timedelta(days=DAYS)).isoformat(),
            summary="generated",
        )
    print(f"built {rows:,} Result rows in {time.perf_counter() - began:.0f} s ({path})")
    return url


def timed(client, path: str, requests: int, status: int = 200, before=None) -> list[float]:
    """Milliseconds of ``requests`` renders of ``path`` after one untimed; ``before()``, when
    given, runs (untimed) before each (the dashboard's memory emptied, say)."""
    client.get(path)  # warm
    spent = []
    for _ in range(requests):
        if before is not None:
            before()
        began = time.perf_counter()
        answer = client.get(path)
        spent.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == status, (path, answer.status_code)
    return spent


def main() -> None:
    import httpx
    import sqlalchemy as sa
    import uvicorn

    from keel.ui.app import create_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=Path("/tmp/keel-ui-bench"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    if args.rebuild:
        (args.folder / "keel.db").unlink(missing_ok=True)
    url = build(args.folder)

    app = create_app(url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    store = app.state.store
    with store.engine.connect() as connection:
        total = connection.execute(sa.text("SELECT COUNT(*) FROM keel_results")).scalar()
    statements: list[str] = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    with httpx.Client(base_url=base, timeout=60) as client:
        sa.event.listen(store.engine, "before_cursor_execute", listener)
        page = client.get("/")
        sa.event.remove(store.engine, "before_cursor_execute", listener)
        stamp = page.text.split('data-stamp="', 1)[1].split('"', 1)[0]
        figures = {
            "overview": timed(client, "/", args.requests),
            "monitor page (60 windows)": timed(client, "/monitors/monitor07", args.requests),
            "overview fragment, unchanged (204)": timed(
                client, f"/fragments/overview?since={stamp}", args.requests, 204
            ),
        }
        size = len(page.content)
    server.should_exit = True
    thread.join(10)
    print(f"store: {total:,} Result rows; overview {size / 1024:.0f} kB")
    print(f"overview: {len(statements)} database statements")
    for name, spent in figures.items():
        p95 = statistics.quantiles(spent, n=20)[-1]
        verdict = "meets" if p95 < 300 else "misses"
        print(
            f"{name}: p50 {statistics.median(spent):.0f} ms, p95 {p95:.0f} ms "
            f"({verdict} the 300 ms goal; {len(spent)} requests)"
        )


if __name__ == "__main__":
    main()
