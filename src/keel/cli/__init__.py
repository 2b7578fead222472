"""The ``keel`` command line: one module per command group, registered here.

Exit codes: 0 ran and found nothing, 1 found something alerting, 2 could not run.
"""

from __future__ import annotations

import sys
import traceback

import typer

from keel.cli._shared import EXIT_ERROR, EXIT_FOUND, EXIT_OK, err, out
from keel.errors import KeelError

__all__ = ["EXIT_ERROR", "EXIT_FOUND", "EXIT_OK", "app", "err", "main", "out"]

app = typer.Typer(
    help="keel keeps machine-learning models healthy in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per command group (each defines ``app``), or per top-level command; one line
# each here. Imported after ``app`` exists: a group may reach back for the consoles.
from keel.cli import (  # noqa: E402
    alerts,
    baseline,
    demo,
    drift,
    ingest,
    leakage,
    lineage,
    logs,
    models,
    monitor,
    reproduce,
    retrain,
    serve,
    tokens,
    train,
    ui,
)

app.command()(drift.profile)
app.command()(drift.drift)
app.command()(demo.demo)
app.add_typer(baseline.app, name="baseline")
app.add_typer(ingest.app, name="ingest")
app.add_typer(monitor.app, name="monitor")
app.add_typer(alerts.app, name="alerts")
# -- command groups --
app.add_typer(__import__("keel.cli.features", fromlist=["app"]).app, name="features")
app.command("leakage")(leakage.leakage)
app.command("lineage")(lineage.lineage)
app.add_typer(logs.app, name="logs")
app.add_typer(models.app, name="models")
app.command("reproduce")(reproduce.reproduce)
app.add_typer(retrain.app, name="retrain")
app.command("serve")(serve.serve)
app.add_typer(tokens.app, name="tokens")
app.command("train")(train.train)
app.command("ui")(ui.ui)
# -- end of command groups --


def main() -> None:
    """Entry point: KeelError exits 2 with its message; anything unexpected too, with a log."""
    try:
        from keel.threads import limit_process

        limit_process()  # numeric pools on KEEL_THREADS threads (one): cores are shared
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeelError as error:
        err.print(f"[red]error:[/] {error}", highlight=False)
        sys.exit(EXIT_ERROR)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(EXIT_ERROR)
    except Exception as error:  # noqa: BLE001 - the last line of defence, never exit 1
        if _is_usage_error(error):
            # A mistyped command or option: Typer's parser (Click's, vendored by Typer ≥ 0.26)
            # explains it itself; it is a usage error, never a finding.
            error.show()
            sys.exit(EXIT_ERROR)
        sys.exit(_unexpected(error))


def _is_usage_error(error: Exception) -> bool:
    """True for the parser's own errors, whichever Click (installed or vendored) raised them."""
    return callable(getattr(error, "show", None)) and any(
        kind.__name__ == "ClickException" for kind in type(error).__mro__
    )


def _unexpected(error: Exception) -> int:
    """One line on stderr, the traceback in the per-user error log; exit code 2."""
    from keel.errorlog import write_error_log

    try:
        where = f"details in {write_error_log(traceback.format_exc())}"
    except OSError as log_error:
        where = f"no error log written: {log_error}"
    err.print(
        f"[red]error:[/] unexpected {type(error).__name__}: {error} ({where})", highlight=False
    )
    return EXIT_ERROR
