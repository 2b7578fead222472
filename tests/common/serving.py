"""What the serving tests share: real model files (skops) and baselines, and a real
``keel serve`` process on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
FEATURES = ["x", "y", "color"]
FAULTS = ["sleepy", "crashing", "hanging", "raising"]


def training_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two numeric features, a categorical one, a customer id and a label that depends on x."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "x": rng.normal(0, 1, rows),
            "y": rng.exponential(2.0, rows),
            "color": rng.choice(["red", "green", "blue"], rows),
        }
    )
    frame["label"] = (frame.x + rng.normal(0, 0.5, rows) > 0).astype(int)
    return frame


def pipeline(c: float = 1.0):
    """A scikit-learn pipeline: one-hot colour, logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer(
        [
            ("num", "passthrough", ["x", "y"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(C=c))])


def behind_fault(fitted, fault: str, features):
    """A fitted pipeline with a fault from ``serve_faults`` in front; the fault runs only
    when the model predicts (fitting a FunctionTransformer does not call its function)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    sys.path.insert(0, str(HERE))
    import serve_faults

    front = FunctionTransformer(getattr(serve_faults, fault)).fit(features)
    return Pipeline([("fault", front), *fitted.steps])


def make_models(folder: Path, faults: list[str] = ()) -> dict[str, Path]:
    """champion.skops, canary.skops (another C), one challenger per fault, baseline.keel."""
    import skops.io

    from keel.baseline import Baseline

    folder.mkdir(parents=True, exist_ok=True)
    frame = training_frame()
    features, label = frame[FEATURES], frame["label"]
    paths = {}
    for name, c, fault in [
        ("champion", 1.0, None),
        ("canary", 0.01, None),
        ("challenger", 0.1, None),
        *[(f, 1.0, f) for f in faults],
    ]:
        model = pipeline(c).fit(features, label)
        if fault is not None:
            model = behind_fault(model, fault, features)
        paths[name] = folder / f"{name}.skops"
        skops.io.dump(model, paths[name])
    Baseline.from_data(frame, target="label", id="customer_id", sample_size=100).save(
        folder / "baseline.keel"
    )
    paths["baseline"] = folder / "baseline.keel"
    return paths


def fault_trust() -> list[str]:
    return [f"serve_faults.{f}" for f in FAULTS]


def write_config(path: Path, models: dict[str, Path], **settings) -> Path:
    """A serve configuration for model ``loans`` (settings: model-level keys or serve keys)."""
    import yaml

    model_keys = {
        "challengers",
        "canaries",
        "weights",
        "entity_keys",
        "shadow_share",
        "shadow_queue",
        "shadow_timeout",
        "shadow_memory_mb",
        "trusted",
        "log_retention_days",
    }
    model = {
        "model": str(models["champion"]),
        "baseline": str(models["baseline"]),
        "entity_keys": ["customer_id"],
    }
    model.update({k: v for k, v in settings.items() if k in model_keys})
    serve = {k: v for k, v in settings.items() if k not in model_keys}
    serve.setdefault("reload_seconds", 0)
    serve.setdefault("min_free_mb", 0)
    path.write_text(yaml.safe_dump({"serve": {**serve, "models": {"loans": model}}}))
    return path


class Server:
    """``keel serve`` in a subprocess on 127.0.0.1, port 0; ``url`` once it announced itself.
    Without ``config``, ``args`` say what to serve (``MODEL --baseline FILE ...``)."""

    def __init__(
        self,
        config: Path | None,
        log_root: Path,
        *args: str,
        mode: str = "durable",
        env: dict | None = None,
        prefix: list[str] = (),
        timeout: float = 90,
        cwd: Path | None = None,
    ):
        self.log_root = log_root
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            **(env or {}),
        }
        self.stderr_path = log_root.parent / f"serve-{time.time_ns()}.stderr"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "keel.cli",
                "serve",
                *(["--config", str(config)] if config is not None else []),
                "--port",
                "0",
                "--log-root",
                str(log_root),
                "--mode",
                mode,
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=environment,
            cwd=cwd,
        )
        self.url: str | None = None
        found = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                match = re.search(rb"keel serve: (http://127\.0\.0\.1:\d+)", line)
                if match and self.url is None:
                    self.url = match.group(1).decode()
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"keel serve did not start:\n{self.stderr()}")

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server and wait for it to exit; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._stderr.close()
        return code
