"""The project's owner account (boincadm by default): the daemons and make_project run as it.

Apache (www-data) joins the owner's group: BOINC's upload and log directories are 2770.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server.spec import ProjectSpec

WEB_USER = "www-data"


@dataclass(frozen=True)
class OwnerFacts:
    exists: bool
    web_in_group: bool
    home_mode: int | None  # octal permission bits of ~owner


def gather(ctx: Context) -> OwnerFacts:
    owner = shlex.quote(ctx.spec.owner)
    out = ctx.host.run(
        f"id -u {owner} >/dev/null 2>&1 && echo exists; id -nG {WEB_USER} 2>/dev/null; "
        f"stat -c 'mode=%a' {shlex.quote(ctx.spec.home)} 2>/dev/null", check=False
    ).stdout
    lines = out.splitlines()
    exists = "exists" in lines
    groups = set(lines[1].split()) if exists and len(lines) > 1 else set()
    mode = next((int(x[5:], 8) for x in lines if x.startswith("mode=")), None)
    return OwnerFacts(exists, ctx.spec.owner in groups, mode)


def decide(facts: OwnerFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    if not facts.exists:
        actions.append(Action("create-user", spec.owner))
    if not facts.web_in_group:
        actions.append(Action("add-to-group", f"{WEB_USER} -> {spec.owner}"))
    # Apache must traverse ~owner to the project's html/ (group access is enough)
    if facts.home_mode is None or facts.home_mode & 0o010 == 0:
        actions.append(Action("chmod-home", f"g+x {spec.home}"))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    owner, home = shlex.quote(ctx.spec.owner), shlex.quote(ctx.spec.home)
    for action in actions:
        if action.kind == "create-user":
            ctx.host.sudo(f"useradd -m -d {home} -s /bin/bash {owner}", what="useradd")
        elif action.kind == "add-to-group":
            ctx.host.sudo(f"usermod -a -G {owner} {WEB_USER}", what="usermod")
            ctx.notes["apache_restart"] = True  # Apache sees new groups only after a restart
        elif action.kind == "chmod-home":
            ctx.host.sudo(f"chmod g+x {home}")


STEP = Step("owner", "create the owner user", gather, decide, apply)
