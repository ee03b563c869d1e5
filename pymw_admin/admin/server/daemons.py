"""The project's daemons (feeder, transitioner, file_deleter, and any an app adds), started with
bin/start as the owner. Running means: a live process behind each pid_HOST/NAME.pid.

(bin/status in server 1.6.2 prints only "BOINC is ENABLED", so it is not used as the fact.)
config.xml is the owner's file: a pid file name from it is only used when it is a plain file name,
and the check runs as the owner, never as root.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pymw_admin.admin import boincxml
from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server.project import SYSTEM_PATH, config_path
from pymw_admin.admin.server.spec import ProjectSpec

# a pid file name as BOINC makes them; anything else in config.xml is never put into a shell
PID_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class DaemonFacts:
    configured: tuple[str, ...]  # daemon program names from config.xml
    running: frozenset[str]
    project_host: str = ""  # <host> in config.xml
    disabled: bool = False  # a stop_daemons file is present


def daemon_names(config_xml: str) -> tuple[str, str]:
    """(names joined by spaces, <host>) from config.xml."""
    names = [name for name, daemon in boincxml.configured_daemons(config_xml).items()
             if not daemon.disabled and PID_NAME_RE.match(name) and name not in (".", "..")]
    return " ".join(names), boincxml.config_value(config_xml, "host")


def status(host: Host, spec: Project) -> DaemonFacts:
    text = host.read_text(config_path(spec), user=spec.owner)
    if text is None:
        return DaemonFacts((), frozenset())
    names, project_host = daemon_names(text)
    pid_dir = shlex.quote(f"{spec.project_dir}/pid_{project_host}")
    quoted = " ".join(shlex.quote(n) for n in names.split())
    # as the owner: it only reads the owner's pid files, and kill -0 works on the owner's daemons
    out = host.run(
        f"test -e {shlex.quote(spec.project_dir)}/stop_daemons && echo @disabled; "
        f"for f in {quoted}; do p=$(cat {pid_dir}/\"$f\" 2>/dev/null) && "
        "kill -0 \"$p\" 2>/dev/null && echo \"$f\"; done", user=spec.owner, check=False
    ).stdout.split()
    configured = tuple(n.removesuffix(".pid") for n in names.split())
    running = frozenset(n.removesuffix(".pid") for n in out if n != "@disabled")
    return DaemonFacts(configured, running, project_host, "@disabled" in out)


def gather(ctx: Context) -> DaemonFacts:
    return status(ctx.host, ctx.wanted)


def decide(facts: DaemonFacts, spec: ProjectSpec) -> list[Action]:
    stopped = [n for n in facts.configured if n not in facts.running]
    if not facts.configured:
        return [Action("start", "bin/start (after make_project)")]
    if stopped or facts.disabled:
        return [Action("start", "bin/start: " + " ".join(stopped or facts.configured))]
    return []


def apply(ctx: Context, actions: list[Action]) -> None:
    project = shlex.quote(ctx.wanted.project_dir)
    ctx.host.run(f"cd {project} && PATH={SYSTEM_PATH} bin/start", user=ctx.wanted.owner,
                 what="bin/start", timeout=120)


STEP = Step("daemons", "start the project's daemons", gather, decide, apply,
            hint="see the daemons' logs in the project's log_HOST directory, then run the same "
                 "command again")
