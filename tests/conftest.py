"""Shared fixtures: a real ``keel`` process, a real browser, and tables whose truth is known.

The browser is Debian's Chromium driven by Playwright. On CI (``CI`` set) a missing
browser fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def run_keel(tmp_path: Path):
    """Run the real ``keel`` command line in a subprocess, in a temporary folder."""

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "keel.cli", *map(str, args)],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


def make_table(rows: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> pd.DataFrame:
    """Three numeric and one categorical feature, plus an id; ``shift``/``scale`` move ``x``."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "row_id": np.arange(rows) + seed * 10_000_000,
            "x": rng.normal(shift, scale, rows),
            "y": rng.exponential(2.0, rows),
            "z": rng.integers(0, 50, rows).astype(np.int64),
            "color": rng.choice(["red", "green", "blue", "black"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return (
        os.environ.get("KEEL_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


# One browser per test module, not per session: Playwright's sync API keeps an event loop
# running in the main thread while it is open, and asyncio.run() elsewhere (the gateway's
# tests and doctests) refuses to start under a running loop.
@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        path = None
    if path is None:
        message = "no Chromium (apt-get install chromium) or no playwright (pip install playwright)"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a browser for the report tests: {message}")
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=BROWSER_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser):
    """Open a local file; returns (page, errors) with every page and console error collected."""
    pages = []

    def open_file(path):
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        page.on(
            "dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss())
        )
        page.on(
            "request",
            lambda request: (
                errors.append(f"network: {request.url}")
                if not request.url.startswith(("file:", "data:", "about:"))
                else None
            ),
        )
        page.goto(f"file://{path}")
        pages.append(page)
        return page, errors

    yield open_file
    for page in pages:
        page.close()


@pytest.fixture
def receiver():
    """A real local HTTP server recording what keel sends (see keel.alerts.receiver)."""
    from keel.alerts.receiver import WebhookReceiver

    with WebhookReceiver() as server:
        yield server
        server.delay = 0.0


@pytest.fixture
def postgres_url():
    """A fresh, empty schema on KEEL_TEST_POSTGRES_URL (dropped after the test), as a URL;
    skipped without the variable, failed on CI without it or when the server is down."""
    import uuid

    import sqlalchemy as sa

    server = os.environ.get("KEEL_TEST_POSTGRES_URL")
    if not server:
        if os.environ.get("CI"):
            pytest.fail("CI must set KEEL_TEST_POSTGRES_URL for the PostgreSQL store tests")
        pytest.skip("no PostgreSQL: set KEEL_TEST_POSTGRES_URL to run the store suite on it")
    schema = f"keel_test_{uuid.uuid4().hex[:12]}"  # one schema per test: tests never collide
    admin = sa.create_engine(server)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except sa.exc.OperationalError as error:
        pytest.fail(f"KEEL_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {error}")
    separator = "&" if "?" in server else "?"
    yield f"{server}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh store's URL: a SQLite file in tmp_path, then a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keel.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_namespace():
    """``(url, prefix)`` on KEEL_TEST_REDIS_URL: a key prefix of this test's own, whose keys
    are deleted after it; skipped without the variable, failed on CI without it or when the
    server is down."""
    import uuid

    url = os.environ.get("KEEL_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must set KEEL_TEST_REDIS_URL for the Redis feature-state tests")
        pytest.skip("no Redis: set KEEL_TEST_REDIS_URL to run the Redis feature-state tests")
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"KEEL_TEST_REDIS_URL is set but Redis is unreachable: {error}")
    prefix = f"keel-test-{uuid.uuid4().hex[:12]}:"
    yield url, prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def spark():
    """One real local[2] Spark session for every Spark test (the Spark stack runs them in
    one process, -n 0; starting a session costs seconds); skipped without pyspark or Java."""
    from keel.engines.spark import missing_requirement, spark_session

    missing = missing_requirement()
    if missing is not None:
        pytest.skip(f"Spark: {missing}")
    session = spark_session("local[2]", "keel-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
