"""PyMW's command-line switches for master scripts: pick the interface with one flag.

    from pymw_admin.runtime import Master, options
    master = Master(interface=options.interface_from_args())

``-i/--interface`` local (default), mpi, condor or boinc; ``-n/--num-workers``;
``-p/--project-home`` (BOINC project directory); ``-c/--app-path`` (the worker bundle or
interpreter to run); ``-a/--app-args`` (extra arguments for it). Every other argument is left
to the script: ``options.parse_args()`` returns them as ``rest``; a ``--`` ends our switches
(it is dropped, and everything after it is the script's as given).

One ``-a`` setting is the master's, on any interface: ``checkpoint=DIR`` (results kept by task
content, runtime.checkpoint). It is taken out of the app args before the interface sees them and
rides on the interface as its ``checkpoint`` attribute, which a Master reads as it reads
``resume``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from pymw_admin.errors import PymwError, UsageError
from pymw_admin.interfaces import INTERFACES, interface_names, make_interface
from pymw_admin.interfaces.base import Interface


@dataclass
class Options:
    interface: str = "local"
    num_workers: int | None = None
    project_home: str | None = None
    app_path: str | None = None
    app_args: str | None = None
    rest: list[str] = field(default_factory=list)


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def from_environment() -> Options:
    """The switches' values from the environment, the one place it is read: ``PYMW_INTERFACE``,
    ``PYMW_NUM_WORKERS``, ``PYMW_PROJECT_HOME``, ``PYMW_APP_PATH``, ``PYMW_APP_ARGS``.

    They are the defaults of the command-line switches and what a plain ``Master()`` uses;
    ``pymw-admin run`` and ``rehearse`` set them for the script.
    """
    env = os.environ
    return Options(
        interface=env.get("PYMW_INTERFACE") or "local",
        num_workers=workers_from_environment(),
        project_home=env.get("PYMW_PROJECT_HOME") or None,
        app_path=env.get("PYMW_APP_PATH") or None,
        app_args=env.get("PYMW_APP_ARGS") or None,
    )


def workers_from_environment() -> int | None:
    """``PYMW_NUM_WORKERS``, checked like -n; None when unset."""
    text = os.environ.get("PYMW_NUM_WORKERS")
    if not text:
        return None
    try:
        return _positive(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"PYMW_NUM_WORKERS: {exc}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-n needs a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"-n needs at least 1 worker, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    env = from_environment()
    p = _OneLineParser(add_help=False, allow_abbrev=False)
    p.add_argument("-i", "--interface", default=env.interface)
    p.add_argument("-n", "--num-workers", type=_positive, default=env.num_workers)
    p.add_argument("-p", "--project-home", default=env.project_home)
    p.add_argument("-c", "--app-path", default=env.app_path)
    p.add_argument("-a", "--app-args", default=env.app_args)
    return p


def parse_args(argv: Sequence[str] | None = None, *, exit_on_error: bool = True) -> Options:
    """Read PyMW's switches from ``argv`` (default ``sys.argv[1:]``); the rest go to ``rest``.

    A bad switch prints one line and exits 2, unless ``exit_on_error=False`` (then: UsageError).
    """
    try:
        return _parse(argv)
    except PymwError as exc:
        if not exit_on_error:
            raise
        fail(exc)


def _parse(argv: Sequence[str] | None) -> Options:
    args = list(sys.argv[1:] if argv is None else argv)
    # "--" ends PyMW's switches: what follows is the script's, as given (argparse would keep the
    # "--" itself in ``rest``, and read a "-n" after it as ours)
    after: list[str] = []
    if "--" in args:
        end = args.index("--")
        args, after = args[:end], args[end + 1:]
    known, rest = _parser().parse_known_args(args)
    rest += after
    if known.interface.lower() not in INTERFACES:
        raise UsageError(
            f"unknown interface {known.interface!r} (choose from {', '.join(interface_names())})"
        )
    return Options(
        interface=known.interface.lower(),
        num_workers=known.num_workers,
        project_home=known.project_home,
        app_path=known.app_path,
        app_args=known.app_args,
        rest=rest,
    )


def interface_from_environment(
    name: str | None = None, num_workers: int | None = None
) -> Interface:
    """The interface the environment asks for (what a plain ``Master()`` runs on); ``name`` and
    ``num_workers``, when given, replace its interface and worker count."""
    opts = from_environment()
    if name is not None:
        opts.interface = name
    if num_workers is not None:
        opts.num_workers = num_workers
    return build_interface(opts)


MASTER_SETTINGS = ("checkpoint",)  # -a settings of the master, on every interface


def split_app_args(app_args: str | None) -> tuple[dict[str, str], str | None]:
    """``-a`` into the master's own settings (``checkpoint=DIR``) and the interface's rest."""
    settings: dict[str, str] = {}
    rest: list[str] = []
    for item in (app_args or "").split():
        key, _, value = item.partition("=")
        if key in MASTER_SETTINGS:
            if not value:
                raise UsageError(f"bad -a setting {item!r}: {key}= needs a value")
            settings[key] = value
        else:
            rest.append(item)
    if not settings:
        return settings, app_args  # the interface's own, exactly as given (its quoting and all)
    return settings, " ".join(rest) or None


def build_interface(opts: Options) -> Interface:
    settings, app_args = split_app_args(opts.app_args)
    interface = make_interface(
        opts.interface,
        num_workers=opts.num_workers,
        project_home=opts.project_home,
        app_path=opts.app_path,
        app_args=app_args,
    )
    if "checkpoint" in settings:
        # read by Master (as ``resume`` is): the directory reaches it with the interface
        setattr(interface, "checkpoint", settings["checkpoint"])  # noqa: B010
    return interface


def interface_from_args(
    argv: Sequence[str] | None = None, *, exit_on_error: bool = True
) -> Interface:
    """Build the interface the command line asks for.

    A bad switch or a missing engine prints one line (``error: ...``) and exits non-zero, as a
    master script should; pass ``exit_on_error=False`` to get the PymwError instead.
    """
    try:
        return build_interface(_parse(argv))
    except PymwError as exc:
        if not exit_on_error:
            raise
        fail(exc)


def fail(exc: PymwError) -> NoReturn:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(exc.exit_code)
