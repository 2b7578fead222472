"""The Models page acts, driven for real: a SQLite store, keel's embedded registry (loans
v1 champion, v2 challenger), the gateway's three logs written by the log writer, the
promotion runs ``keel.retrain.promotion.compare`` records, uvicorn on loopback, Chromium.

A pending promotion appears with its gate report (per metric and segment: Δ, its bound,
the threshold and the margin, pass or fail; n and the horizon; shadow drops), a run
below its horizon shows its running estimates, and a canary's unpaired comparison shows
its arms and its guards. Without a session the page has no buttons
and a forged POST is refused (403) and audited by the library. Signed in, a person
approves (the champion moves, the audit names them), rejects only with a reason, and rolls
an alias back with a reason.
"""

from __future__ import annotations

import re

import httpx
import pytest

from keel.store import ResultStore

from .test_retrain_promotion import _monitor, _write_logs
from .test_ui import Server, serious_axe_violations


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The store, the registry, a run below its horizon, a pending run, the dashboard."""
    from sklearn.dummy import DummyClassifier

    from keel.registry.aliases import promote
    from keel.registry.embedded import EmbeddedRegistry
    from keel.retrain.promotion import compare
    from keel.tokens import add_token

    folder = tmp_path_factory.mktemp("ui-models")
    url = f"sqlite:///{folder / 'keel.db'}"
    store = ResultStore(url)
    registry = EmbeddedRegistry(store)  # the registry the dashboard opens (KEEL_REGISTRY unset)
    for _ in range(2):
        run = registry.log_run("loans", {}, {})
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        registry.register("loans", model, run, tags={"keel.baseline": "b.keel"})
    promote(registry, store, "loans", 1, "champion", "first model", "ada")
    promote(registry, store, "loans", 2, "challenger", "retrained", "keel-retrain")
    _write_logs(folder / "logs", dropped=12)
    monitor = _monitor(folder)
    running = compare(monitor, store, registry=registry, horizon=20_000)
    pending = compare(monitor, store, registry=registry)
    assert running.status == "insufficient_data" and pending.status == "pending", pending.reason
    server = Server(url)
    server.registry, server.monitor = registry, monitor
    server.tokens = {name: add_token(store, name) for name in ("ada", "bob")}
    server.runs = {"running": running.run, "pending": pending.run}
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    import os
    from pathlib import Path

    wanted = os.environ.get("KEEL_UI_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def tab(browser, world):
    """A fresh browser context on the dashboard; returns (page, problems)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on(
        "console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None
    )
    page.on(
        "request",
        lambda r: None if r.url.startswith(world.base) else problems.append(f"left: {r.url}"),
    )
    yield page, problems
    context.close()


def log_in(page, world, name="ada"):
    page.goto(world.base + "/login")
    page.fill("#token", world.tokens[name])
    page.click("button:has-text('Log in')")
    page.wait_for_url(world.base + "/")
    page.goto(world.base + "/models")


def champion(world) -> int:
    return world.registry.aliases("loans")["champion"]


def refusals(world) -> list[dict]:
    return [r for r in world.store.audit_rows(model="loans") if r["event"] == "refused"]


def test_a_pending_promotion_shows_its_gate_report_and_read_only_pages_have_no_buttons(
    tab, world, shots
):
    page, problems = tab
    assert page.goto(world.base + "/models").status == 200
    pending = page.locator(f"#run-{world.runs['pending']}")
    text = pending.inner_text()
    assert "pending" in text and "challenger version 2" in text and "champion version 1" in text
    assert re.search(r"Paired labels\s+3988 of a horizon of \d+", text), text
    assert "0.30% of 4000 shadowed; queue_full 12" in text
    report = pending.locator("table", has_text="gate's report").inner_text()
    assert re.search(r"accuracy\s+all\s+superiority", report)
    assert re.search(r"accuracy\s+north\s+non-inferiority", report) and "pass" in report
    running = page.locator(f"#run-{world.runs['running']}")
    assert "Running estimates" in running.inner_text() and "of a horizon of 20000" in (
        running.inner_text()
    )
    assert "log in to approve or reject" in pending.inner_text()
    assert page.locator("button", has_text="Approve").count() == 0
    assert page.locator("button", has_text="Roll back").count() == 0
    page.screenshot(path=str(shots / "models-promotions.png"), full_page=True)
    assert serious_axe_violations(page) == []
    assert problems == []


def test_a_forged_post_without_a_session_is_refused_and_audited(world):
    run = world.runs["pending"]
    before = len(refusals(world))
    with httpx.Client(base_url=world.base) as anonymous:
        # a valid token in the form is not a session: still refused
        form = {"csrf": "x", "token": world.tokens["ada"], "reason": "forged"}
        for verb in ("approve", "reject"):
            answer = anonymous.post(f"/promotions/{run}/{verb}", data=form)
            assert answer.status_code == 403 and "log in" in answer.text
        answer = anonymous.post(
            "/models/loans/rollback", data={"csrf": "x", "alias": "champion", "reason": "forged"}
        )
        assert answer.status_code == 403
    assert champion(world) == 1
    audited = refusals(world)[before:]
    assert len(audited) == 2 and {r["actor"] for r in audited} == {"unknown (no valid token)"}
    events = world.store.events()
    assert (events["action"] == "promotion refused").sum() >= 2


def _session(client: httpx.Client, world, name="ada") -> str:
    assert client.post("/login", data={"token": world.tokens[name]}).status_code == 303
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/models").text).group(1)


def test_a_rejection_needs_a_reason_and_a_person_acts_only_with_their_own_token(world):
    run = world.runs["pending"]
    with httpx.Client(base_url=world.base) as client:
        csrf = _session(client, world)
        token = world.tokens["ada"]
        answer = client.post(
            f"/promotions/{run}/reject", data={"csrf": csrf, "token": token, "reason": " "}
        )
        assert answer.status_code == 400 and "needs a reason" in answer.text
        theirs = client.post(
            f"/promotions/{run}/approve", data={"csrf": csrf, "token": world.tokens["bob"]}
        )
        assert theirs.status_code == 403 and "bob&#39;s, not ada&#39;s" in theirs.text
        wrong = client.post(f"/promotions/{run}/approve", data={"csrf": csrf, "token": "nope"})
        assert wrong.status_code == 403 and "no valid token" in wrong.text
        stale = client.post(
            f"/promotions/{run}/approve", data={"csrf": csrf[:-1] + "x", "token": token}
        )
        assert stale.status_code == 403 and "CSRF" in stale.text
    from keel.retrain.promotion import get_run

    assert get_run(world.store, run).status == "pending" and champion(world) == 1


def test_approve_moves_the_champion_and_the_audit_names_the_person_then_roll_back(
    tab, world, shots
):
    page, problems = tab
    log_in(page, world)
    run = world.runs["pending"]
    article = page.locator(f"#run-{run}")
    assert article.locator("button", has_text="Approve").count() == 1
    assert serious_axe_violations(page) == []
    page.screenshot(path=str(shots / "models-signed-in.png"), full_page=True)
    article.locator("input[name=token]").first.fill(world.tokens["ada"])
    article.locator("input[name=reason]").first.fill("read the gate report")
    page.click(f"button[aria-label='Approve run {run}']")
    page.wait_for_url(re.compile(r"/models"))
    assert champion(world) == 2
    assert "promoted by ada" in page.locator(f"#run-{run}").inner_text()
    done = [
        r
        for r in world.store.audit_rows(model="loans")
        if r["alias"] == "champion" and r["event"] == "done"
    ][-1]
    assert (done["actor"], done["version"], done["previous_version"]) == ("ada", 2, 1)
    assert run in done["reason"] and "read the gate report" in done["reason"]

    # Roll the champion back, with a reason, from the same page.
    page.fill("input[id^='rb-'][id$='-1']", "the new model pages people at night")
    page.click("button[aria-label='Roll back champion of loans']")
    page.wait_for_url(re.compile(r"/models"))
    assert champion(world) == 1
    rows = world.store.audit_rows(model="loans")
    back = [r for r in rows if r["alias"] == "champion" and r["event"] == "done"][-1]
    assert (back["actor"], back["version"]) == ("ada", 1)
    assert back["reason"] == "the new model pages people at night"
    history = page.locator("table", has_text="Alias history").inner_text()
    assert re.search(r"champion\s+1.*ada\s+rollback", history)
    assert problems == []


def test_a_rejection_from_the_page_closes_the_run_under_the_persons_name(tab, world):
    from keel.retrain.promotion import compare, get_run

    again = compare(world.monitor, world.store, registry=world.registry)  # champion is 1 again
    assert again.status == "pending", again.reason
    page, problems = tab
    log_in(page, world, "bob")
    article = page.locator(f"#run-{again.run}")
    article.locator("input[name=token]").nth(1).fill(world.tokens["bob"])
    article.locator("input[name=reason]").nth(1).fill("wait for the holiday traffic")
    page.click(f"button[aria-label='Reject run {again.run}']")
    page.wait_for_url(re.compile(r"/models"))
    decided = get_run(world.store, again.run)
    assert (decided.status, decided.decided_by) == ("rejected", "bob")
    assert decided.decision_reason == "wait for the holiday traffic" and champion(world) == 1
    assert "rejected by bob" in page.locator(f"#run-{again.run}").inner_text()
    assert problems == []


def test_a_canary_comparison_shows_its_arms_and_its_guards(tmp_path):
    """``labels_depend_on_decision: true``: compare judges the canary's randomized arm,
    unpaired (the canary tests' logs), and the page says so."""
    from datetime import timedelta

    from sklearn.dummy import DummyClassifier

    from keel.registry.aliases import promote
    from keel.registry.embedded import EmbeddedRegistry
    from keel.retrain.promotion import compare

    from .test_retrain_canary import _canary_monitor, _write_canary_logs
    from .test_retrain_promotion import START

    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = ResultStore(url)
    registry = EmbeddedRegistry(store)
    for _ in range(2):
        run = registry.log_run("loans", {}, {})
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        registry.register("loans", model, run, tags={"keel.baseline": "b.keel"})
    promote(registry, store, "loans", 1, "champion", "first model", "ada")
    promote(registry, store, "loans", 2, "challenger", "retrained", "keel-retrain")
    _write_canary_logs(tmp_path / "logs")
    found = compare(
        _canary_monitor(tmp_path), store, registry=registry, as_of=START + timedelta(days=30)
    )
    assert found.counts["comparison"] == "canary" and found.status == "pending", found.reason
    server = Server(url)
    try:
        page = httpx.get(server.base + "/models", timeout=60).text
    finally:
        server.stop()
    article = page.split(f'id="run-{found.run}"', 1)[1].split("</article>", 1)[0]
    assert "the canary's randomized arm, unpaired" in article
    assert "Δ (canary − champion)" in article and "Shadow drops" not in article
    assert re.search(r"<td>latency_p99_ms</td>", article) and "<td>error_rate</td>" in article
    assert "newcombe" in article


def test_promotion_runs_are_read_by_the_stores_filter_not_from_the_whole_log(tmp_path):
    """``runs`` and ``get_run`` ask the store for the promotion entries (of a monitor, or
    naming a run) only: other entries, other monitors' runs and a run id that a LIKE
    wildcard would match are left out; the story of a run is the same either way."""
    import sqlalchemy as sa

    from keel.retrain.promotion import APPROVED, COMPARED, get_run, runs

    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    for _ in range(50):
        store.log_event("ada", "silence", "loans/drift", {"run": "ab_cd", "hours": 2})
    for run, monitor in (("ab_cd", "loans"), ("abxcd", "loans"), ("ab%cd", "cards")):
        record = {"run": run, "monitor": monitor, "model": monitor, "status": "pending"}
        record.update(gate_status="promote", reason="generated")
        store.log_event("keel-retrain", COMPARED, monitor, {"record": record})
    store.log_event("ada", APPROVED, "loans", {"run": "ab_cd", "reason": "good"})
    statements: list[tuple] = []
    listen = lambda *event: statements.append(event[3])  # noqa: E731
    sa.event.listen(store.engine, "before_cursor_execute", listen)
    try:
        loans = runs(store, "loans")
        found, other = get_run(store, "ab_cd"), get_run(store, "ab%cd")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listen)
    assert [(r.run, r.status) for r in loans] == [("ab_cd", "promoted"), ("abxcd", "pending")]
    assert (found.status, found.decided_by, found.decision_reason) == ("promoted", "ada", "good")
    assert (other.run, other.monitor, other.status) == ("ab%cd", "cards", "pending")
    with pytest.raises(Exception, match="no promotion run 'ab'"):
        get_run(store, "ab")
    # One statement each, the actions (and the run's JSON text) bound as its filter.
    assert len(statements) == 3
    assert all(COMPARED in list(params) for params in statements)
    assert '%"ab\\_cd"%' in list(statements[1]) and '%"ab\\%cd"%' in list(statements[2])
    assert [r.run for r in runs(store)] == ["ab_cd", "abxcd", "ab%cd"]


def test_the_models_page_reads_the_registry_only_for_models_it_knows(world):
    """A model only seen in a monitor's data costs one registry read (its versions); a
    registered one its versions, its aliases and its audit (history reconciles against the
    aliases just read)."""
    import sqlalchemy as sa

    from keel.ui.app import models_context

    world.store.register_model("cards", "7")  # seen in data, never registered
    statements: list[str] = []
    listen = lambda *event: statements.append(event[2])  # noqa: E731
    sa.event.listen(world.store.engine, "before_cursor_execute", listen)
    try:
        context = models_context(world.store)
    finally:
        sa.event.remove(world.store.engine, "before_cursor_execute", listen)
    by_name = {m["name"]: m for m in context["models"]}
    assert by_name["cards"]["versions"] == [] and by_name["cards"]["history"] == []
    assert [s["version"] for s in by_name["cards"]["seen"]] == ["7"]
    assert by_name["loans"]["aliases"]["champion"] >= 1 and by_name["loans"]["history"]
    aliases = [s for s in statements if "FROM keel_model_aliases" in s]
    assert len(aliases) == 1, aliases  # loans' aliases, once; none for cards
    versions = [s for s in statements if "FROM keel_model_versions" in s and "UNION" not in s]
    assert len(versions) == 2  # one per model


def test_a_person_promotes_any_version_to_an_alias_with_their_own_token(tab, world, shots):
    """Signed in, the Models page moves an alias to a version chosen from the registered
    ones, through ``keel.registry.aliases.promote`` (the audit's done row and the event log
    name the person); without a session, with someone else's token, or with none, it is
    refused (403) and the refusal is in the event log."""
    page, problems = tab
    before = world.registry.aliases("loans")
    with httpx.Client(base_url=world.base) as anonymous:
        form = {"csrf": "x", "version": "2", "alias": "staging", "reason": "forged"}
        answer = anonymous.post("/models/loans/promote", data={**form, "token": "x"})
        assert answer.status_code == 403 and "log in" in answer.text
    with httpx.Client(base_url=world.base) as client:
        csrf = _session(client, world)
        form = {"csrf": csrf, "version": "2", "alias": "staging", "reason": "try it"}
        theirs = client.post("/models/loans/promote", data={**form, "token": world.tokens["bob"]})
        assert theirs.status_code == 403 and "bob&#39;s, not ada&#39;s" in theirs.text
        none = client.post("/models/loans/promote", data=form)
        assert none.status_code == 403 and "no valid token" in none.text
        token = world.tokens["ada"]
        unknown = client.post(
            "/models/loans/promote", data={**form, "version": "9", "token": token}
        )
        assert unknown.status_code == 409  # the registry's refusal: no version 9
    assert world.registry.aliases("loans") == before
    events = world.store.events()
    refused = events[events["action"] == "alias promotion refused"]
    assert list(refused["actor"]) == ["unknown (no session)", "ada", "ada", "ada"]
    assert set(refused["subject"]) == {"loans@staging"}

    log_in(page, world)
    form = page.locator("form[action='/models/loans/promote']")
    assert form.locator("select[name=version] option").all_inner_texts() == ["2", "1"]
    form.locator("select[name=version]").select_option("2")
    form.locator("input[name=alias]").fill("staging")
    form.locator("input[name=reason]").fill("a week on the staging traffic")
    form.locator("input[name=token]").fill(world.tokens["ada"])
    assert serious_axe_violations(page) == []
    page.screenshot(path=str(shots / "models-promote.png"), full_page=True)
    page.click("button[aria-label='Promote a version of loans']")
    page.wait_for_url(re.compile(r"/models"))
    assert world.registry.aliases("loans")["staging"] == 2
    assert world.registry.aliases("loans")["champion"] == before["champion"]
    done = [r for r in world.store.audit_rows(model="loans") if r["alias"] == "staging"][-1]
    assert (done["event"], done["actor"], done["version"]) == ("done", "ada", 2)
    assert done["reason"] == "a week on the staging traffic"
    events = world.store.events()
    promoted = events[events["action"] == "alias promoted"].iloc[-1]
    assert (promoted["actor"], promoted["subject"]) == ("ada", "loans@staging")
    assert "staging → version 2" in page.locator("#model-loans").inner_text()
    history = page.locator("table", has_text="Alias history").inner_text()
    assert re.search(r"staging\s+2.*ada\s+promote\s+a week on the staging traffic", history)
    assert problems == []
