"""The Typer application and the one place library errors become one line and an exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from pymw_admin import __version__
from pymw_admin.errors import PymwError

app = typer.Typer(
    name="pymw-admin",
    help="Run Python master-worker computations on your cores, MPI, HTCondor and BOINC, "
    "and set up the BOINC server they need.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        console.print(f"pymw-admin {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


def error_line(message: str) -> None:
    """Print ``error: MESSAGE`` on stderr. The message is text, never markup: paths, remote
    output and volunteers' error messages may hold brackets."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False,
                      soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; ``raise fail(...)`` ends the command with ``code``."""
    error_line(message)
    return typer.Exit(code)


def run() -> None:
    """Entry point: run the app, turning a PymwError (or Ctrl-C) into one line and an exit code."""
    try:
        code = app(standalone_mode=False)
    except PymwError as exc:
        if _state["debug"]:
            raise
        raise SystemExit(fail(str(exc), exc.exit_code).exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click's usage errors (typer may vendor click: duck-type them)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            error_line(exc.format_message())
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        error_line(f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
