"""Nothing acknowledged is lost: ``kill -9`` under load, then a restart, leaves every request
that got a 2xx in durable mode in the log exactly once; a full or read-only log folder makes
the gateway not ready and refuse with a 503 and the reason, never answer unlogged."""

from __future__ import annotations

import collections
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest

from keel.store.queries import read_log

from .common.serving import Server, make_models, write_config

RECORD = {"x": 0.1, "y": 2.0, "color": "blue"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("durable")
    models = make_models(folder / "models")
    return folder, write_config(folder / "serve.yaml", models), models


def load(url: str, threads: int, stop: threading.Event, acked: list, per_thread: int = 2000):
    """Clients on keep-alive connections sending single records and batches of three with
    their own ids until ``stop`` or the server goes away; ``acked`` gets every id a 200
    answered."""
    host, port = url.removeprefix("http://").split(":")

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        for n in range(per_thread):
            if stop.is_set():
                return
            ids = [f"t{number}-{n}-{k}" for k in range(1 if n % 4 else 3)]
            body = (
                {"record": RECORD, "request_id": ids[0]}
                if len(ids) == 1
                else {"records": [RECORD] * 3, "request_ids": ids}
            )
            try:
                connection.request(
                    "POST",
                    "/v1/models/loans/predict",
                    json.dumps(body),
                    {"content-type": "application/json"},
                )
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return  # killed
            if response.status == 200:
                acked.extend(ids)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def test_kill_9_under_load_then_restart_every_acknowledged_request_is_logged_once(setup):
    folder, config, _ = setup
    root = folder / "kill-logs"
    server = Server(config, root)
    stop, acked = threading.Event(), []
    workers = load(server.url, 6, stop, acked)
    deadline = time.monotonic() + 15
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.process.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
    server.stop()
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    assert len(acked) >= 300, "the load ran"
    assert (root / "wal").is_dir() and any((root / "wal").rglob("segment-*.wal"))

    restarted = Server(config, root)  # opening the log compacts what the killed one left
    assert httpx.get(f"{restarted.url}/readyz").status_code == 200
    assert restarted.stop() == 0, restarted.stderr()
    logged = collections.Counter(
        read_log(root, "predictions", "loans").column("request_id").to_pylist()
    )
    missing = [i for i in acked if logged[i] != 1]
    print(
        f"kill -9 under load: {len(acked)} acknowledged, {sum(logged.values())} logged "
        f"({len(logged)} distinct), {len(missing)} acknowledged not logged exactly once"
    )
    assert not missing, missing[:10]
    assert max(logged.values()) == 1, "no record twice"


def test_fast_mode_answers_first_and_a_graceful_stop_still_logs_everything(setup):
    from datetime import UTC, datetime, timedelta

    from keel.store.logs import LogWriter

    folder, _, models = setup
    root = folder / "fast-logs"
    now = datetime.now(UTC)
    with LogWriter(root, "predictions", "loans") as writer:  # one day past retention, one not
        writer.append(
            [
                {"request_id": "old", "event_time": now - timedelta(days=40)},
                {"request_id": "recent", "event_time": now - timedelta(days=2)},
            ]
        )
    config = write_config(
        folder / "retained.yaml", make_models(folder / "models"), log_retention_days=30
    )
    server = Server(config, root, mode="fast")
    with httpx.Client(base_url=server.url) as client:
        ids = [
            client.post("/v1/models/loans/predict", json={"record": RECORD}).json()["request_id"]
            for _ in range(50)
        ]
        assert client.get("/v1/models").json()["loans"]["log"]["mode"] == "fast"
    assert server.stop(signal.SIGINT) == 0, server.stderr()
    assert sorted(read_log(root, "predictions", "loans").column("request_id").to_pylist()) == (
        sorted([*ids, "recent"])
    ), "every answer logged; the day past log_retention_days deleted at start, the other kept"
    assert "retention removed loans/predictions/" in server.stderr()


def _namespaced(options: str, root) -> list[str]:
    """Run the server in its own mount namespace with a tmpfs of its own as the log root."""
    return [
        "unshare",
        "-rm",
        "sh",
        "-c",
        f'mount -t tmpfs -o {options} tmpfs "$0" && exec "$@"',
        str(root),
    ]


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount() and not os.environ.get("CI"),
    reason="needs unshare -rm and tmpfs mounts (user namespaces) for a real full disk",
)


@needs_mount
def test_a_full_disk_makes_the_gateway_unready_and_refuse_with_the_reason(setup):
    folder, config, _ = setup
    root = folder / "full"
    root.mkdir()
    server = Server(config, root, prefix=_namespaced("size=192k", root))
    batch = {"records": [{**RECORD, "color": "blue" * 20}] * 200}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = []
        for _ in range(40):
            response = client.post("/v1/models/loans/predict", json=batch)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
        assert statuses[0] == 200 and statuses[-1] == 503, statuses
        assert "could not be logged" in response.json()["detail"]
        assert "No space left on device" in response.json()["detail"]
        assert response.headers["retry-after"] == "1"
        again = client.post("/v1/models/loans/predict", json={"record": RECORD})
        assert again.status_code == 503, "refused rather than answered unlogged"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and not ready.json()["ready"]
        assert "No space left on device" in " ".join(ready.json()["reasons"])
        assert client.get("/healthz").status_code == 200, "up, just not ready"
    server.stop()


@needs_mount
def test_a_read_only_log_folder_is_not_ready_and_every_prediction_is_refused(setup):
    folder, config, _ = setup
    root = folder / "read-only"
    root.mkdir()
    server = Server(config, root, prefix=_namespaced("ro,size=1m", root))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "Read-only file system" in " ".join(ready.json()["reasons"])
        response = client.post("/v1/models/loans/predict", json={"record": RECORD})
        assert response.status_code == 503
        assert "Read-only file system" in response.json()["detail"]
    server.stop()
