"""``pymw-admin run SCRIPT [-- ARGS]``, ``runs``, ``logs ID``, ``attach ID``, ``stop ID``.

Thin: resolve the project (pymw-admin.toml or flags), connect, call pymw_admin.admin.runs, render.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from pymw_admin.admin import runs, runs_prune, target
from pymw_admin.admin.remote import Host
from pymw_admin.cli.app import app, console, err_console
from pymw_admin.cli.project_options import (
    HostOpt,
    KeyOpt,
    OwnerOpt,
    PortOpt,
    ProjectDirOpt,
    ProjectFileOpt,
    ProjectOpt,
    SshConfigOpt,
    TimeoutOpt,
    UserOpt,
    opened,
)
from pymw_admin.cli.terminal_text import safe_writer, shown, shown_line
from pymw_admin.errors import RemoteError, UsageError


def _print_now(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _follow(remote: Host, where: target.ProjectTarget, run_id: str) -> int:
    """Stream a run to the end; Ctrl-C or a lost connection leave it running on the server."""
    try:
        # the run's output is shown, escapes written out: a volunteer's text may be in it
        info = runs.follow(remote, where, run_id, safe_writer(_print_now))
    except KeyboardInterrupt:
        err_console.print(f"detached: run {run_id} goes on on the server "
                          f"(`pymw-admin attach {run_id}`, `pymw-admin stop {run_id}`)")
        return 130
    except RemoteError as exc:
        raise RemoteError(f"{exc}; run {run_id} goes on on the server "
                          f"(`pymw-admin attach {run_id}`)") from None
    err_console.print(f"run {run_id}: {info.state}", highlight=False, markup=False)
    if info.exit_code is not None:
        return info.exit_code
    return 0 if info.running else 1


@app.command("run", context_settings={"allow_extra_args": True,
                                      "ignore_unknown_options": True})
def run_command(
    script: Annotated[Path, typer.Argument(help="The master script on this machine.")],
    args: Annotated[list[str] | None, typer.Argument(
        help="Arguments for the script, after --. Default switches: -i boinc -p PROJECT.")] = None,
    data: Annotated[list[Path] | None, typer.Option(
        "--data", "-d", help="A data file or directory the script reads (repeatable).")] = None,
    detach: Annotated[bool, typer.Option(
        "--detach", help="Start it, print its id and return: within seconds, or with its exit "
                         "status and last lines if it fails at its start.")] = False,
    project_file: ProjectFileOpt = None, host: HostOpt = None, user: UserOpt = None,
    port: PortOpt = None, key: KeyOpt = None, ssh_config: SshConfigOpt = None,
    project: ProjectOpt = None, owner: OwnerOpt = None, project_dir: ProjectDirOpt = None,
    connect_timeout: TimeoutOpt = 10.0,
) -> None:
    """Run a master script on the project's server, detached; follow its output while connected."""
    plan = runs.RunPlan.make(script, args or [], data or [])  # bad input fails before connecting
    with opened(project_file, host, user, port, key, ssh_config, project, owner, project_dir,
                connect_timeout) as (remote, where):
        runs.check_project(remote, where)
        with console.status("preparing the project's Python environment ...") as spinner:
            python = runs.ensure_environment(remote, where, lambda m: spinner.update(m + " ..."))
            spinner.update("uploading and starting ...")
            run_id = runs.start(remote, where, plan, python)
        extra = f" with {len(plan.modules)} module(s)" if plan.modules else ""
        extra += f" and {len(plan.data)} data item(s)" if plan.data else ""
        err_console.print(f"run {run_id}: {script.name}{extra} on {remote.name}", highlight=False,
                          markup=False)
        if detach:
            # a master that refuses to start does so at once: say it here, not only in `logs`
            with console.status("watching its start ..."):
                ended = runs.early_end(remote, where, run_id)
            if ended is not None and ended.exit_code != 0:
                sys.stderr.write(shown(ended.log_tail))
                err_console.print(f"run {run_id}: exited({ended.exit_code}) at its start "
                                  f"(pymw-admin logs {run_id})", highlight=False, markup=False)
                raise typer.Exit(ended.exit_code)
            print(run_id)
            return
        code = _follow(remote, where, run_id)
    raise typer.Exit(code)


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def _duration(info: runs.RunInfo) -> str:
    if not info.started:
        return "-"
    seconds = int((info.ended or time.time()) - info.started)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def runs_table(items: list[runs.RunInfo]) -> Table:
    table = Table(title="runs", title_justify="left")
    # a resumed run's results from an earlier master / computed anew: a column only when some
    # run has them, so a narrow terminal keeps room for the script's name
    reuse = any(info.reused for info in items)
    columns = ["id", "state", "started", "time", "script", "tag"] + (["reused/new"] * reuse)
    longest = max((len(shown_line(info.script)) for info in items), default=6)
    for column in columns:
        table.add_column(column, justify="right" if column == "id" else "left",
                         min_width=min(longest, 30) if column == "script" else None)
    colours = {"running": "green", "killed": "yellow", "lost": "red"}
    for info in items:
        state = info.state
        colour = colours.get(state, "red" if info.exit_code else "")
        cells: list[str | Text] = [
            info.id, Text(state, style=colour), _when(info.started), _duration(info),
            Text(shown_line(info.script)), Text(info.tag if info.tag is not None else "-")]
        if reuse:
            cells.append(f"{info.reused}/{info.computed}" if info.reused else "-")
        table.add_row(*cells)
    return table


@app.command("runs")
def runs_command(
    action: Annotated[str | None, typer.Argument(
        metavar="[prune | drop TAG]",
        help="'prune': remove finished runs' directories; 'drop TAG': cancel the BOINC work units "
             "an earlier master with that tag left uncollected.")] = None,
    tag: Annotated[str | None, typer.Argument(metavar="", hidden=True)] = None,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="With prune: only runs that ended this long ago (30d, 12h, 90m).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="With prune: list what would go.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project_file: ProjectFileOpt = None, host: HostOpt = None, user: UserOpt = None,
    port: PortOpt = None, key: KeyOpt = None, ssh_config: SshConfigOpt = None,
    project: ProjectOpt = None, owner: OwnerOpt = None, project_dir: ProjectDirOpt = None,
    connect_timeout: TimeoutOpt = 10.0,
) -> None:
    """List the project's runs: id, state (running, exited(N), killed, lost), start, script and
    the BOINC tag its master uses; `runs prune [--older-than AGE]` removes finished ones;
    `runs drop TAG` cancels the BOINC work units a tag's earlier masters left."""
    if action is not None and action not in ("prune", "drop"):
        raise UsageError(f"unknown runs action {action!r}: 'prune' or 'drop TAG'")
    if action == "drop" and not tag:
        raise UsageError("usage: pymw-admin runs drop TAG")
    if action is None and (older_than or dry_run):
        raise UsageError("--older-than and --dry-run go with `runs prune`")
    if action == "prune":
        age = runs_prune.parse_age(older_than) if older_than else None
        with opened(project_file, host, user, port, key, ssh_config, project, owner,
                    project_dir, connect_timeout) as (remote, where):
            gone = runs_prune.prune(remote, where, age, dry_run=dry_run)
        if as_json:
            print(json.dumps({"dry_run": dry_run, "removed": [int(r.id) for r in gone]}))
        else:
            verb = "would remove" if dry_run else "removed"
            listed = ", ".join(r.id for r in gone) or "none"
            console.print(f"{verb} {len(gone)} finished run(s): {listed}", markup=False)
        return
    with opened(project_file, host, user, port, key, ssh_config, project, owner, project_dir,
                connect_timeout) as (remote, where):
        if action == "drop" and tag:
            runs.check_project(remote, where)
            with console.status("preparing the project's Python environment ..."):
                python = runs.ensure_environment(remote, where)
            count, kept = runs.drop_tag(remote, where, tag, python)
            if as_json:
                print(json.dumps({"tag": tag, "cancelled": count, "kept_finished": kept}))
            else:
                console.print(f"tag {tag}: cancelled {count} work unit(s)"
                              + (f", kept {kept} BOINC had finished" if kept else ""),
                              markup=False)
            return
        items = runs.list_runs(remote, where)
    if as_json:
        print(json.dumps([r.as_dict() for r in items], indent=2))
    elif items:
        console.print(runs_table(items))
    else:
        console.print(f"no runs in project {where.name}", markup=False)


@app.command("logs")
def logs_command(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id.")],
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Only the last N lines.")] = None,
    project_file: ProjectFileOpt = None, host: HostOpt = None, user: UserOpt = None,
    port: PortOpt = None, key: KeyOpt = None, ssh_config: SshConfigOpt = None,
    project: ProjectOpt = None, owner: OwnerOpt = None, project_dir: ProjectDirOpt = None,
    connect_timeout: TimeoutOpt = 10.0,
) -> None:
    """Print a run's output (stdout and stderr) so far."""
    runs.check_run_id(run_id)
    with opened(project_file, host, user, port, key, ssh_config, project, owner, project_dir,
                connect_timeout) as (remote, where):
        sys.stdout.write(shown(runs.read_log(remote, where, run_id, tail)))


@app.command("attach")
def attach_command(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id.")],
    project_file: ProjectFileOpt = None, host: HostOpt = None, user: UserOpt = None,
    port: PortOpt = None, key: KeyOpt = None, ssh_config: SshConfigOpt = None,
    project: ProjectOpt = None, owner: OwnerOpt = None, project_dir: ProjectDirOpt = None,
    connect_timeout: TimeoutOpt = 10.0,
) -> None:
    """Follow a run's output from its start until it ends; exit with its exit status."""
    runs.check_run_id(run_id)
    with opened(project_file, host, user, port, key, ssh_config, project, owner, project_dir,
                connect_timeout) as (remote, where):
        code = _follow(remote, where, run_id)
    raise typer.Exit(code)


@app.command("stop")
def stop_command(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id.")],
    grace: Annotated[float, typer.Option("--grace", help="Seconds between TERM and KILL.")] = (
        runs.STOP_GRACE),
    project_file: ProjectFileOpt = None, host: HostOpt = None, user: UserOpt = None,
    port: PortOpt = None, key: KeyOpt = None, ssh_config: SshConfigOpt = None,
    project: ProjectOpt = None, owner: OwnerOpt = None, project_dir: ProjectDirOpt = None,
    connect_timeout: TimeoutOpt = 10.0,
) -> None:
    """Stop a run: TERM its process group, then KILL after --grace seconds; print what its
    master said it cancelled and kept."""
    runs.check_run_id(run_id)
    with opened(project_file, host, user, port, key, ssh_config, project, owner, project_dir,
                connect_timeout) as (remote, where):
        before = runs.get_run(remote, where, run_id)
        info = runs.stop(remote, where, run_id, grace)
        # what its master cancelled and kept, in its own closing lines
        said = runs.closing_lines(remote, where, run_id) if before.running else []
    if before.running:
        console.print(f"run {run_id} stopped: {info.state}", highlight=False, markup=False)
        for line in said:
            console.print(shown_line(line), highlight=False, markup=False, soft_wrap=True)
    else:
        console.print(f"run {run_id} was not running: {info.state}", highlight=False,
                      markup=False)
