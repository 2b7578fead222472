"""keel ui per page: p95 render time and the database statements each page makes.

Run: nice -n 10 python benchmarks/ui_pages.py [--folder /tmp/keel-ui-bench] [--requests 30]

The store is ``benchmarks/ui_render.py``'s (built once and kept in the folder: 365 daily
windows × 20 monitors × 6 series × 46 Results, about 2 million rows, written with
``keel.store.views.bulk_insert``); this adds, once, a registered model with 10 promotion
runs in the event log, so the Models page has its gate reports to draw. Then it serves the
dashboard with uvicorn on loopback and, over real HTTP, counts the statements of one
render of each page (SQLAlchemy's ``before_cursor_execute``), with the dashboard's memory
of window aggregates (``keel.ui.memory``) full and empty, and times ``--requests`` renders
of each in three cases: steady (every shown window remembered), one window changed (the
newest window of ``monitor07`` forgotten before each render, as a monitor run writing to it
makes it), and a fresh server (everything forgotten before each render). The pages: the
overview, a monitor page (60 windows), a window's page, the alerts, the Models page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_render import build, timed  # noqa: E402  (the store's builder, shared)

PAGES = {
    "overview": "/",
    "monitor page (60 windows)": "/monitors/monitor07",
    "window page": "/monitors/monitor07/window?start=2026-11-30T00%3A00%3A00%2B00%3A00",
    "alerts": "/alerts",
    "models (10 promotion runs)": "/models",
}


def add_promotions(url: str) -> None:
    """Once: model ``model07`` registered twice (v1 champion, v2 challenger) and ten
    comparisons recorded as ``keel.retrain.promotion`` records them (the last pending)."""
    import uuid

    from keel.store import ResultStore
    from keel.store.views import recent_events

    store = ResultStore(url)
    if any(e["action"] == "promotion compared" for e in recent_events(store, 500)):
        return
    from sklearn.dummy import DummyClassifier

    from keel.registry.aliases import promote
    from keel.registry.embedded import EmbeddedRegistry

    registry = EmbeddedRegistry(store)
    for _ in range(2):
        run = registry.log_run("model07", {}, {})
        registry.register(
            "model07",
            DummyClassifier().fit([[0], [1]], [0, 1]),
            run,
            tags={"keel.baseline": "b.keel"},
        )
    promote(registry, store, "model07", 1, "champion", "first", "ada")
    promote(registry, store, "model07", 2, "challenger", "retrained", "keel-retrain")
    conditions = [
        {
            "metric": "accuracy",
            "segment": segment,
            "kind": kind,
            "method": "tango",
            "n": 4000,
            "estimate": 0.03,
            "lower": 0.02,
            "threshold": 0.0 if kind == "superiority" else -0.02,
            "passed": True,
            "gating": True,
            "note": "",
        }
        for segment, kind in [(None, "superiority")]
        + [(f"region=r{s}", "non-inferiority") for s in range(5)]
    ]
    for number in range(10):
        status = "pending" if number == 9 else "insufficient_data"
        record = {
            "run": uuid.uuid4().hex[:12],
            "monitor": "monitor07",
            "model": "model07",
            "status": status,
            "gate_status": "promote" if status == "pending" else status,
            "reason": "benchmark",
            "champion_version": 1,
            "challenger_version": 2,
            "horizon": 3000,
            "as_of": "2026-11-30T00:00:00+00:00",
            "counts": {"paired": 300 * (number + 1), "shadowed": 4000, "drop_share": 0.0},
            "gate": {"status": status, "n": 300 * (number + 1), "conditions": conditions},
            "decided_by": None,
            "decided_at": None,
            "decision_reason": None,
            "audit_id": None,
        }
        store.log_event("keel-retrain", "promotion compared", "monitor07", {"record": record})


def main() -> None:
    import httpx
    import sqlalchemy as sa
    import uvicorn

    from keel.store.views import window_fingerprints
    from keel.ui.app import create_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=Path("/tmp/keel-ui-bench"))
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    url = build(args.folder)
    add_promotions(url)

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
    print(f"store: {total:,} Result rows ({args.folder / 'keel.db'})")
    memory = app.state.memory
    newest = max(start for name, start in window_fingerprints(store, 1) if name == "monitor07")
    # Before each timed render: nothing (the steady state: the windows' aggregates are in
    # the dashboard's memory); one window forgotten (as when a monitor run writes to it);
    # everything forgotten (a fresh server).
    cases = {
        "steady": None,
        "one window changed": lambda: memory.forget(("monitor07", newest)),
        "fresh server": memory.forget,
    }
    with httpx.Client(base_url=base, timeout=120) as client:
        for name, path in PAGES.items():
            statements: list[str] = []

            def count(*event, found=statements):
                found.append(event[2])

            memory.forget()
            sa.event.listen(store.engine, "before_cursor_execute", count)
            answer = client.get(path)
            cold = len(statements)
            answer = client.get(path)
            sa.event.remove(store.engine, "before_cursor_execute", count)
            assert answer.status_code == 200, (path, answer.status_code)
            warm = len(statements) - cold
            said = []
            for case, before in cases.items():
                spent = timed(client, path, args.requests, before=before)
                p95 = statistics.quantiles(spent, n=20)[-1]
                said.append(
                    f"{case}: p50 {statistics.median(spent):.0f} ms, p95 {p95:.0f} ms "
                    f"({'meets' if p95 < 300 else 'misses'} the 300 ms goal)"
                )
            print(
                f"{name} ({len(answer.content) / 1024:.0f} kB; {warm} database statements, "
                f"{cold} with nothing remembered):\n    " + "\n    ".join(said)
            )
    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    server.should_exit = True
    thread.join(10)


if __name__ == "__main__":
    main()
