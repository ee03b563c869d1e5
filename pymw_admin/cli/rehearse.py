"""``pymw-admin rehearse``: run a master script on this machine's cores with live progress.

The tutorial's advice: debug a BOINC app on the multicore interface before submitting it. The
script runs in this process as ``__main__``, with the interface forced to ``local``.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pymw_admin.cli.app import app, console, fail
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
) -> None:
    """Run a master script on the local interface, showing tasks done / submitted.

    Arguments after [bold]--[/] go to the script.
    """
    if not script.is_file():
        raise fail(f"no such script: {script}", 2)
    if num_workers is not None and num_workers < 1:
        raise fail(f"-n needs at least 1 worker, not {num_workers}", 2)
    _run_script(script, list(ctx.args), num_workers, quiet, "bundle" if bundle else "local")


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
        if exc.code not in (None, 0):
            raise typer.Exit(exc.code if isinstance(exc.code, int) else 1) from None
    finally:
        events.remove_listener(listen)
        sys.argv, sys.path[:] = saved_argv, saved_path
