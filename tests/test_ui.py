"""keel ui, driven for real: a SQLite file store, uvicorn on loopback, Chromium.

Each page loads with no console error, no request leaving the server and no serious or
critical axe-core violation (screenshots saved under a temporary folder, or
``KEEL_UI_SCREENSHOTS``); a monitor run written to the store appears on an open overview
without a reload; silencing works with an admin token's session and is refused without one,
with a wrong CSRF token or from another origin; the action lands in the event log under the
person's name; the overview's queries do not grow with monitors or windows.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from keel.result import Result
from keel.store import ResultStore

AXE = Path(__file__).parent / "axe" / "axe.min.js"
START = datetime(2026, 1, 1, tzinfo=UTC)


def day(number: int) -> str:
    return (START + timedelta(days=number)).isoformat()


def windows_of(monitor, days, *, segments=(None,), version=None, alert_from=None, first=0):
    """A monitor's Results for ``days`` daily windows: drift, quality, performance, a
    diagnosis and the window's identity; drift alerts from window ``alert_from`` on."""
    rows = []
    for number in range(first, first + days):
        for segment in segments:
            bad = alert_from is not None and number >= alert_from
            common = dict(
                monitor=monitor,
                model=monitor,
                model_version=version,
                segment=segment,
                window_start=day(number),
                window_end=day(number + 1),
            )
            verdict = "data drift" if bad else "healthy"
            rows += [
                Result(
                    "feature_drift",
                    "income",
                    "wasserstein",
                    0.4 if bad else 0.01,
                    0.1,
                    "alert" if bad else "ok",
                    **common,
                ),
                Result("quality", "income", "missing_share", 0.0, 0.05, "ok", **common),
                Result(
                    "performance",
                    None,
                    "roc_auc",
                    0.8,
                    0.78,
                    "warn" if number % 5 == 3 else "ok",
                    **common,
                ),
                Result(
                    "diagnosis",
                    None,
                    "verdict",
                    2.0 if bad else 0.0,
                    None,
                    "alert" if bad else "ok",
                    details={
                        "verdict": verdict,
                        "summary": "income drifted" if bad else "nothing alerted",
                        "causes": [{"column": "income", "value": 0.4}] if bad else [],
                    },
                    **common,
                ),
                Result("window", None, "rows", 1000.0, None, "ok", **common),
                Result(
                    "window",
                    None,
                    "newest_ingestion",
                    (START + timedelta(days=number + 1)).timestamp(),
                    None,
                    "ok",
                    **common,
                ),
                Result(
                    "window",
                    None,
                    "newest_label_ingestion",
                    (START + timedelta(days=number + 1)).timestamp(),
                    None,
                    "ok",
                    **common,
                ),
            ]
    return rows


class Server:
    """The dashboard on a real uvicorn server, port 0 on loopback, in a thread."""

    def __init__(self, url: str) -> None:
        import uvicorn

        from keel.ui import create_app

        self.app = create_app(url, poll_seconds=0.5)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    @property
    def store(self) -> ResultStore:
        return self.app.state.store

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A store with two monitors (one segmented, alerting in its newest windows), an alert
    firing, a registered model with an alias moved twice, and ada's admin token."""
    from sklearn.dummy import DummyClassifier

    from keel.registry.aliases import promote
    from keel.registry.embedded import EmbeddedRegistry
    from keel.tokens import add_token

    folder = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{folder / 'keel.db'}"
    store = ResultStore(url)
    store.write(windows_of("loans", 20, segments=(None, "region=north"), alert_from=18))
    store.write(windows_of("cards", 10, version="2"))
    store.save_monitor("fraud", "fraud", {"window": "1d"})
    store.alerts.save(
        "a-loans-drift",
        ("loans", "drift", "", ""),
        severity="warning",
        first_window=day(18),
        started_at=START + timedelta(days=19),
        state="firing",
        last_window=day(19),
        revision=0,
        updated_at=day(20),
        summary="income drifted in 2 windows",
    )
    registry = EmbeddedRegistry(store, folder / "registry")
    for _ in range(2):
        run = registry.log_run("loans", {"params": {"C": 1}}, {})
        registry.register("loans", DummyClassifier().fit([[0], [1]], [0, 1]), run)
    for version, actor in ((1, "ada"), (2, "bob")):
        promote(
            registry,
            store,
            "loans",
            version,
            "champion",
            f"v{version}",
            actor,
            require_baseline=False,
        )
    token = add_token(store, "ada")
    server = Server(url)
    server.token = token
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    wanted = os.environ.get("KEEL_UI_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def visit(browser, ui):
    """Open a page of the dashboard; returns (page, problems): console and page errors, and
    every request that did not go to the dashboard itself."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []

    def open_page(path: str):
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        page.on(
            "request",
            lambda r: None if r.url.startswith(ui.base) else problems.append(f"left: {r.url}"),
        )
        response = page.goto(ui.base + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        return page, problems

    yield open_page
    context.close()


def serious_axe_violations(page) -> list[dict]:
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")  # not subject to the page's CSP
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))
            .slice(0, 3)}))"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def test_the_accessibility_check_catches_a_planted_violation(browser):
    # The check itself could pass vacuously: an image without text and a mute button fail it.
    page = browser.new_page()
    page.set_content('<html lang="en"><title>t</title><main><img src="data:,"><button></button>')
    assert {v["id"] for v in serious_axe_violations(page)} >= {"image-alt", "button-name"}
    page.close()


PAGES = {
    "overview": ("/", "Every model's health"),
    "monitor": ("/monitors/loans", "Monitor loans"),
    "window": (f"/monitors/loans/window?start={day(19).replace('+', '%2B')}", "Window"),
    "alerts": ("/alerts", "Alerts"),
    "models": ("/models", "Models"),
    "version": ("/models/loans/2", "loans version 2"),
    "events": ("/events", "Event log"),
    "login": ("/login", "Log in"),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_loads_cleanly_and_has_no_serious_accessibility_violation(visit, shots, name):
    path, heading = PAGES[name]
    page, problems = visit(path)
    assert heading in page.locator("h1").inner_text()
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert serious_axe_violations(page) == []
    assert problems == []


def test_the_pages_show_what_the_store_holds(visit, ui):
    page, _ = visit("/")
    loans = page.locator("section.card", has_text="loans").first
    # 14 newest windows, the two newest alerting; the segment has its own strip.
    assert loans.locator("ol.strip").first.locator("a.cell").count() == 14
    assert loans.locator("a.s-alert").count() == 4
    assert "drift (firing)" in loans.inner_text() and "data drift" in loans.inner_text()
    assert "region=north" in loans.inner_text()
    assert "version 2" in page.locator("section.card", has_text="cards").inner_text()
    assert "no window checked yet" in page.locator("section.card", has_text="fraud").inner_text()
    page, _ = visit("/monitors/loans")
    assert page.locator(".tl-row").count() == 8  # 2 series × diagnosis, drift, quality, performance
    assert "income" in page.locator("table", has_text="Evidence").first.inner_text()
    # A window links to its Results; the monitor's report is the one keel monitor report writes.
    report = httpx.get(f"{ui.base}/monitors/cards/report", timeout=60)
    assert report.status_code == 200 and "cards" in report.text
    assert "style-src 'unsafe-inline'" in report.headers["content-security-policy"]
    page, _ = visit("/models")
    history = page.locator("table", has_text="Alias history").inner_text()
    assert re.search(r"champion\s+2.*bob", history) and re.search(r"champion\s+1.*ada", history)


def test_a_new_monitor_run_appears_on_the_overview_without_a_reload(visit, ui):
    page, problems = visit("/")
    page.evaluate("window.notReloaded = true")
    assert page.locator("section.card", has_text="payments").count() == 0
    # Nothing changed: the fragment answers 204 and the page is left as it is.
    stamp = page.locator("#overview").get_attribute("data-stamp")
    assert httpx.get(f"{ui.base}/fragments/overview?since={stamp}").status_code == 204
    ui.store.write(windows_of("payments", 3, alert_from=2))
    card = page.locator("section.card", has_text="payments")
    card.wait_for(timeout=10_000)
    assert card.locator("a.s-alert").count() == 1
    assert page.evaluate("window.notReloaded") is True
    assert problems == []


def _login(client: httpx.Client, token: str) -> str:
    answer = client.post("/login", data={"token": token})
    assert answer.status_code == 303, answer.text
    page = client.get("/alerts").text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_silencing_is_refused_without_a_session_a_csrf_token_or_from_another_origin(ui):
    from keel.store.views import silence_rows

    before = len(silence_rows(ui.store))
    form = {"monitor": "cards", "rule": "*", "hours": "1"}
    with httpx.Client(base_url=ui.base) as anonymous:
        refused = anonymous.post("/alerts/silence", data={**form, "csrf": "x"})
        assert refused.status_code == 403 and "log in" in refused.text
        assert 'action="/alerts/silence"' not in anonymous.get("/alerts").text  # read-only
        wrong = anonymous.post("/login", data={"token": ui.token + "x"})
        assert wrong.status_code == 403 and "keel_session" not in wrong.headers.get(
            "set-cookie", ""
        )
    with httpx.Client(base_url=ui.base) as client:
        answer = client.post("/login", data={"token": ui.token})
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/alerts").text).group(1)
        assert client.post("/alerts/silence", data={**form, "csrf": csrf[:-1]}).status_code == 403
        cross = client.post(
            "/alerts/silence", data={**form, "csrf": csrf}, headers={"Origin": "http://evil.test"}
        )
        assert cross.status_code == 403
        assert not ui.store.alerts.silenced("cards", "anything", datetime.now(UTC))
        # The control: the same request, from the page's own origin, is accepted.
        done = client.post(
            "/alerts/silence", data={**form, "csrf": csrf}, headers={"Origin": ui.base}
        )
        assert done.status_code == 303
    assert ui.store.alerts.silenced("cards", "anything", datetime.now(UTC))
    assert len(silence_rows(ui.store)) == before + 1


def test_silence_and_unsilence_from_the_page_are_logged_under_the_persons_name(visit, ui, shots):
    page, problems = visit("/login")
    page.fill("#token", ui.token)
    page.click("button:has-text('Log in')")
    page.wait_for_url(ui.base + "/")
    assert "Signed in as ada" in page.locator("header").inner_text()
    page.goto(ui.base + "/alerts")
    page.click("button[aria-label='Silence drift of loans']")
    page.wait_for_url(ui.base + "/alerts")
    row = page.locator("table", has_text="Silences holding now").locator("tr", has_text="drift")
    assert "ada" in row.inner_text() and "holding" in row.inner_text()
    assert ui.store.alerts.silenced("loans", "drift", datetime.now(UTC))
    page.screenshot(path=str(shots / "alerts-signed-in.png"), full_page=True)
    page.click("button[aria-label='Unsilence drift of loans']")
    page.wait_for_url(ui.base + "/alerts")
    assert not ui.store.alerts.silenced("loans", "drift", datetime.now(UTC))
    events = ui.store.events()
    mine = events[events["actor"] == "ada"]
    assert {"ui login", "silence", "unsilence"} <= set(mine["action"])
    assert "loans/drift" in set(mine["subject"])
    page.goto(ui.base + "/events")
    assert re.search(r"ada\s+unsilence", page.locator("table").inner_text())
    assert problems == []


def _count_overview_queries(server: Server) -> int:
    import sqlalchemy as sa

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(server.store.engine, "before_cursor_execute", count)
    try:
        assert httpx.get(server.base + "/").status_code == 200
    finally:
        sa.event.remove(server.store.engine, "before_cursor_execute", count)
    return len(statements)


def test_the_overview_makes_the_same_few_queries_for_more_monitors_and_windows(tmp_path):
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = ResultStore(url)
    store.write(windows_of("m0", 3))
    server = Server(url)
    try:
        few = _count_overview_queries(server)
        for number in range(1, 8):
            store.write(windows_of(f"m{number}", 20, segments=(None, "a", "b"), version="1"))
        many = _count_overview_queries(server)
        assert "m7" in httpx.get(server.base + "/").text
    finally:
        server.stop()
    assert few == many <= 5, (few, many)


def test_keel_ui_warms_the_overviews_windows_before_the_first_page(tmp_path):
    from keel.ui.app import create_app, warm_up

    url = f"sqlite:///{tmp_path / 'keel.db'}"
    ResultStore(url).write(windows_of("m0", 5))
    app = create_app(url)
    assert len(app.state.memory) == 0
    warm_up(app).join(timeout=60)
    assert len(app.state.memory) == 5  # the first overview is drawn from memory


def test_a_window_is_aggregated_again_only_when_its_results_change(tmp_path):
    """The dashboard remembers each shown window's aggregates with its rows' fingerprint: an
    unchanged overview is drawn with no aggregating statement, and a revision written to a
    window (late labels, revised data) is on the next overview and timeline."""
    from dataclasses import replace

    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = ResultStore(url)
    rows = windows_of("m0", 5)
    store.write(rows)
    server = Server(url)
    try:
        first = _count_overview_queries(server)
        again = _count_overview_queries(server)
        assert again == first - 1, (first, again)  # the aggregates came from memory
        newest = httpx.get(server.base + "/monitors/m0").text
        assert '<a class="cell s-alert"' not in newest
        drift = next(r for r in rows if r.check == "feature_drift" and r.window_start == day(4))
        store.write([replace(drift, value=0.4, status="alert")])  # revision 1 of that Result
        assert _count_overview_queries(server) == first
        overview = httpx.get(server.base + "/").text
        assert overview.count('<a class="cell s-alert"') == 1
        assert f"{day(4)[:10]} 00:00: alert" in overview
        timeline = httpx.get(server.base + "/monitors/m0").text
        assert "feature drift" in timeline and timeline.count('<a class="cell s-alert"') == 1
        assert len(server.app.state.memory) == 5 + 5  # five windows, overview and timeline
    finally:
        server.stop()


def _challenger_window(number: int, n: int, horizon: int, north_passes: bool = True) -> list:
    """The challenger check's Results of one window (``keel.checks.challenger``, as
    ``keel.retrain.watch`` writes them): challenger version 2 against champion version 1,
    accuracy overall and in region=north, n paired labels against the horizon."""
    from keel.checks.challenger import challenger_results

    def condition(segment, passed):
        return {
            "metric": "accuracy",
            "segment": segment,
            "kind": "non-inferiority",
            "method": "tango",
            "n": n,
            "estimate": 0.02 if passed else -0.05,
            "lower": 0.01 if passed else -0.08,
            "threshold": -0.02,
            "passed": passed,
            "gating": True,
            "note": "",
        }

    waiting = n < horizon
    report = {
        "status": "insufficient_data" if waiting else "promote" if north_passes else "keep",
        "reason": f"{n} of {horizon} paired labels",
        "n": n,
        "horizon": horizon,
        "shadow_drop_share": 0.0,
        "conditions": [condition(None, True), condition("region=north", north_passes)],
    }
    return challenger_results(
        report,
        max_shadow_drop_share=0.05,
        monitor="loans",
        model="loans",
        model_version="2",
        window_start=day(number),
        window_end=day(number + 1),
        details={"champion_version": 1, "comparison": "shadow", "shadowed": 4000},
    )


def test_a_shadowed_challengers_results_are_a_row_of_the_champions_timeline(
    browser, tmp_path, shots
):
    """The ``challenger`` check's Results (a shadowed version 2's running comparison with
    champion version 1) are drawn in the champion's series, per segment, as a row naming
    the challenger: unknown until the horizon, then ok or warning; no window of its own
    before the shadow began, and no "version 2" series of their own. A square leads to the
    window's Results, the challenger's among them."""
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = ResultStore(url)
    store.write(windows_of("loans", 6, segments=(None, "region=north"), version="1"))
    for number, n in ((3, 400), (4, 900)):
        store.write(_challenger_window(number, n, horizon=1000))
    store.write(_challenger_window(5, 1200, horizon=1000, north_passes=False))
    server = Server(url)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        assert page.goto(server.base + "/monitors/loans").status == 200
        timeline = page.locator("section.series:has(.timeline)")
        headings = timeline.locator("h3").all_inner_texts()
        assert headings == ["version 1", "version 1 · region=north"], headings
        squares = {}
        for number, segment in enumerate((None, "region=north")):
            section = timeline.nth(number)
            row = section.locator(".tl-row", has_text="challenger (version 2)")
            assert row.count() == 1, segment
            squares[segment] = [
                a.get_attribute("class").split()[-1] for a in row.locator("a.cell").all()
            ]
            # Listed after the estimates of performance and before the labels' row, as the
            # families are ordered (the rows of this store: diagnosis, drift, quality, ...).
            names = section.locator(".tl-check").all_inner_texts()
            assert names.index("challenger (version 2)") == names.index("performance") + 1
        none, unknown = "s-none", "s-insufficient_data"
        assert squares[None] == [none] * 3 + [unknown, unknown, "s-ok"]
        assert squares["region=north"] == [none] * 3 + [unknown, unknown, "s-warn"]
        label = page.locator(".tl-row", has_text="challenger").first.locator("a.cell").last
        assert label.get_attribute("aria-label") == f"{day(5)[:10]} 00:00: ok"
        page.screenshot(path=str(shots / "monitor-challenger.png"), full_page=True)
        assert serious_axe_violations(page) == []
        label.click()
        page.wait_for_url("**/window?start=*")
        # region=north's failed condition is evidence; the rest are among the other Results.
        evidence = page.locator("table", has_text="Evidence").inner_text()
        assert re.search(r"warning\s+challenger\s+accuracy\s+-0\.05", evidence), evidence
        results = page.locator("main").text_content()
        assert "paired_labels" in results and "shadow_drop_share" in results
        assert problems == []
    finally:
        context.close()
        server.stop()


def test_keel_ui_serves_the_dashboard_on_loopback(ui, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = str(ui.store.engine.url)
    process = subprocess.Popen(
        [sys.executable, "-m", "keel.cli", "ui", "--store", url, "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        assert (
            "loans" in answer.text
            and "script-src 'self'" in answer.headers["content-security-policy"]
        )
        listening = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True
        )
        if listening.returncode == 0 and listening.stdout.strip():
            local = listening.stdout.split()[3]  # state, recv-q, send-q, local, peer
            assert local == f"127.0.0.1:{port}", listening.stdout
    finally:
        process.terminate()
        process.wait(10)


def exported_series() -> set[str]:
    """Every series name keel's two Prometheus registries expose (the monitor's, read from a
    store, and the gateway's), derived from the registries themselves."""
    from keel.monitor.prometheus import Metrics
    from keel.serve.metrics import ServeMetrics

    names = set()
    for registry in (Metrics(ResultStore("sqlite://")).registry, ServeMetrics().registry):
        for family in registry.collect():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("_sum", "_count"),
            }.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    return names


def test_every_grafana_panel_queries_a_series_keel_exports():
    import json

    dashboard = json.loads((Path(__file__).parents[1] / "docs/grafana/keel.json").read_text())
    exported = exported_series()
    assert {"keel_result_value", "keel_alerts", "keel_serve_request_seconds_bucket"} <= exported
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    queried = set()
    for panel in panels:
        names = {
            name
            for target in panel["targets"]
            for name in re.findall(r"\bkeel_[a-z0-9_]+", target["expr"])
        }
        assert names, f"panel {panel['title']!r} queries no keel series"
        assert names <= exported, f"{panel['title']!r}: {sorted(names - exported)} not exported"
        queried |= names
    variables = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert all(set(re.findall(r"\bkeel_[a-z0-9_]+", v)) <= exported for v in variables)
    # The alerts and the freshness of each monitor are on the board.
    assert {"keel_alerts", "keel_window_start_timestamp_seconds"} <= queried


def test_the_views_read_the_newest_revisions_on_postgresql_too(postgres_url):
    """The overview's and the timeline's statements are plain SQL: PostgreSQL answers as
    SQLite does (KEEL_TEST_POSTGRES_URL, as the store suite; skipped without it)."""
    from dataclasses import replace

    from keel.store.views import (
        check_summaries,
        latest_windows,
        monitor_timeline,
        window_fingerprints,
        window_summaries,
    )

    store = ResultStore(postgres_url)
    rows = windows_of("loans", 4, segments=(None, "a"), alert_from=3)
    store.write(rows)
    drift = next(r for r in rows if r.check == "feature_drift" and r.status == "alert")
    store.write([replace(drift, value=0.01, status="ok")])  # the drift was revised away
    found = {(w["segment"], w["window_start"]): w["status"] for w in latest_windows(store, 3)}
    assert len(found) == 6 and found[(None, day(3))] == "warn" and found[("a", day(3))] == "alert"
    timeline = monitor_timeline(store, "loans", 1)
    newest = {(c["segment"], c["check"]): c["status"] for c in timeline}
    assert newest[(None, "feature_drift")] == "ok" and newest[("a", "feature_drift")] == "alert"
    # The pages' reads of listed windows (what the dashboard's memory lacks) agree.
    kept = window_fingerprints(store, 3)
    assert sorted(kept) == [("loans", day(n)) for n in (1, 2, 3)]
    listed = {(w["segment"], w["window_start"]): w["status"] for w in window_summaries(store, kept)}
    assert listed == found
    cells = check_summaries(store, [("loans", day(3))])
    assert {(c["segment"], c["check"]): c["status"] for c in cells} == newest
    store.engine.dispose()
