"""``pymw-admin status [--json] [--watch]``: daemons, work by state per app, what the tasks did
per app and run tag, failures, runs."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pymw_admin.admin import runs
from pymw_admin.admin import status as project_status
from pymw_admin.cli import project_options as opt
from pymw_admin.cli.app import app, console, fail
from pymw_admin.cli.runs import runs_table  # status shows the runs as `runs` does
from pymw_admin.cli.terminal_text import shown_line

_LABELS = {"unsent": "unsent", "in_progress": "in progress", "done": "done",
           "errored": "errored", "not_needed": "not needed", "cancelled": "cancelled"}
TAGS_SHOWN = 8  # run tags a table shows per app, the most recently active (--json: all)


def render(status: project_status.Status) -> RenderableType:
    parts: list[RenderableType] = []
    when = time.strftime("%H:%M:%S", time.localtime(status.time))
    parts.append(Text.from_markup(f"[bold]{status.project}[/] on {status.host} at {when}"))
    daemons = Table(title="daemons", title_justify="left")
    daemons.add_column("daemon")
    daemons.add_column("state")
    for name, up in status.daemons.items():
        daemons.add_row(Text(shown_line(name)), "[green]up[/]" if up else "[red]down[/]")
    if status.daemons_disabled:
        daemons.add_row("(all)", "[yellow]disabled: stop_daemons file present[/]")
    if not status.daemons:
        daemons.add_row("-", "[red]none configured[/]")
    parts.append(daemons)
    if status.web_error:
        parts.append(Text(f"web: {shown_line(status.web_error)}", style="red"))
    if status.project_error:
        parts.append(Text(shown_line(status.project_error), style="red"))
    if status.database_error:
        parts.append(Text(f"database: {shown_line(status.database_error)} (counts unknown)",
                          style="red"))
    else:
        work = Table(title="work (work units / results)", title_justify="left")
        work.add_column("app")
        for state in project_status.RESULT_STATES:
            work.add_column(_LABELS[state], justify="right")
        for counts in status.apps:
            cells = []
            for state in project_status.RESULT_STATES:
                wus = counts.workunits.get(state)
                res = counts.results[state]
                text = f"{wus} / {res}" if wus is not None else f"- / {res}"
                cells.append(f"[red]{text}[/]" if state == "errored" and (wus or res) else text)
            work.add_row(Text(shown_line(counts.name)), *cells)
        if not status.apps:
            work.add_row("(no apps)", *["-"] * len(project_status.RESULT_STATES))
        parts.append(work)
        parts.extend(tasks_parts(status))
        if status.failures:
            failures = Table(title="recent failures", title_justify="left")
            for column in ("when", "app", "what", "reason"):
                failures.add_column(column, overflow="fold")
            for f in status.failures:
                # names and reasons come from the database and volunteers: text, not markup
                failures.add_row(_when(f.when),
                                 Text(shown_line(f.app)), Text(shown_line(f"{f.kind} {f.name}")),
                                 Text(shown_line(f.reason)))
            parts.append(failures)
        parts.append(reach_line(status.versions))
        parts.append(_hosts_table(status) if status.hosts
                     else Text("no volunteer host has contacted the project yet", style="dim"))
    parts.append(runs_table(status.runs) if status.runs else Text("no runs", style="dim"))
    return Group(*parts)


def _when(seconds: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def _tag_label(tag: str) -> Text:
    # names from the database and the owner's files: text, not markup
    return Text("  " + (shown_line(tag) if tag else "(not a master's)"))


def _shown_tags(app: project_status.TaskOutcomes) -> list[project_status.TaskOutcomes]:
    return [t for t in app.tags if t.active][:TAGS_SHOWN]


def _tasks_row(one: project_status.TaskOutcomes) -> list[str]:
    wus = one.workunits
    tallied = one.ok or one.raised or one.unreadable  # nothing filed since the tally began: "-"
    raised = sum(one.raised.values())
    result_failures = sum(f.count for f in one.failed if f.kind == "result")
    return [
        ", ".join(one.runs) or "-", str(wus["unsent"] + wus["in_progress"]), str(wus["done"]),
        str(one.ok) if tallied else "-",
        (f"[red]{raised}[/]" if raised else "0") if tallied else "-",
        f"[red]{wus['errored']} / {result_failures}[/]" if wus["errored"] or result_failures
        else "0 / 0",
        f"{wus['cancelled']} / {one.cancelled_results}"]


def tasks_parts(status: project_status.Status) -> list[RenderableType]:
    """What each app's tasks did, per run tag: a table of counts, the exceptions tasks raised
    with their newest examples, and the failures by reason."""
    apps = [a for a in status.tasks if a.active]
    parts: list[RenderableType] = []
    if status.tasks_error:
        parts.append(Text(f"tasks: {shown_line(status.tasks_error)}", style="yellow"))
    if not apps:
        return parts
    table = Table(title="tasks (work units; of those done, what the tasks did)",
                  title_justify="left")
    for column in ("app / run tag", "runs", "waiting", "done", "returned", "raised",
                   "failed wus / results", "cancelled wus / results"):
        table.add_column(column, justify="left" if column in ("app / run tag", "runs")
                         else "right")
    raised = Table(title="tasks that raised (newest first)", title_justify="left")
    for column in ("app / run tag", "exception", "tasks", "when", "work unit: message"):
        raised.add_column(column, overflow="fold", justify="right" if column == "tasks"
                          else "left")
    failed = Table(title="failures by reason", title_justify="left")
    for column in ("app / run tag", "what", "count", "newest", "reason"):
        failed.add_column(column, overflow="fold", justify="right" if column == "count"
                          else "left")
    notes: list[RenderableType] = []
    for of_app in apps:
        table.add_row(Text(shown_line(of_app.app), style="bold"), *_tasks_row(of_app))
        tags = _shown_tags(of_app)
        for tag in tags:
            table.add_row(_tag_label(tag.tag or ""), *_tasks_row(tag))
            where = Text(f"{shown_line(of_app.app)} {shown_line(tag.tag) if tag.tag else '-'}")
            for error_type, count in sorted(tag.raised.items(), key=lambda item: -item[1]):
                examples: list[project_status.RaisedExample | None] = [
                    e for e in tag.examples if e.error_type == error_type]
                examples = examples or [None]  # counted, its examples no longer kept
                for i, e in enumerate(examples):  # a row each: a long message folds in its own
                    first = i == 0
                    raised.add_row(where if first else "",
                                   Text(shown_line(error_type)) if first else "",
                                   str(count) if first else "", _when(e.when) if e else "-",
                                   Text(shown_line(f"{e.workunit}: {e.message}") if e else ""))
            for failure in sorted(tag.failed, key=lambda f: -f.count):
                failed.add_row(where, "results" if failure.kind == "result" else "work units",
                               str(failure.count), _when(failure.last),
                               Text(shown_line(failure.reason)))
        more = len([t for t in of_app.tags if t.active]) - len(tags)
        if more > 0:
            notes.append(Text(f"{shown_line(of_app.app)}: {more} more run tag(s), older "
                              "(status --json lists them)", style="dim"))
        if of_app.unreadable:
            notes.append(Text(f"{shown_line(of_app.app)}: {of_app.unreadable} result(s) whose "
                              "record could not be read (not a pymw result record)",
                              style="yellow"))
    parts.append(table)
    if raised.row_count:
        parts.append(raised)
    if failed.row_count:
        parts.append(failed)
    return parts + notes


def reach_line(reach: project_status.VersionReach) -> Text:
    """One line: the platforms app versions exist for and the share of hosts they can serve."""
    deployed = ", ".join(reach.platforms) or "none"
    if not reach.hosts:
        return Text(f"app versions for: {deployed}; no volunteer hosts yet")
    share = reach.hosts_served / reach.hosts
    kinds = ", ".join(f"{p or 'unknown'} {n}" for p, n in sorted(reach.hosts_by_platform.items()))
    return Text(f"app versions for: {deployed}; they serve {reach.hosts_served} of "
                f"{reach.hosts} hosts ({share:.0%}; hosts: {kinds})",
                style="green" if share == 1 else "yellow")
def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _hosts_table(status: project_status.Status) -> Table:
    table = Table(title="volunteer hosts", title_justify="left")
    for column in ("id", "name", "platform", "cpus", "last contact"):
        table.add_column(column, justify="right" if column in ("id", "cpus") else "left")
    for h in status.hosts:
        # host names and OS strings come from volunteers: text, not markup
        seen = _ago(status.time - h.last_contact) if h.last_contact else "never"
        table.add_row(str(h.id), Text(shown_line(h.name)), Text(shown_line(h.platform)),
                      str(h.ncpus), seen)
    return table


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 5,
    failures: Annotated[int, typer.Option("--failures", help="How many recent failures.")] = (
        project_status.FAILURE_LIMIT),
    project_file: opt.ProjectFileOpt = None, host: opt.HostOpt = None, user: opt.UserOpt = None,
    port: opt.PortOpt = None, key: opt.KeyOpt = None, ssh_config: opt.SshConfigOpt = None,
    project: opt.ProjectOpt = None, owner: opt.OwnerOpt = None,
    project_dir: opt.ProjectDirOpt = None, connect_timeout: opt.TimeoutOpt = 10.0,
) -> None:
    """Show daemons, work units and results by state per app, what the tasks did per app and
    run tag (returned, raised by exception type, failed by reason, cancelled), recent failures,
    volunteer hosts and runs. Exits 1 when the project is unhealthy (web server, database,
    daemons)."""
    if watch and as_json:
        raise fail("--watch and --json do not go together", 2)
    if interval <= 0:
        raise fail("--interval must be positive", 2)
    with opt.opened(project_file, host, user, port, key, ssh_config, project, owner, project_dir,
                connect_timeout) as (remote, where):
        runs.check_project(remote, where)
        reading = project_status.gather(remote, where, failures)
        if as_json:
            print(json.dumps(reading.as_dict(), indent=2))
            raise typer.Exit(1 if reading.problems else 0)
        if not watch:
            console.print(render(reading))
            if reading.problems:
                raise fail("project " + where.name + " is unhealthy: "
                           + "; ".join(reading.problems), 1)
            return
        try:
            with Live(render(reading), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(render(project_status.gather(remote, where, failures)),
                                refresh=True)
        except KeyboardInterrupt:
            return

