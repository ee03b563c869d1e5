"""The Typer application and the one place library errors become one line and an exit code."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from pymw_admin import __version__
from pymw_admin.cli.terminal_text import shown_line
from pymw_admin.errors import PymwError


class _PlainHelp:
    """Help as a reader expects it: ``SCRIPT`` rather than ``{script}`` in the usage line and
    the arguments, and no ``<bool>`` after a flag (typer's rich help adds both)."""

    options_metavar: str | None

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:  # the help and completion options join late: done here
            _plain(param)
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or ""
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def _plain(param: Any) -> None:
    if param.metavar is not None:
        return
    if isinstance(param, TyperArgument):
        param.metavar = (param.name or "").upper() + ("..." if param.nargs != 1 else "")
    elif isinstance(param, TyperOption) and param.is_flag:
        param.metavar = ""


class _Command(_PlainHelp, TyperCommand):
    pass


class _Group(_PlainHelp, TyperGroup):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.subcommand_metavar]


class PlainTyper(typer.Typer):
    """A Typer whose commands and groups print :class:`_PlainHelp`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = PlainTyper(
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
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks on errors (also taken after the command name).")] = False,
) -> None:
    _state["debug"] = _state["debug"] or debug


def debug_enabled() -> bool:
    """--debug was given: show whole tracebacks."""
    return _state["debug"]


def error_line(message: str) -> None:
    """Print ``error: MESSAGE`` on stderr. The message is text, never markup: paths, remote
    output and volunteers' error messages may hold brackets."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", shown_line(message)),
                      highlight=False,
                      soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; ``raise fail(...)`` ends the command with ``code``."""
    error_line(message)
    return typer.Exit(code)


def _take_debug(args: list[str]) -> list[str]:
    """``--debug`` anywhere before ``--`` (after the command name too) is ours; from ``--`` on,
    everything belongs to the script."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[:end]:
        _state["debug"] = True
        return [a for a in args[:end] if a != "--debug"] + args[end:]
    return args


def run() -> None:
    """Entry point: run the app, turning a PymwError (or Ctrl-C) into one line and an exit code."""
    try:
        code = app(args=_take_debug(sys.argv[1:]), standalone_mode=False)
    except PymwError as exc:
        if _state["debug"]:
            traceback.print_exc()  # and still the error's own exit status
            raise SystemExit(exc.exit_code) from None
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
            message = exc.format_message()
            if message.strip():  # no arguments: the help was printed, there is no error
                error_line(message)
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        error_line(f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
