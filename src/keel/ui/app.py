"""``keel ui``: every model's health in one place, from the results store, and acting on it.

Server-rendered pages (Jinja2, autoescaped) over the store's read API and its views
(``keel.store.views``): the overview (every monitor and model version, its newest windows,
what fires, the last diagnosis, when data and labels last arrived; it refreshes itself
through htmx polling a fragment that answers 204 when nothing changed), a monitor (its
windows per check and segment, the diagnosis and its evidence, the monitor report),
alerts and silences, models (versions, aliases and their history, lineage, promotion runs
with the gate's report), and the event log. htmx is vendored (``static/htmx.min.js``):
nothing is fetched from elsewhere.

Pages are read-only without a session. Logging in with an admin token (``keel tokens``)
sets a signed, HttpOnly, SameSite=Strict cookie; actions (silence, unsilence, approve or
reject a promotion, roll an alias back) need it, a CSRF token from the page (constant-time
check) and a same-origin request, and go to the store's event log and the alias audit under
the person's name. An approval or a rejection asks for the person's token again and hands
it to ``keel.retrain.promotion``, which verifies it and audits every refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import Request

from keel.ui.memory import WindowMemory
from keel.ui.security import COOKIE, Sessions, csrf_matches, secret_from_environment

HERE = Path(__file__).resolve().parent
#: How many of each monitor's newest windows the overview shows.
OVERVIEW_WINDOWS = 14
#: How many windows a monitor's timeline shows unless asked (``?windows=N``, at most 400).
TIMELINE_WINDOWS = 60
#: Seconds between the overview's checks for something new.
POLL_SECONDS = 5.0

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The monitor report is one self-contained file: inline styles and SVG, no scripts.
REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
)
STATUS_GLYPHS = {
    "ok": "✓",
    "warn": "!",
    "alert": "✕",
    "error": "E",
    "insufficient_data": "?",
    "none": "·",
}
STATUS_WORDS = {
    "ok": "ok",
    "warn": "warning",
    "alert": "alert",
    "error": "error",
    "insufficient_data": "insufficient data",
    "none": "no results",
}
#: The order check families are listed in on a monitor's timeline.
FAMILY_ORDER = (
    "diagnosis",
    "feature_drift",
    "prediction_drift",
    "target_drift",
    "quality",
    "multivariate",
    "performance",
    "estimated_performance",
    "challenger",
    "labels",
    "kpi",
    "skew",
    "monitor",
)


#: The event log's actions for a version promoted from the Models page, and for a refusal.
PROMOTED, PROMOTE_REFUSED = "alias promoted", "alias promotion refused"
#: Who a refused action is written under when no one is signed in.
UNKNOWN_ACTOR = "unknown (no session)"
#: The check whose Results are a shadowed challenger's running comparison with the champion
#: (``keel.checks.challenger``): drawn with the champion's series.
CHALLENGER = "challenger"


def create_app(
    store_url: str | None = None, *, secret: bytes | None = None, poll_seconds: float = POLL_SECONDS
):
    """The dashboard as a FastAPI app on the store at ``store_url`` (``KEEL_DATABASE_URL``,
    else ``.keel/keel.db``); sessions are signed with ``secret`` (``KEEL_UI_SECRET``, else
    random per process). ``app.state.store`` is the store it reads."""
    import jinja2
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    from keel.errors import KeelError
    from keel.store import ResultStore

    store = ResultStore(store_url)
    memory = WindowMemory()
    sessions = Sessions(secret if secret is not None else secret_from_environment())
    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("keel.ui", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.globals.update(
        glyph=STATUS_GLYPHS,
        words=STATUS_WORDS,
        monitor_url=monitor_url,
        window_url=window_url,
        ago=ago,
        short_time=short_time,
        number=number,
        epoch_text=epoch_text,
        series_name=series_name,
        strip=strip,
    )
    templates.filters["ago"] = ago

    app = FastAPI(title="keel ui", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.sessions = sessions
    app.state.memory = memory
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        report = request.url.path.endswith("/report")
        response.headers.setdefault(
            "Content-Security-Policy", REPORT_POLICY if report else PAGE_POLICY
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def session_of(request: Request) -> dict | None:
        session = sessions.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        # A revoked token (or an unset shared one) ends its sessions at once.
        if session["name"] == "shared-token":
            return session if os.environ.get("KEEL_ADMIN_TOKEN") else None
        active = {row["name"] for row in store.token_rows(active_only=True)}
        return session if session["name"] in active else None

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = session_of(request)
        html = templates.get_template(template).render(
            session=session, path=request.url.path, poll_seconds=poll_seconds, **context
        )
        return HTMLResponse(html, status_code=status)

    def message(request: Request, status: int, title: str, text: str) -> HTMLResponse:
        return page(request, "message.html", status, title=title, message=text)

    def refused(request: Request, why: str, status: int = 403) -> HTMLResponse:
        return message(request, status, "Refused", why)

    async def action_form(request: Request) -> tuple[dict | None, dict[str, str], str | None]:
        """(session, form fields, why it is refused or None) for a POST action."""
        form = await read_form(request)
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return None, form, "this action must come from the dashboard's own pages"
        session = await run_in_threadpool(session_of, request)
        if session is None:
            return None, form, "log in with an admin token first (keel tokens add NAME)"
        if not csrf_matches(session, form.get("csrf")):
            return None, form, "the form's CSRF token does not match this session; reload"
        return session, form, None

    @app.exception_handler(KeelError)
    async def keel_error(request: Request, error: KeelError):
        return await run_in_threadpool(message, request, 500, "keel could not answer", str(error))

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request):
        return page(request, "overview.html", **overview_context(store, memory))

    @app.get("/fragments/overview", response_class=HTMLResponse)
    def overview_fragment(request: Request, since: str = ""):
        if since and since == _current_stamp(store):
            return Response(status_code=204)  # nothing new: htmx keeps the page as it is
        return page(request, "_overview.html", **overview_context(store, memory))

    @app.get("/monitors/{name}", response_class=HTMLResponse)
    def monitor_page(
        request: Request, name: str, windows: int = TIMELINE_WINDOWS, window: str = ""
    ):
        shown = max(1, min(int(windows), 400))
        context = monitor_context(store, name, shown, window or None, memory)
        if context is None:
            return message(
                request, 404, "No such monitor", f"the store holds no Results of monitor {name!r}"
            )
        return page(request, "monitor.html", **context)

    @app.get("/monitors/{name}/window", response_class=HTMLResponse)
    def window_page(request: Request, name: str, start: str):
        context = window_context(store, name, start)
        if context is None:
            return message(
                request, 404, "No such window", f"monitor {name!r} has no window starting {start!r}"
            )
        return page(request, "window.html", **context)

    @app.get("/monitors/{name}/report", response_class=HTMLResponse)
    def monitor_report(request: Request, name: str):
        from keel.report.monitor import monitor_report_html

        try:
            return HTMLResponse(monitor_report_html(store, name))
        except KeelError:
            raise
        except Exception as error:  # noqa: BLE001 - the report's failure, said on a page
            return message(
                request, 500, "The monitor report failed", f"{type(error).__name__}: {error}"
            )

    @app.get("/alerts", response_class=HTMLResponse)
    def alerts_page(request: Request):
        return page(request, "alerts.html", **alerts_context(store))

    @app.post("/alerts/silence")
    async def silence(request: Request):
        session, form, why = await action_form(request)
        if why:
            return await run_in_threadpool(refused, request, why)
        monitor, rule = form.get("monitor", "").strip(), form.get("rule", "").strip() or "*"
        try:
            hours = float(form.get("hours", "2"))
        except ValueError:
            hours = math.nan
        if not monitor or not math.isfinite(hours) or not 0 < hours <= 24 * 90:
            return await run_in_threadpool(
                refused, request, "a silence needs a monitor and 0 < hours ≤ 2160", 400
            )
        from keel.alerts.engine import silence as add_silence

        await run_in_threadpool(
            add_silence,
            store,
            monitor,
            rule,
            hours,
            form.get("reason") or None,
            session["name"],
        )
        return RedirectResponse("/alerts", status_code=303)

    @app.post("/alerts/unsilence")
    async def unsilence(request: Request):
        session, form, why = await action_form(request)
        if why:
            return await run_in_threadpool(refused, request, why)
        if not form.get("silence", "").isdigit():
            return await run_in_threadpool(refused, request, "which silence?", 400)
        number = int(form["silence"])

        def end() -> bool:
            from keel.store.views import end_silence

            ended = end_silence(store, number)
            if ended:
                store.log_event(session["name"], "unsilence", str(number), {"via": "keel ui"})
            return ended

        await run_in_threadpool(end)
        return RedirectResponse("/alerts", status_code=303)

    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request):
        return page(request, "models.html", **models_context(store))

    @app.post("/models/{name}/rollback")
    async def rollback_alias(request: Request, name: str):
        session, form, why = await action_form(request)
        if why:
            return await run_in_threadpool(refused, request, why)
        alias, reason = form.get("alias", "").strip(), form.get("reason", "").strip()
        if not alias or not reason:
            return await run_in_threadpool(
                refused, request, "a rollback needs the alias and a reason", 400
            )

        def roll_back() -> str | None:
            from keel.registry.aliases import rollback
            from keel.registry.base import RegistryError

            try:
                rollback(registry_for(store), store, name, alias, reason, session["name"])
            except RegistryError as error:
                return str(error)
            return None

        problem = await run_in_threadpool(roll_back)
        if problem:
            return await run_in_threadpool(refused, request, problem, 409)
        return RedirectResponse(f"/models#model-{quote(name, safe='')}", status_code=303)

    @app.post("/models/{name}/promote")
    async def promote_version(request: Request, name: str):
        """Point an alias at any registered version, for the signed-in person, with their
        own token asked again (as ``keel models promote`` takes it), through
        ``keel.registry.aliases.promote`` (intent → move → done in the alias audit, under
        the person's name). Every refusal is written to the event log."""
        from keel.tokens import SHARED_TOKEN_ACTOR, verify_token

        session, form, why = await action_form(request)
        alias, reason = form.get("alias", "").strip(), form.get("reason", "").strip()
        version_text = form.get("version", "").strip()
        said = {"version": version_text, "via": "keel ui"}

        def refuse(actor: str, problem: str, status: int) -> HTMLResponse:
            store.log_event(actor, PROMOTE_REFUSED, f"{name}@{alias}", {**said, "reason": problem})
            return refused(request, problem, status)

        if why:
            return await run_in_threadpool(refuse, UNKNOWN_ACTOR, why, 403)
        owner = await run_in_threadpool(verify_token, store, form.get("token", "").strip())
        if owner is None or owner == SHARED_TOKEN_ACTOR or owner != session["name"]:
            problem = (
                "no valid token: give your own token again to promote"
                if owner is None
                else "a promotion needs a person's own token, not the shared one"
                if owner == SHARED_TOKEN_ACTOR
                else f"the token given is {owner}'s, not {session['name']}'s: not done"
            )
            return await run_in_threadpool(refuse, session["name"], problem, 403)
        if not version_text.isdigit() or not alias or not reason:
            problem = "a promotion needs a version, an alias and a reason"
            return await run_in_threadpool(refuse, owner, problem, 400)

        def move() -> str | None:
            from keel.registry.aliases import promote
            from keel.registry.base import RegistryError

            try:
                done = promote(
                    registry_for(store),
                    store,
                    name,
                    int(version_text),
                    alias,
                    reason,
                    owner,
                    require_baseline=form.get("without_baseline") != "1",
                )
            except RegistryError as error:
                return str(error)
            store.log_event(
                owner,
                PROMOTED,
                f"{name}@{alias}",
                {
                    "version": done["version"],
                    "previous_version": done["previous_version"],
                    "audit_id": done["id"],
                    "reason": reason,
                    "via": "keel ui",
                },
            )
            return None

        problem = await run_in_threadpool(move)
        if problem:
            return await run_in_threadpool(refuse, owner, problem, 409)
        return RedirectResponse(f"/models#model-{quote(name, safe='')}", status_code=303)

    @app.post("/promotions/{run}/approve")
    async def approve_run(request: Request, run: str):
        return await decide(request, run, "approve")

    @app.post("/promotions/{run}/reject")
    async def reject_run(request: Request, run: str):
        return await decide(request, run, "reject")

    async def decide(request: Request, run: str, verb: str):
        """Approve or reject a pending run through ``keel.retrain.promotion``: the form's
        token (asked again, as for any promotion) must be the signed-in person's own."""
        from keel.retrain.promotion import PromotionRefused, approve, reject
        from keel.tokens import verify_token

        session, form, why = await action_form(request)
        token, reason = form.get("token", "").strip(), form.get("reason", "").strip()

        def call(presented: str | None) -> str | None:
            """The library's answer: None when done, else its refusal (which it audited)."""
            try:
                if verb == "approve":
                    approve(
                        store, run, presented, registry=registry_for(store), reason=reason or None
                    )
                else:
                    reject(store, run, presented, reason, registry=registry_for(store))
            except PromotionRefused as error:
                return str(error)
            return None

        if why:
            # Refused here; the library refuses it too and audits the refusal (no token).
            await run_in_threadpool(call, None)
            return await run_in_threadpool(refused, request, why)
        owner = await run_in_threadpool(verify_token, store, token)
        if owner is not None and owner != session["name"]:
            from keel.retrain.promotion import REFUSED

            said = f"the token given is {owner}'s, not {session['name']}'s: not done"
            await run_in_threadpool(
                store.log_event,
                session["name"],
                REFUSED,
                None,
                {"run": run, "reason": said, "via": "keel ui"},
            )
            return await run_in_threadpool(refused, request, said)
        problem = await run_in_threadpool(call, token or None)
        if problem:
            status = 403 if owner is None else 400 if verb == "reject" and not reason else 409
            return await run_in_threadpool(refused, request, problem, status)
        return RedirectResponse(f"/models#run-{quote(run, safe='')}", status_code=303)

    @app.get("/models/{name}/{version}", response_class=HTMLResponse)
    def version_page(request: Request, name: str, version: int):
        return page(request, "version.html", **version_context(store, name, version))

    @app.get("/events", response_class=HTMLResponse)
    def events_page(request: Request):
        from keel.store.views import recent_events

        return page(request, "events.html", events=recent_events(store, 200))

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request):
        return page(request, "login.html", error=None)

    @app.post("/login")
    async def login(request: Request):
        from keel.tokens import verify_token

        form = await read_form(request)
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return await run_in_threadpool(refused, request, "log in from the dashboard's page")
        name = await run_in_threadpool(verify_token, store, form.get("token", "").strip())
        if name is None:
            await asyncio.sleep(0.2)  # a guess costs time
            return await run_in_threadpool(
                page, request, "login.html", 403, error="that token is not valid"
            )
        cookie, _ = sessions.issue(name)
        await run_in_threadpool(store.log_event, name, "ui login", None, {"via": "keel ui"})
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
            max_age=12 * 3600,
        )
        return response

    @app.post("/logout")
    async def logout(request: Request):
        _, _, why = await action_form(request)
        if why:
            return await run_in_threadpool(refused, request, why)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return app


async def read_form(request: Any) -> dict[str, str]:
    """A urlencoded form body as {field: first value} (at most 64 kB read)."""
    body = await request.body()
    if len(body) > 65536:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


# -- page contexts: plain functions over the store's views --


def warm_up(app: Any) -> threading.Thread:
    """Read the overview once in the background, so that the first page a person opens is
    served from the window memory rather than aggregated cold (``keel ui`` calls it at
    start); a failure here is the first page's to report, not the server's.

    >>> import tempfile, pathlib
    >>> app = create_app(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> warm_up(app).join(); len(app.state.memory)
    0
    """

    def read() -> None:
        with contextlib.suppress(Exception):
            overview_context(app.state.store, app.state.memory)

    thread = threading.Thread(target=read, name="keel-ui-warm-up", daemon=True)
    thread.start()
    return thread


def overview_context(store: Any, memory: WindowMemory | None = None) -> dict[str, Any]:
    """What the overview shows, in at most five queries whatever the number of monitors or
    windows: the newest windows' fingerprints, the aggregates of those not in ``memory``
    (none when every one is), the open alerts, the declared monitors, the stamp."""
    from keel.store.views import (
        change_stamp,
        declared_monitors,
        window_fingerprints,
        window_summaries,
    )

    memory = memory if memory is not None else WindowMemory()
    fingerprints = window_fingerprints(store, OVERVIEW_WINDOWS)
    windows = memory.read(
        "overview", fingerprints, lambda missing: window_summaries(store, missing)
    )
    windows.sort(key=_in_order("monitor", "model_version", "segment", "window_start"))
    open_alerts = store.alerts.listing().to_dict("records")
    declared = declared_monitors(store)
    stamp = change_stamp(store)
    firing: dict[str, list[dict]] = {}
    for alert in open_alerts:
        firing.setdefault(alert["monitor"], []).append(alert)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in windows:
        key = (row["monitor"], row["model_version"] or "")
        group = groups.setdefault(
            key,
            {"monitor": key[0], "model": row["model"], "version": key[1], "series": {}},
        )
        group["model"] = group["model"] or row["model"]
        group["series"].setdefault(row["segment"], []).append(row)
    cards = []
    for (monitor, version), group in sorted(groups.items()):
        series = group["series"]
        main_key = None if None in series else sorted(series, key=str)[0]
        main = series[main_key]
        newest = main[-1]
        every = [w for rows in series.values() for w in rows]
        data = [w["newest_data"] for w in every if w["newest_data"]]
        labels = [w["newest_labels"] for w in every if w["newest_labels"]]
        alerts = [a for a in firing.get(monitor, []) if (a["model_version"] or "") in ("", version)]
        cards.append(
            {
                "monitor": monitor,
                "model": group["model"] or monitor,
                "version": version,
                "windows": main,
                "segments": [
                    {"segment": s, "windows": rows}
                    for s, rows in sorted(series.items(), key=lambda p: str(p[0]))
                    if s != main_key
                ],
                "status": newest["status"],
                "newest": newest,
                "diagnosis": next((w for w in reversed(main) if w["verdict"]), None),
                "alerts": alerts,
                "newest_data": max(data) if data else None,
                "newest_labels": max(labels) if labels else None,
            }
        )
    seen = {card["monitor"] for card in cards}
    waiting = [m for m in declared if m["name"] not in seen]
    states = [a["state"] for a in open_alerts]
    return {
        "cards": cards,
        "waiting": waiting,
        "open_alerts": open_alerts,
        "firing_count": states.count("firing"),
        "pending_count": states.count("pending"),
        "alerting_count": sum(card["status"] == "alert" for card in cards),
        "stamp": quote(stamp, safe=""),
        "rendered_at": datetime.now(UTC),
    }


def _current_stamp(store: Any) -> str:
    from keel.store.views import change_stamp

    return change_stamp(store)


def monitor_context(
    store: Any, name: str, windows: int, selected: str | None, memory: WindowMemory | None = None
) -> dict[str, Any] | None:
    """A monitor's timeline (series × check family × window), the selected window's (the
    newest by default) diagnosis and evidence, its alerts and newest runs; None when the
    store holds nothing of it. The timeline's windows not in ``memory`` are aggregated in
    one statement."""
    from keel.store.views import check_summaries, recent_runs, window_fingerprints, window_results

    memory = memory if memory is not None else WindowMemory()
    fingerprints = window_fingerprints(store, windows, monitor=name)
    cells = memory.read("timeline", fingerprints, lambda missing: check_summaries(store, missing))
    cells.sort(key=_in_order("model_version", "segment", "window_start", "check"))
    if not cells:
        return None
    series: dict[tuple, dict[str, Any]] = {}
    compared = []
    for cell in cells:
        key = (cell["model_version"] or "", cell["segment"] or "")
        if cell["check"] == CHALLENGER:
            compared.append((key, cell))
            continue
        entry = series.setdefault(key, {"version": key[0], "segment": key[1], "checks": {}})
        entry["checks"].setdefault(cell["check"], {})[cell["window_start"]] = cell
    # A challenger's Results are drawn with the series of the champion they were compared
    # with (its version, or the monitor's unversioned series; the same segment), as a row
    # naming the challenger; where the store holds no such series, in their own.
    families = {}
    for key, cell in compared:
        champion = cell.get("champion_version")
        for target in ((str(champion), key[1]), ("", key[1])) if champion is not None else ():
            if target in series and target != key:
                row_name = f"{CHALLENGER} (version {key[0]})" if key[0] else CHALLENGER
                break
        else:
            target, row_name = key, CHALLENGER
        entry = series.setdefault(
            target, {"version": target[0], "segment": target[1], "checks": {}}
        )
        entry["checks"].setdefault(row_name, {})[cell["window_start"]] = cell
        families[row_name] = CHALLENGER
    starts = sorted({cell["window_start"] for cell in cells})
    # A window with no Result of a check: one shared, read-only blank square per window.
    blanks = [{"window_start": s, "status": "none", "verdict": ""} for s in starts]
    rank = {family: index for index, family in enumerate(FAMILY_ORDER)}
    for entry in series.values():
        entry["rows"] = []
        ordered = sorted(entry["checks"], key=lambda c: (rank.get(families.get(c, c), 99), c))
        for check in ordered:
            if check != "window":
                found = entry["checks"][check].get
                row_cells = [found(s) or blank for s, blank in zip(starts, blanks, strict=True)]
                entry["rows"].append({"check": check, "cells": row_cells})
    chosen = selected if selected in starts else starts[-1]
    evidence = window_evidence(window_results(store, name, chosen))
    model = next((c.get("model") for c in cells if c.get("model")), None)
    return {
        "monitor": name,
        "model": model,
        "starts": starts,
        "series": [series[k] for k in sorted(series, key=lambda k: (k[0], k[1] != "", k[1]))],
        "chosen": chosen,
        "evidence": evidence,
        "alerts": store.alerts.listing(name, everything=True).head(50).to_dict("records"),
        "runs": recent_runs(store, name, 10),
        "windows": windows,
    }


def _in_order(*names: str) -> Callable[[dict[str, Any]], tuple]:
    """A sort key over rows' ``names``, a missing value (a series with no model version or
    segment) first, as the pages group them.

    >>> sorted([{"s": "b"}, {"s": None}, {"s": "a"}], key=_in_order("s"))
    [{'s': None}, {'s': 'a'}, {'s': 'b'}]
    """
    if len(names) == 4:
        a, b, c, d = names
        return lambda row: (row[a] or "", row[b] or "", row[c] or "", row[d] or "")
    return lambda row: tuple(row[name] or "" for name in names)


def window_evidence(rows: list[dict]) -> list[dict[str, Any]]:
    """One window's Results grouped by series: its diagnosis (verdict, summary, causes),
    the Results that alert or warn (the evidence), and every other one."""
    grouped: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["model_version"] or "", row["segment"] or "")
        entry = grouped.setdefault(
            key,
            {
                "version": key[0],
                "segment": key[1],
                "diagnosis": None,
                "evidence": [],
                "others": [],
                "identity": {},
                "window_end": row["window_end"],
            },
        )
        if row["check"] == "diagnosis":
            entry["diagnosis"] = row["details"]
        elif row["check"] == "window":
            entry["identity"][row["metric"]] = row["value"]
        elif row["status"] in ("alert", "warn", "error"):
            entry["evidence"].append(row)
        else:
            entry["others"].append(row)
    order = {"alert": 0, "error": 1, "warn": 2}
    for entry in grouped.values():
        entry["evidence"].sort(key=lambda r: (order.get(r["status"], 3), r["check"]))
    return [grouped[k] for k in sorted(grouped, key=lambda k: (k[0], k[1] != "", k[1]))]


def window_context(store: Any, name: str, start: str) -> dict[str, Any] | None:
    """Every Result of one window of a monitor, by series, with its diagnosis."""
    from keel.store.views import window_results

    rows = window_results(store, name, start)
    if not rows:
        return None
    return {"monitor": name, "start": start, "series": window_evidence(rows)}


def alerts_context(store: Any) -> dict[str, Any]:
    """Alerts by state (firing, pending, resolved and cleared: the newest 200) and silences."""
    from keel.store.views import silence_rows

    alerts = store.alerts.listing(everything=True).head(500).to_dict("records")
    by_state: dict[str, list[dict]] = {"firing": [], "pending": [], "resolved": []}
    for alert in alerts:
        by_state.setdefault(alert["state"] if alert["state"] in by_state else "resolved", [])
        by_state[alert["state"] if alert["state"] in by_state else "resolved"].append(alert)
    by_state["resolved"] = by_state["resolved"][:200]
    return {"by_state": by_state, "silences": silence_rows(store)}


def registry_for(store: Any) -> Any:
    """The registry to show: ``KEEL_REGISTRY`` when set, MLflow when a URI names one, else
    keel's embedded registry in this store (never MLflow only because it is installed)."""
    from keel.registry import open_registry
    from keel.registry.mlflow import configured_uri

    kind = os.environ.get("KEEL_REGISTRY") or ("mlflow" if configured_uri() else "embedded")
    return open_registry(kind, store=store)


def models_context(store: Any) -> dict[str, Any]:
    """Every model: registered versions, aliases now and their history, and the versions
    the monitors saw in production."""
    from keel.registry.aliases import history
    from keel.store.views import audited_models, model_names, seen_versions

    runs_of = promotion_runs(store)

    problems: list[str] = []
    try:
        registry = registry_for(store)
    except Exception as error:  # noqa: BLE001 - the page still shows what the store holds
        registry, problems = None, [f"no registry: {error}"]
    seen: dict[str, list[dict]] = {}
    for row in seen_versions(store):
        seen.setdefault(row["name"], []).append(row)
    audited = set() if registry is None else audited_models(store, registry.uri)
    found = []
    for name in model_names(store):
        entry: dict[str, Any] = {"name": name, "versions": [], "aliases": {}, "history": []}
        entry["seen"] = seen.get(name, [])
        entry["runs"] = runs_of.get(name, [])
        entry["rollbacks"] = {}
        if registry is not None:
            try:
                entry["versions"] = registry.versions(name)
                if not entry["versions"] and name not in audited:
                    # Only seen in monitors' data: no alias, no history to read.
                    found.append(entry)
                    continue
                entry["aliases"] = registry.aliases(name)
                # history() reads the aliases again (to reconcile): the ones just read.
                intervals = history(_AliasesRead(registry, name, entry["aliases"]), store, name)
                entry["history"] = list(reversed(intervals))[:50]
                entry["rollbacks"] = rollback_targets(intervals)
            except Exception as error:  # noqa: BLE001 - one model's failure is shown, not fatal
                problems.append(f"{name}: {error}")
        found.append(entry)
    return {
        "models": found,
        "registry": None if registry is None else {"kind": registry.kind, "uri": registry.uri},
        "problems": problems,
    }


class _AliasesRead:
    """A registry whose ``aliases(name)`` answers what was just read for ``name``, within
    one page (everything else is the registry's own)."""

    def __init__(self, registry: Any, name: str, aliases: dict[str, int]) -> None:
        self._registry, self._name, self._aliases = registry, name, aliases

    def aliases(self, name: str) -> dict[str, int]:
        if name == self._name:
            return dict(self._aliases)
        return self._registry.aliases(name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._registry, attribute)


def promotion_runs(store: Any, per_model: int = 20) -> dict[str, list[dict[str, Any]]]:
    """Each model's promotion runs (``keel.retrain.promotion.runs``), newest first, at most
    ``per_model``, each with its gate report's conditions ready to show."""
    from keel.retrain.promotion import runs

    found: dict[str, list[dict[str, Any]]] = {}
    for run in reversed(runs(store)):
        rows = found.setdefault(run.model, [])
        if len(rows) < per_model:
            rows.append(run_view(run.to_dict()))
    return found


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    """A run as the Models page shows it: its conditions with their margin (the bound's
    distance from its threshold), whether they decide yet, whether it judged the canary's
    arm (unpaired) or the shadow (paired), and the shadow's drops.

    >>> view = run_view({"status": "insufficient_data", "horizon": 100, "counts": {"paired": 40},
    ...     "gate": {"conditions": [{"metric": "accuracy", "segment": None, "estimate": 0.03,
    ...     "lower": -0.01, "threshold": 0.0, "passed": False, "gating": True}]}})
    >>> view["running"], view["canary"], view["conditions"][0]["margin"]
    (True, False, -0.01)
    """
    gate = run.get("gate") or {}
    counts = run.get("counts") or {}
    conditions = []
    for condition in gate.get("conditions") or []:
        lower, threshold = condition.get("lower"), condition.get("threshold")
        margin = (
            round(lower - threshold, 12)
            if isinstance(lower, int | float) and isinstance(threshold, int | float)
            else None
        )
        conditions.append({**condition, "margin": margin})
    return {
        **run,
        "conditions": conditions,
        "running": run.get("status") == "insufficient_data",
        "canary": counts.get("comparison") == "canary",
        "paired": counts.get("paired", gate.get("n")),
        "drop_share": counts.get("drop_share", gate.get("shadow_drop_share")),
        "drop_reasons": counts.get("drop_reasons") or {},
    }


def rollback_targets(intervals: list[dict[str, Any]]) -> dict[str, int]:
    """{alias: the version a rollback would move it back to} from an alias history (oldest
    first), as ``keel.registry.aliases.rollback`` chooses it.

    >>> rollback_targets([{"alias": "champion", "version": 1}, {"alias": "champion", "version": 2},
    ...     {"alias": "challenger", "version": 2}])
    {'champion': 1}
    """
    by_alias: dict[str, list[int | None]] = {}
    for interval in intervals:
        by_alias.setdefault(interval["alias"], []).append(interval["version"])
    found = {}
    for alias, versions in by_alias.items():
        if not versions or versions[-1] is None:
            continue
        earlier = [v for v in versions[:-1] if v is not None and v != versions[-1]]
        if earlier:
            found[alias] = earlier[-1]
    return found


def version_context(store: Any, name: str, version: int) -> dict[str, Any]:
    """One version's lineage (``keel.lineage``): what trained it, its promotions, monitors."""
    from keel.lineage import describe, lineage

    try:
        found = lineage(registry_for(store), store, f"{name}@{int(version)}")
    except Exception as error:  # noqa: BLE001 - said on the page
        return {"name": name, "version": version, "lineage": None, "lines": [], "error": str(error)}
    return {
        "name": name,
        "version": version,
        "lineage": found,
        "lines": describe(found),
        "error": None,
    }


# -- small helpers the templates use --


def strip(windows: list[dict[str, Any]], monitor: str, label: str) -> Any:
    """One series' windows as a strip of statuses, each linking to its window's page (an
    ordered list of squares, the window and its status in each square's label). Built here
    rather than by a Jinja macro: the monitor page draws thousands of squares, and the
    macro's per-square calls were most of its render time.

    >>> str(strip([{"window_start": "2026-01-05T00:00:00+00:00", "status": "alert",
    ...     "verdict": "data drift"}], "loans", "newest windows of loans"))
    ... # doctest: +NORMALIZE_WHITESPACE
    '<ol class="strip" aria-label="newest windows of loans"><li><a class="cell s-alert"
    href="/monitors/loans/window?start=2026-01-05T00%3A00%3A00%2B00%3A00"
    aria-label="2026-01-05 00:00: alert, data drift">✕</a></li></ol>'
    """
    from markupsafe import Markup, escape

    parts = [f'<ol class="strip" aria-label="{escape(label)}">']
    for window in windows:
        status = window["status"]
        href, moment = _square_of(monitor, window["window_start"])
        verdict = window.get("verdict")
        word = _STATUS_TEXT.get(status, "")
        said = f"{word}, {escape(verdict)}" if verdict else word
        parts.append(
            f'<li><a class="cell s-{_STATUS_CLASS.get(status) or escape(status)}" href="{href}" '
            f'aria-label="{moment}: {said}">{_GLYPH_TEXT.get(status, "")}</a></li>'
        )
    parts.append("</ol>")
    return Markup("".join(parts))


@functools.lru_cache(maxsize=8192)
def _square_of(monitor: str, start: str) -> tuple[str, str]:
    """A window's square: its page's address and its time, escaped for an attribute."""
    from markupsafe import escape

    return str(escape(window_url(monitor, start))), str(escape(short_time(start)))


def _escaped(words: dict[str, str]) -> dict[str, str]:
    from markupsafe import escape

    return {key: str(escape(value)) for key, value in words.items()}


_STATUS_TEXT = _escaped(STATUS_WORDS)
_GLYPH_TEXT = _escaped(STATUS_GLYPHS)
_STATUS_CLASS = _escaped({status: status for status in STATUS_WORDS})


def monitor_url(name: str, **query: Any) -> str:
    """The monitor page's address.

    >>> monitor_url("loans", window="2026-01-01T00:00:00+00:00")
    '/monitors/loans?window=2026-01-01T00%3A00%3A00%2B00%3A00'
    """
    tail = urlencode({k: v for k, v in query.items() if v is not None})
    return f"/monitors/{quote(name, safe='')}" + (f"?{tail}" if tail else "")


def window_url(name: str, start: str) -> str:
    """A window's page.

    >>> window_url("loans", "2026-01-01")
    '/monitors/loans/window?start=2026-01-01'
    """
    return f"/monitors/{quote(name, safe='')}/window?{urlencode({'start': start})}"


def series_name(version: str | None, segment: str | None) -> str:
    """How a series is named on the pages.

    >>> series_name("3", "region=north"), series_name(None, None)
    ('version 3 · region=north', 'all rows')
    """
    parts = [f"version {version}" if version else "", segment or ""]
    return " · ".join(p for p in parts if p) or "all rows"


def short_time(moment: Any) -> str:
    """A stored time as people read it: ``2026-01-05 14:00`` (UTC).

    >>> short_time("2026-01-05T14:00:00.000000+00:00"), short_time(None)
    ('2026-01-05 14:00', '')
    """
    if moment is None or moment != moment:
        return ""
    return str(moment)[:16].replace("T", " ")


def ago(moment: Any, now: datetime | None = None) -> str:
    """How long ago a moment was (epoch seconds or ISO text), in the largest unit.

    >>> now = datetime(2026, 1, 2, tzinfo=UTC)
    >>> ago("2026-01-01T21:00:00+00:00", now), ago(now.timestamp() - 90, now), ago(None, now)
    ('3 h ago', '1 min ago', 'never')
    """
    if moment is None or moment != moment or moment == "":
        return "never"
    if isinstance(moment, int | float):
        then = float(moment)
    else:
        then = datetime.fromisoformat(str(moment).replace("Z", "+00:00")).timestamp()
    seconds = (now or datetime.now(UTC)).timestamp() - then
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def number(value: Any) -> str:
    """A Result's value as the reports print it (``keel.result.readable``).

    >>> number(0.52151), number(None)
    ('0.5215', '-')
    """
    from keel.result import readable

    return readable(value if isinstance(value, int | float) else None)


def epoch_text(seconds: float | None) -> str:
    """Epoch seconds as UTC text (``2026-01-05 14:00``), or ``never``.

    >>> epoch_text(0), epoch_text(None)
    ('1970-01-01 00:00', 'never')
    """
    if seconds is None or seconds != seconds:
        return "never"
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%d %H:%M")
