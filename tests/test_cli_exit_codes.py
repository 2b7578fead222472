"""Exit codes hold whatever Typer release pip picks: usage errors and crashes exit 2, never 1.

The suite runs the installed (newest) Typer; `.ci/run` also installs the lowest
release `pyproject.toml` allows into a folder named by ``KEEL_TEST_TYPER_LOWEST``,
and the same cases run against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TYPERS = ["installed", "lowest"]

CRASH = """
import sys, keel.cli
@keel.cli.app.command("explode")
def explode() -> None:
    raise ZeroDivisionError("a bug, not a finding")
sys.argv = ["keel", "explode"]
keel.cli.main()
"""


def lowest_allowed_typer() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (typer,) = [d for d in dependencies if d.split(">=")[0].strip() == "typer"]
    return typer.split(">=")[1].split(",")[0].strip()


def run(typer: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KEEL_STATE_DIR=str(tmp_path / "state"))
    if typer == "lowest":
        folder = os.environ.get("KEEL_TEST_TYPER_LOWEST")
        if not folder:
            pytest.skip("KEEL_TEST_TYPER_LOWEST is not set (.ci/run sets it)")
        env["PYTHONPATH"] = os.pathsep.join([folder, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def typer_version(typer: str, tmp_path: Path) -> str:
    code = "import importlib.metadata as m, typer; print(m.version('typer'))"
    return run(typer, tmp_path, "-c", code).stdout.strip()


@pytest.mark.parametrize("typer", TYPERS)
def test_the_lowest_typer_is_the_one_pyproject_allows(typer, tmp_path):
    version = typer_version(typer, tmp_path)
    if typer == "lowest":
        assert version == lowest_allowed_typer()
    else:
        assert tuple(map(int, version.split(".")[:2])) >= (0, 26)


@pytest.mark.parametrize("typer", TYPERS)
@pytest.mark.parametrize(
    "args, says",
    [
        (["nope"], "No such command 'nope'"),
        (["drift", "--frobnicate"], "No such option: --frobnicate"),
        (["drift"], "Missing argument"),
        (["monitor", "run", "--frobnicate", "7D"], "No such option: --frobnicate"),
    ],
)
def test_usage_errors_exit_2_with_the_parsers_message(typer, args, says, tmp_path):
    result = run(typer, tmp_path, "-m", "keel.cli", *args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("typer", TYPERS)
def test_help_exits_0(typer, tmp_path):
    result = run(typer, tmp_path, "-m", "keel.cli", "--help")
    assert result.returncode == 0 and "drift" in result.stdout


@pytest.mark.parametrize("typer", TYPERS)
def test_an_unexpected_error_exits_2_with_one_line_and_a_private_log(typer, tmp_path):
    result = run(typer, tmp_path, "-c", CRASH)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unexpected ZeroDivisionError: a bug, not a finding" in lines[0]
    log = tmp_path / "state" / "error.log"
    assert str(log) in lines[0]
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()
    assert log.stat().st_mode & 0o077 == 0  # nobody else reads the traceback
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0


def test_a_symlink_at_the_log_path_is_not_followed(tmp_path):
    (tmp_path / "state").mkdir(mode=0o700)
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    (tmp_path / "state" / "error.log").symlink_to(target)
    result = run("installed", tmp_path, "-c", CRASH)
    assert result.returncode == 2
    assert "no error log written" in result.stderr
    assert target.read_text() == "precious"
