"""Re-do a recorded training run and say, item by item, what still matches.

``keel reproduce loans@3`` extracts the recorded commit into a clean folder (``git
archive``; a run recorded dirty gets its stored diff applied, and is refused when none was
stored), reads the recorded data again, runs the recorded entrypoint with the recorded
params in a separate Python process of the current environment, has keel score the holdout,
and compares:

- **data**: each part's full-data fingerprint against the recorded one;
- **code**: the commit run (and whether a stored diff was applied);
- **packages**: the recorded versions of the packages loaded at training against the
  installed ones (``scikit-learn 1.4.2 → 1.5.0``), and Python's;
- **params**: the fitted model's ``get_params()`` against the recorded ones;
- **predictions**: the holdout predictions against the stored ones — max |Δscore| and the
  share of changed decisions; when they differ, the accuracy difference tested paired on
  the same rows (McNemar's mid-p; a paired bootstrap of the absolute-error difference for a
  regressor) against ``alpha``.

Exit 0 when every item matches, 1 when one differs, 2 when the run cannot be re-done.

>>> mcnemar_mid_p(0, 0), round(mcnemar_mid_p(1, 9), 4)
(1.0, 0.0117)
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import KeelError

REPORT_FORMAT = "keel.reproduce/v1"


class CannotReproduce(KeelError):
    """The recorded run cannot be re-done: no source, no entrypoint, no commit, a dirty tree
    whose diff was not stored, data that is gone."""


@dataclass
class Item:
    """One compared item: ``name``, ``matches``, a one-line ``summary`` and the details."""

    name: str
    matches: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reproduction:
    """What ``reproduce`` found, item by item."""

    ref: str
    items: list[Item]

    @property
    def matches(self) -> bool:
        """True when every item matches."""
        return all(item.matches for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``keel reproduce --json``)."""
        return {
            "format": REPORT_FORMAT,
            "ref": self.ref,
            "matches": self.matches,
            "items": [
                {"item": i.name, "matches": i.matches, "summary": i.summary, **i.details}
                for i in self.items
            ],
        }


def reproduce(
    registry: Any,
    ref: str,
    *,
    tolerance: float = 1e-9,
    alpha: float = 0.05,
    timeout: float = 3600,
) -> Reproduction:
    """Re-do the run that trained the version ``ref`` names (see the module docstring)."""
    from keel.registry.base import resolve
    from keel.tracking import (
        PREDICTIONS_ARTIFACT,
        prepare_data,
        recorded_digest,
        table_from_bytes,
    )

    version = resolve(registry, ref)
    if version.run_id is None:
        raise CannotReproduce(f"{version.ref} has no training run recorded")
    record = registry.run_record(version.run_id)
    code, data = record.get("code") or {}, record.get("data") or {}
    _check_reproducible(version.ref, code, data)
    split = data.get("split") or {}
    try:
        train, holdout, found = prepare_data(
            data["train"]["source"],
            None if split else data["holdout"]["source"],
            split.get("holdout_last"),
            split.get("timestamp") or (record.get("roles") or {}).get("timestamp"),
            recorded_digest(data),
        )
    except KeelError as error:
        raise CannotReproduce(
            f"{version.ref}: the recorded data cannot be read: {error}"
        ) from error
    items = [_data_item(data, found), _packages_item(record.get("environment") or {})]
    stored = table_from_bytes(registry.run_artifact(version.run_id, PREDICTIONS_ARTIFACT))
    with tempfile.TemporaryDirectory(prefix="keel-reproduce-") as folder:
        worktree = Path(folder) / "code"
        applied = _checkout(code, worktree)
        items.insert(1, _code_item(code, applied))
        scored, params = _fit_elsewhere(
            worktree, code["entrypoint"], train, holdout, record, Path(folder), timeout
        )
    items.append(_params_item((record.get("model") or {}).get("params") or {}, params))
    items.append(_predictions_item(stored, scored, record, tolerance, alpha))
    return Reproduction(ref=version.ref, items=items)


def _check_reproducible(ref: str, code: dict, data: dict) -> None:
    for role in ("train", "holdout"):
        if not (data.get(role) or {}).get("reproducible"):
            raise CannotReproduce(
                f"{ref} was trained on an in-memory table with no source ({role} data): "
                "keel cannot read it again"
            )
    if not code.get("entrypoint") or ":" not in str(code.get("entrypoint")):
        raise CannotReproduce(
            f"{ref}: no entrypoint recorded (train with keel train, or "
            "keel.track(..., entrypoint=...))"
        )
    if not code.get("commit") or not code.get("repo"):
        raise CannotReproduce(f"{ref}: no git commit recorded (trained outside a git repo)")
    if code.get("dirty") and not code.get("diff"):
        raise CannotReproduce(
            f"{ref} was trained from a dirty tree and its diff was not stored (over 5 MB?): "
            "the code that trained it is not known"
        )


def _checkout(code: dict, worktree: Path) -> bool:
    """The recorded commit, clean, in ``worktree`` (plus the stored diff); True when a
    diff was applied."""
    archive = (
        subprocess.run(
            ["git", "archive", "--format=tar", code["commit"]],
            cwd=code["repo"],
            capture_output=True,
        )
        if Path(code["repo"]).is_dir()
        else None
    )
    if archive is None or archive.returncode != 0:
        why = archive.stderr.decode(errors="replace").strip() if archive else "no such folder"
        raise CannotReproduce(
            f"commit {code['commit'][:12]} cannot be read from {code['repo']}: {why}"
        )
    worktree.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(worktree, filter="data")
    if not code.get("dirty"):
        return False
    patch = worktree.parent / "recorded.diff"
    patch.write_text(code["diff"])
    applied = subprocess.run(
        ["git", "apply", "--whitespace=nowarn", str(patch)],
        cwd=worktree,
        capture_output=True,
        text=True,
    )
    if applied.returncode != 0:
        raise CannotReproduce(
            f"the stored diff does not apply to {code['commit'][:12]}: {applied.stderr.strip()}"
        )
    return True


def _fit_elsewhere(worktree, entrypoint, train, holdout, record, folder, timeout):
    """Run the entrypoint in a separate process (a clean import state, the current
    environment), in the worktree; returns (scored holdout, fitted params)."""
    import pyarrow.parquet as pq

    from keel.tracking import table_from_bytes

    pq.write_table(train, folder / "train.parquet")
    pq.write_table(holdout, folder / "holdout.parquet")
    roles = record.get("roles") or {}
    spec = {
        "worktree": str(worktree),
        "entrypoint": entrypoint,
        "train": str(folder / "train.parquet"),
        "holdout": str(folder / "holdout.parquet"),
        "params": record.get("params") or {},
        "target": roles.get("target") or record["holdout"]["target"],
        "excluded": [c for c in roles.values() if c],
        "out": str(folder / "out"),
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "keel.reproduce", str(folder / "spec.json")],
            cwd=worktree,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(worktree), *sys.path])},
        )
    except subprocess.TimeoutExpired as error:
        raise CannotReproduce(f"the entrypoint ran past {timeout:.0f} s") from error
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise CannotReproduce(
            f"the recorded entrypoint {entrypoint} failed: {lines[-1] if lines else '?'}"
        )
    out = Path(spec["out"])
    params = json.loads((out / "params.json").read_text())
    return table_from_bytes((out / "predictions.parquet").read_bytes()), params


def _run_spec(path: str) -> None:
    """The separate process: fit, score the holdout, write both (``python -m keel.reproduce``)."""
    import pyarrow.parquet as pq

    from keel.tracking import load_entrypoint, model_params, score_holdout, table_bytes

    spec = json.loads(Path(path).read_text())
    sys.path.insert(0, spec["worktree"])
    fit = load_entrypoint(spec["entrypoint"], root=Path(spec["worktree"]))
    model = fit(pq.read_table(spec["train"]), dict(spec["params"]))
    scored, _ = score_holdout(
        model, pq.read_table(spec["holdout"]), spec["target"], set(spec["excluded"])
    )
    out = Path(spec["out"])
    out.mkdir()
    (out / "predictions.parquet").write_bytes(table_bytes(scored))
    (out / "params.json").write_text(json.dumps(model_params(model)))


# -- the items ----------------------------------------------------------------------------


def _data_item(recorded: dict, found: dict) -> Item:
    changed = {
        role: {
            "recorded": recorded[role]["fingerprint"],
            "now": found[role]["fingerprint"],
            "rows": [recorded[role]["rows"], found[role]["rows"]],
        }
        for role in ("train", "holdout")
        if recorded[role]["fingerprint"] != found[role]["fingerprint"]
    }
    if not changed:
        return Item(
            "data",
            True,
            "fingerprints match (train "
            f"{recorded['train']['fingerprint'][:12]}, holdout "
            f"{recorded['holdout']['fingerprint'][:12]})",
        )
    parts = [
        f"{role} {c['recorded'][:12]} → {c['now'][:12]} ({c['rows'][0]:,} → {c['rows'][1]:,} rows)"
        for role, c in changed.items()
    ]
    return Item("data", False, "fingerprints differ: " + "; ".join(parts), {"changed": changed})


def _code_item(code: dict, applied: bool) -> Item:
    how = " with its stored diff applied" if applied else " (recorded clean)"
    return Item(
        "code",
        True,
        f"ran commit {code['commit'][:12]}{how}: {code['entrypoint']}",
        {"commit": code["commit"], "diff_applied": applied},
    )


def _packages_item(environment: dict) -> Item:
    import importlib.metadata as metadata
    import platform

    changed = {}
    for name, version in (environment.get("packages") or {}).items():
        try:
            now = metadata.version(name)
        except metadata.PackageNotFoundError:
            now = "not installed"
        if now != version:
            changed[name] = [version, now]
    python = environment.get("python")
    if python and python != platform.python_version():
        changed["python"] = [python, platform.python_version()]
    if not changed:
        count = len(environment.get("packages") or {})
        return Item("packages", True, f"the {count} recorded package versions are installed")
    text = ", ".join(f"{name} {a} → {b}" for name, (a, b) in sorted(changed.items()))
    return Item("packages", False, f"versions differ: {text}", {"changed": changed})


def _params_item(recorded: dict, fitted: dict) -> Item:
    keys = sorted(set(recorded) | set(fitted))
    changed = {
        k: [recorded.get(k), fitted.get(k)]
        for k in keys
        if not _same_param(recorded.get(k), fitted.get(k))
    }
    if not changed:
        return Item("params", True, f"the fitted model's {len(keys)} params match")
    text = ", ".join(f"{k} {a!r} → {b!r}" for k, (a, b) in changed.items())
    return Item("params", False, f"params differ: {text}", {"changed": changed})


def _same_param(a: Any, b: Any) -> bool:
    """Equal, where NaN equals NaN (scikit-learn's ``encoded_missing_value`` default)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _predictions_item(stored, scored, record: dict, tolerance: float, alpha: float) -> Item:
    if stored.num_rows != scored.num_rows:
        return Item(
            "predictions",
            False,
            f"{scored.num_rows:,} holdout rows scored, {stored.num_rows:,} stored",
        )
    target = (record.get("holdout") or {}).get("target") or (record.get("roles") or {}).get(
        "target"
    )
    columns = [c for c in stored.column_names if c.startswith("score")] or ["prediction"]
    deltas = [
        np.abs(
            np.asarray(stored.column(c).to_numpy(zero_copy_only=False), dtype=float)
            - np.asarray(scored.column(c).to_numpy(zero_copy_only=False), dtype=float)
        )
        for c in columns
        if c in scored.column_names
    ]
    largest = float(max((d.max() for d in deltas if d.size), default=0.0))
    old = stored.column("prediction").to_numpy(zero_copy_only=False)
    new = scored.column("prediction").to_numpy(zero_copy_only=False)
    task = (record.get("holdout") or {}).get("task", "binary")
    changed = float(np.mean(old != new)) if task != "regression" else 0.0
    details: dict[str, Any] = {"max_abs_delta": largest, "changed_decisions": changed}
    if largest <= tolerance and changed == 0.0:
        return Item(
            "predictions",
            True,
            f"the {stored.num_rows:,} holdout predictions match (max |Δscore| "
            f"{largest:.2g} ≤ {tolerance:g})",
            details,
        )
    truth = stored.column(target).to_numpy(zero_copy_only=False)
    if task == "regression":
        low, high = _paired_bootstrap(np.abs(old - truth), np.abs(new - truth))
        details["mae_difference_interval"] = [low, high]
        significant = low > 0 or high < 0
        test = f"paired bootstrap of |error|: Δ in [{low:.3g}, {high:.3g}]"
    else:
        old_right, new_right = old == truth, new == truth
        lost, gained = int(np.sum(old_right & ~new_right)), int(np.sum(~old_right & new_right))
        p = mcnemar_mid_p(lost, gained)
        details.update(mcnemar_mid_p=p, lost=lost, gained=gained)
        significant = p < alpha
        test = f"McNemar mid-p {p:.3g} ({lost} right→wrong, {gained} wrong→right)"
    verdict = "a significant" if significant else "no significant"
    details["significant"] = significant
    return Item(
        "predictions",
        False,
        f"holdout predictions differ: max |Δscore| {largest:.3g}, {changed:.1%} of decisions "
        f"changed; {test}: {verdict} difference in accuracy at α={alpha:g}",
        details,
    )


def mcnemar_mid_p(lost: int, gained: int) -> float:
    """McNemar's mid-p for paired right/wrong outcomes: ``lost`` rows the old model got right
    and the new one wrong, ``gained`` the other way (Fagerland, Lydersen & Laake 2013)."""
    from scipy.stats import binom

    n = lost + gained
    if n == 0:
        return 1.0
    k = min(lost, gained)
    return float(min(1.0, 2 * binom.cdf(k, n, 0.5) - binom.pmf(k, n, 0.5)))


def _paired_bootstrap(old: np.ndarray, new: np.ndarray, draws: int = 2000) -> tuple:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(old), size=(draws, len(old)))
    differences = (new[rows] - old[rows]).mean(axis=1)
    return float(np.quantile(differences, 0.025)), float(np.quantile(differences, 0.975))


def describe(found: Reproduction) -> list[str]:
    """The report as lines (what ``keel reproduce`` prints).

    >>> describe(Reproduction("loans@1", [Item("data", True, "fingerprints match")]))
    ['loans@1: reproduced: every item matches', '  data: match: fingerprints match']
    """
    verdict = "reproduced: every item matches" if found.matches else "differs"
    lines = [f"{found.ref}: {verdict}"]
    for item in found.items:
        lines.append(f"  {item.name}: {'match' if item.matches else 'DIFFERS'}: {item.summary}")
    return lines


if __name__ == "__main__":  # the separate process _fit_elsewhere starts
    _run_spec(sys.argv[1])
