"""keel serve against a bare FastAPI app calling the same model, in one run, with Debian's wrk.

Run: python benchmarks/serve.py [--seconds 8] [--connections 16] [--json FILE]
(needs ``wrk``: ``apt-get install -y wrk``; loopback only, one uvicorn worker each).

The model is a scikit-learn pipeline (scaling, logistic regression) over eight numeric
features, saved with skops. Each setup is measured twice with the same one-record request:
at saturation (``--connections`` keep-alive connections, as fast as they go: req/s and
latency percentiles), and at about half of the bare app's saturation rate (4 connections,
each pausing between requests: the latency added when the server is not saturated). The
setups: the bare app; keel durable with no shadow; keel durable with one shadow (a second
model in its own process); keel fast; keel durable with a challenger that sleeps 20 ms per
request, and one that crashes on every request. It also checks that the champion's answers
to a fixed set of probes are identical with every challenger, and reports the p99 of one
``fdatasync`` of a small append on the disk the logs are on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEATURES = [f"f{i}" for i in range(8)]
RECORD = {name: 0.1 * i for i, name in enumerate(FEATURES)}


# Challenger faults: saved by name in the challenger's skops file, imported by its process
# as ``serve.sleepy`` / ``serve.crashing`` (this folder is on its PYTHONPATH).
def sleepy(rows):
    """A slow challenger: 20 ms a request."""
    time.sleep(0.02)
    return rows


def crashing(rows):
    """A challenger whose process dies on every request."""
    os._exit(3)


def make_models(folder: Path) -> dict[str, Path]:
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from keel.baseline import Baseline

    sys.path.insert(0, str(HERE))
    import serve as this  # the faults under their importable name

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))), columns=FEATURES)
    frame["label"] = (frame.f0 + rng.normal(size=len(frame)) > 0).astype(int)
    paths: dict[str, Path] = {}
    for name, c in (("champion", 1.0), ("challenger", 0.1)):
        model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=c))])
        model.fit(frame[FEATURES], frame.label)
        paths[name] = folder / f"{name}.skops"
        skops.io.dump(model, paths[name])
        if name == "champion":
            champion = model
    for fault in ("sleepy", "crashing"):
        front = FunctionTransformer(getattr(this, fault)).fit(frame[FEATURES])
        faulty = Pipeline([("fault", front), *champion.steps])
        paths[fault] = folder / f"{fault}.skops"
        skops.io.dump(faulty, paths[fault])
    Baseline.from_data(frame, target="label", sample_size=100).save(folder / "baseline.keel")
    paths["baseline"] = folder / "baseline.keel"
    return paths


BARE_APP = """
import json, sys
import pandas as pd, skops.io
from fastapi import FastAPI, Request
from starlette.responses import Response
model = skops.io.load(sys.argv[1], trusted=skops.io.get_untrusted_types(file=sys.argv[1]))
columns = list(model.feature_names_in_)
app = FastAPI()

@app.post("/v1/models/{name}/predict")
async def predict(name: str, request: Request):
    record = json.loads(await request.body())["record"]
    frame = pd.DataFrame.from_records([record], columns=columns)
    score = float(model.predict_proba(frame)[0, 1])
    return Response(json.dumps({"model": name, "prediction": int(score > 0.5), "score": score}),
                    media_type="application/json")

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode})")
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            return
        except OSError as error:
            if "404" in str(error):
                return
            time.sleep(0.2)
    raise RuntimeError("server did not come up")


def start_bare(folder: Path, model: Path) -> tuple[subprocess.Popen, str]:
    script = folder / "bare_app.py"
    script.write_text(BARE_APP)
    port = free_port()
    process = subprocess.Popen([sys.executable, str(script), str(model), str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_up(url, process)
    return process, url


def start_keel(folder: Path, paths: dict, mode: str, challenger: str | None, tag: str):
    import yaml

    model = {"model": str(paths["champion"]), "baseline": str(paths["baseline"])}
    if challenger is not None:
        model["challengers"] = {challenger: str(paths[challenger])}
        model["trusted"] = ["serve.sleepy", "serve.crashing"]
    config = folder / f"serve-{tag}.yaml"
    root = folder / f"logs-{tag}"
    config.write_text(
        yaml.safe_dump(
            {"serve": {"models": {"bench": model}, "reload_seconds": 0, "min_free_mb": 0}}
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keel.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            "0",
            "--log-root",
            str(root),
            "--mode",
            mode,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 120
    for line in process.stdout:
        found = re.search(rb"(http://127\.0\.0\.1:\d+)", line)
        if found:
            return process, found.group(1).decode(), root
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"keel serve ({tag}) did not start")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
%s
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency.max))
end
"""


def wrk(url: str, seconds: int, connections: int, folder: Path, delay_ms: float = 0) -> dict:
    delay = f"function delay() return {delay_ms:.3f} end" if delay_ms > 0 else ""
    script = folder / f"wrk-{time.time_ns()}.lua"
    script.write_text(LUA % (json.dumps({"record": RECORD}), delay))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            "--timeout",
            "5s",
            f"{url}/v1/models/bench/predict",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests, duration, p50, p90, p99, errors, worst = map(
        int, re.search(r"RESULT (.*)", out).group(1).split()
    )
    return {
        "rps": requests / (duration / 1e6),
        "p50_ms": p50 / 1000,
        "p90_ms": p90 / 1000,
        "p99_ms": p99 / 1000,
        "errors": errors,
        "requests": requests,
    }


def probe_answers(url: str) -> list[float]:
    import urllib.request

    scores = []
    for i in range(20):
        record = {name: (i - 10) * 0.2 + j * 0.01 for j, name in enumerate(FEATURES)}
        request = urllib.request.Request(
            f"{url}/v1/models/bench/predict",
            json.dumps({"record": record}).encode(),
            {"Content-Type": "application/json"},
        )
        scores.append(json.loads(urllib.request.urlopen(request).read())["score"])
    return scores


def pause(rate: float, connections: int = 4, latency_ms: float = 1.0) -> float:
    """The pause between requests that holds ``connections`` near ``rate`` req/s in all.

    >>> pause(400.0)
    9.0
    """
    return max(0.0, 1000 * connections / rate - latency_ms)


def fdatasync_p99(folder: Path, count: int = 1000, gap_s: float = 0.0) -> float:
    """The p99 of one append and ``fdatasync`` on this disk, in ms: back to back, or
    ``gap_s`` apart (as a log sees them when requests are not saturating it; on this
    virtual disk a sync after a pause is the slower one)."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 300)
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
            if gap_s:
                time.sleep(gap_s)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return times[int(0.99 * (count - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--folder", type=Path, default=None, help="where logs go (a real disk)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="setups to run (and bare)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt-get install -y wrk)")
    folder = Path(tempfile.mkdtemp(prefix="keel-serve-bench-", dir=args.folder))
    paths = make_models(folder)
    results: dict[str, dict] = {}
    answers: dict[str, list[float]] = {}

    def measure(tag: str, process: subprocess.Popen, url: str, half_rate: float | None) -> None:
        wrk(url, 2, args.connections, folder)  # warm up
        results[tag] = {"saturated": wrk(url, args.seconds, args.connections, folder)}
        if half_rate is not None:
            results[tag]["half_rate"] = wrk(url, args.seconds, 4, folder, pause(half_rate))
        answers[tag] = probe_answers(url)
        print(tag, json.dumps(results[tag]), flush=True)

    process, url = start_bare(folder, paths["champion"])
    try:
        measure("bare", process, url, None)
        half = results["bare"]["saturated"]["rps"] / 2
        results["bare"]["half_rate"] = wrk(url, args.seconds, 4, folder, pause(half))
        print("bare half", json.dumps(results["bare"]["half_rate"]), flush=True)
    finally:
        stop(process)
    setups = [
        ("durable", "durable", None),
        ("durable+shadow", "durable", "challenger"),
        ("fast", "fast", None),
        ("durable+sleepy", "durable", "sleepy"),
        ("durable+crashing", "durable", "crashing"),
    ]
    if args.only:
        setups = [setup for setup in setups if setup[0] in args.only]
    for tag, mode, challenger in setups:
        process, url, _root = start_keel(folder, paths, mode, challenger, tag)
        try:
            measure(tag, process, url, half)
        finally:
            stop(process)
    sync_p99 = fdatasync_p99(folder)
    spaced_p99 = fdatasync_p99(folder, 500, 1 / half)  # one sync per half-rate request
    bare = results["bare"]
    print(
        f"\nfdatasync p99 on this disk: {sync_p99:.2f} ms back to back, {spaced_p99:.2f} ms "
        f"{1000 / half:.1f} ms apart (the half-rate spacing); durable goal: p99 added "
        f"<= 1 + 2 x {spaced_p99:.2f} = {1 + 2 * spaced_p99:.2f} ms"
    )
    print(
        f"{'setup':18} {'req/s':>8} {'× bare':>7} {'p50':>7} {'p90':>7} {'p99':>7}   "
        f"half-rate: {'p50':>6} {'p99':>6} {'+p50':>6} {'+p99':>6}"
    )
    for tag, result in results.items():
        s, h = result["saturated"], result["half_rate"]
        print(
            f"{tag:18} {s['rps']:8.0f} {s['rps'] / bare['saturated']['rps']:7.2f} "
            f"{s['p50_ms']:7.2f} {s['p90_ms']:7.2f} {s['p99_ms']:7.2f}   "
            f"           {h['p50_ms']:6.2f} {h['p99_ms']:6.2f} "
            f"{h['p50_ms'] - bare['half_rate']['p50_ms']:6.2f} "
            f"{h['p99_ms'] - bare['half_rate']['p99_ms']:6.2f}"
        )
    reference = answers.get("durable", answers["bare"])
    same = {tag: answers[tag] == reference for tag in answers if tag != "bare"}
    print("champion answers identical to the no-shadow run:", same)
    no_shadow_p99 = results.get("durable", bare)["half_rate"]["p99_ms"]
    for tag in ("durable+sleepy", "durable+crashing", "durable+shadow"):
        if tag not in results:
            continue
        ratio = results[tag]["half_rate"]["p99_ms"] / no_shadow_p99
        print(f"{tag}: half-rate p99 / no-shadow p99 = {ratio:.2f}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "results": results,
                    "fdatasync_p99_ms": sync_p99,
                    "fdatasync_spaced_p99_ms": spaced_p99,
                    "identical": same,
                },
                indent=2,
            )
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
