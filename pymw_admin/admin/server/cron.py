"""The owner's crontab line that runs BOINC's periodic tasks (bin/start --cron every 5 minutes),
and a running cron daemon."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server import services
from pymw_admin.admin.server.spec import ProjectSpec


@dataclass(frozen=True)
class CronFacts:
    running: bool
    crontab: str  # the owner's crontab ("" when none)


def cron_line(spec: ProjectSpec) -> str:
    root = spec.project_dir
    return (f"0,5,10,15,20,25,30,35,40,45,50,55 * * * * cd {root} ; {root}/bin/start --cron"
            f" # pymw-admin {spec.name}")


def is_ours(line: str, spec: ProjectSpec) -> bool:
    """This project's line: its key comment, or (written before the key) its own bin/start."""
    fields = line.split()
    return (line.rstrip().endswith(f"# pymw-admin {spec.name}")
            or f"{spec.project_dir}/bin/start" in fields)


def new_crontab(current: str, spec: ProjectSpec) -> str:
    """The crontab with exactly one line for this project, where its line already was (so two
    projects of one owner keep their order and a re-run changes nothing); other lines as they
    were."""
    lines: list[str] = []
    placed = False
    for line in current.splitlines():
        if not is_ours(line, spec):
            lines.append(line)
        elif not placed:
            lines.append(cron_line(spec))
            placed = True
    if not placed:
        lines.append(cron_line(spec))
    return "\n".join(lines) + "\n"


def gather(ctx: Context) -> CronFacts:
    owner = shlex.quote(ctx.wanted.owner)
    tab = ctx.host.sudo(f"crontab -l -u {owner} 2>/dev/null", check=False).stdout
    return CronFacts(services.is_running(ctx.host, "cron"), tab)


def decide(facts: CronFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    if new_crontab(facts.crontab, spec) != (facts.crontab if facts.crontab.endswith("\n")
                                             else facts.crontab + "\n"):
        actions.append(Action("install-crontab", f"{spec.owner}: bin/start --cron every 5 min"))
    if not facts.running:
        actions.append(Action("start", "cron"))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    for action in actions:
        if action.kind == "install-crontab":
            current = ctx.host.sudo(f"crontab -l -u {shlex.quote(ctx.wanted.owner)} 2>/dev/null",
                                    check=False).stdout
            ctx.host.sudo(f"crontab -u {shlex.quote(ctx.wanted.owner)} -",
                          stdin=new_crontab(current, ctx.wanted), what="crontab")
        elif action.kind == "start":
            services.control(ctx.host, "cron", "start")


STEP = Step("cron", "install the project's crontab", gather, decide, apply)
