"""``pymw-admin rehearse``: run a master script on this machine's cores with live progress.

The tutorial's advice: debug a BOINC app on the multicore interface before submitting it. The
script runs in this process as ``__main__`` on the local interface (or the bundle's): its
interface switch and a plain ``Master()`` give that one, and ``-i`` among its arguments is
refused. What the script says when it fails is shown as ``python SCRIPT`` would show it, less
our own frames: its ``sys.exit("message")``, its traceback, a failed task's remote traceback.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pymw_admin.cli.app import app, console, debug_enabled, fail
from pymw_admin.runtime import events
from pymw_admin.runtime.task import Task


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def rehearse(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="The master script to run.")],
    num_workers: Annotated[
        int | None, typer.Option("-n", "--num-workers", help="Worker processes (default: cores).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    bundle: Annotated[bool, typer.Option(
        "--bundle", help="Run each task through the built PyBOINC bundle in a BOINC-like slot."
    )] = False,
    platform: Annotated[str | None, typer.Option(
        "--platform", help="With --bundle: that platform's bundle (windows_x86_64 runs under "
                           "wine, aarch64-unknown-linux-gnu under qemu-user).")] = None,
    checkpoint_period: Annotated[float | None, typer.Option(
        "--checkpoint-period", metavar="S",
        help="With --bundle: the client's checkpoint period the tasks see (default 60 s); "
             "boinc.time_to_checkpoint() says yes at most every S seconds.")] = None,
    restart_after: Annotated[float | None, typer.Option(
        "--restart-after", metavar="S",
        help="With --bundle: kill each task once after S seconds and start it again in its "
             "slot, as a BOINC client stopped and started again does: shows that a "
             "checkpointing task resumes.")] = None,
) -> None:
    """Run a master script on the local interface, showing tasks done / submitted.

    Arguments after [bold]--[/] go to the script; its interface is always the local one.
    """
    if not script.is_file():
        raise fail(f"no such script: {script}", 2)
    if num_workers is not None and num_workers < 1:
        raise fail(f"-n needs at least 1 worker, not {num_workers}", 2)
    interface = "bundle" if bundle else "local"
    if platform is not None:
        if not bundle:
            raise fail("--platform goes with --bundle", 2)
        os.environ["PYMW_BUNDLE_PLATFORM"] = platform
    from pymw_admin.interfaces.bundle import CHECKPOINT_PERIOD_ENV, RESTART_AFTER_ENV

    for name, seconds, env, least in (
        ("--checkpoint-period", checkpoint_period, CHECKPOINT_PERIOD_ENV, "0 s or more"),
        ("--restart-after", restart_after, RESTART_AFTER_ENV, "more than 0 s"),
    ):
        if seconds is None:
            continue
        if not bundle:
            raise fail(f"{name} goes with --bundle", 2)
        if not (seconds >= 0 if name == "--checkpoint-period" else seconds > 0):
            raise fail(f"{name} needs {least}, not {seconds:g}", 2)
        os.environ[env] = repr(seconds)
    chosen = _interface_switch(list(ctx.args))
    if chosen is not None:
        raise fail(f"rehearse runs the script on the {interface} interface, so it takes no "
                   f"'{chosen}'; run `python {script} {chosen}` to use another", 2)
    _run_script(script, list(ctx.args), num_workers, quiet, interface)


def _interface_switch(args: list[str]) -> str | None:
    """The script's own -i/--interface switch among ``args``, as given; None when there is none."""
    for index, arg in enumerate(args):
        if arg in ("-i", "--interface"):
            return " ".join(args[index:index + 2])
        if arg.startswith("--interface=") or (arg.startswith("-i") and len(arg) > 2):
            return arg
    return None


def _run_script(script: Path, args: list[str], num_workers: int | None, quiet: bool,
                interface: str = "local") -> None:
    os.environ["PYMW_INTERFACE"] = interface
    if num_workers is not None:
        os.environ["PYMW_NUM_WORKERS"] = str(num_workers)
    workers = ["-n", str(num_workers)] if num_workers is not None else []
    argv = [str(script), "-i", interface, *workers, *args]
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
    bar = progress.add_task("tasks", total=0, failed=0)
    lock = threading.Lock()
    counts = {"submitted": 0, "done": 0, "failed": 0}

    def listen(event: str, task: Task) -> None:
        with lock:
            if event == "submitted":
                counts["submitted"] += 1
            elif event != "finished" or task.state.value == "cancelled":
                return  # "started" moves no bar; a cancelled task (a map stopped) is not done
            elif task.state.value == "failed":
                counts["failed"] += 1
            else:
                counts["done"] += 1
            progress.update(bar, total=counts["submitted"],
                            completed=counts["done"] + counts["failed"], failed=counts["failed"])

    events.add_listener(listen)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = argv
    sys.path.insert(0, str(script.resolve().parent))
    try:
        with progress:
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code in (None, 0):
            return
        if isinstance(exc.code, int):
            raise typer.Exit(exc.code) from None
        print(exc.code, file=sys.stderr)  # sys.exit("message"): Python prints it, exit status 1
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        # after the bar: the run's count, and the status a shell gives a process Ctrl-C ended
        print(f"interrupted: {counts['done'] + counts['failed']} of {counts['submitted']} done",
              file=sys.stderr, flush=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if debug_enabled():
            raise
        sys.stderr.write(script_traceback(exc))
        raise typer.Exit(1) from None
    finally:
        events.remove_listener(listen)
        sys.argv, sys.path[:] = saved_argv, saved_path


def _ours(frame: traceback.FrameSummary) -> bool:
    """A frame of pymw-admin itself or of runpy: between the user and their own code."""
    name = frame.filename
    return name.startswith(_PACKAGE_DIR) or name.startswith("<frozen runpy")


_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + os.sep


def script_traceback(exc: BaseException) -> str:
    """The traceback ``python SCRIPT`` would print, without our frames (the CLI's, runpy's,
    the master's): the script's own, and any chained ones, the remote traceback of a failed
    task included. ``--debug`` shows everything."""
    shown = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    pending: list[traceback.TracebackException | None] = [shown]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [frame for frame in current.stack if not _ours(frame)])
        pending += [current.__cause__, current.__context__]
    return "".join(shown.format())
