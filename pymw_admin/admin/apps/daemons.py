"""The app's validator and assimilator in config.xml, and (re)started.

Adding a daemon is followed by ``bin/start``, which starts whatever configured daemon is not
running. A daemon whose command changed is stopped first (SIGHUP to its pid, then waited for:
server 1.6.2's ``bin/stop`` does not wait under Python 3), so it comes back with the new command.
Other daemons are never touched.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from pymw_admin.admin import boincxml
from pymw_admin.admin.apps.common import as_owner, project_path
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.project import Project
from pymw_admin.admin.server import daemons as server_daemons
from pymw_admin.errors import RemoteError

START_WAIT = 20.0  # seconds for bin/start's children to write their pid files


@dataclass(frozen=True)
class AppDaemonFacts:
    configured: dict[str, boincxml.Daemon]  # pid file -> daemon
    running: frozenset[str]  # pid-file names (without .pid) with a live process
    disabled: bool = False


def gather(ctx: Context, app: AppSpec) -> AppDaemonFacts:
    text = ctx.host.read_text(project_path(ctx.spec, "config.xml"), user=ctx.spec.owner)
    if text is None:
        raise RemoteError(f"no config.xml in {ctx.spec.project_dir}: run init-project first")
    status = server_daemons.status(ctx.host, ctx.spec)
    return AppDaemonFacts(boincxml.configured_daemons(text), status.running, status.disabled)


def decide(facts: AppDaemonFacts, spec: Project, app: AppSpec) -> list[Action]:
    actions = []
    stopped = []
    for daemon in boincxml.app_daemons(app.name):
        there = facts.configured.get(daemon.pid_file)
        if there is None:
            actions.append(Action("add-daemon", daemon.cmd))
        elif there != daemon:
            actions.append(Action("change-daemon", daemon.cmd))
        elif daemon.pid_file.removesuffix(".pid") not in facts.running:
            stopped.append(daemon.program)
    if actions or stopped or facts.disabled:
        actions.append(Action("start", "bin/start" + (": " + " ".join(stopped) if stopped
                                                      else "")))
    return actions


def _pid_dir(ctx: Context) -> str:
    text = ctx.host.read_text(project_path(ctx.spec, "config.xml"), user=ctx.spec.owner) or ""
    return project_path(ctx.spec, f"pid_{boincxml.config_value(text, 'host')}")


def apply(ctx: Context, actions: list[Action], app: AppSpec) -> None:
    host, spec = ctx.host, ctx.spec
    wanted = boincxml.app_daemons(app.name)
    changed_cmds = {a.detail for a in actions if a.kind == "change-daemon"}
    if any(a.kind in ("add-daemon", "change-daemon") for a in actions):
        path = project_path(spec, "config.xml")
        text = host.read_text(path, user=spec.owner) or ""
        host.write_file(path, boincxml.set_daemons(text, wanted), mode=0o640, owner=spec.owner)
    pid_dir = _pid_dir(ctx)
    for daemon in wanted:
        if daemon.cmd in changed_cmds:
            pid = shlex.quote(f"{pid_dir}/{daemon.pid_file}")
            as_owner(host, spec,
                     f"p=$(cat {pid} 2>/dev/null) && kill -HUP \"$p\" 2>/dev/null; "
                     f"for i in $(seq 100); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.1; "
                     f"done; rm -f {pid}", check=False)
    as_owner(host, spec, "bin/start", what="bin/start", timeout=120)
    deadline = time.monotonic() + START_WAIT
    names = {d.pid_file.removesuffix(".pid") for d in wanted}
    while time.monotonic() < deadline:
        if names <= server_daemons.status(host, spec).running:
            return
        time.sleep(0.5)
    raise RemoteError(f"the app's daemons did not start; see {spec.project_dir}/log_*/"
                      f"pymw_*_{app.name}.log")
