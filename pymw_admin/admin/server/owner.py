"""The project's owner account (boincadm by default) and its home: the daemons and make_project
run as it, and everything of the project lives under its home.

The home must be the owner's own directory: a home left by root (made before the account, or
the account recreated) stops the owner from making anything in it, the run venv included. Only
the home directory itself is given back, never recursively: root does not walk a tree the owner
can write. Apache (www-data) joins the owner's group: BOINC's upload and log directories are
2770, and Apache reaches the project's html/ through the home with group access.
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
    home_mode: int | None  # octal permission bits of ~owner; None: there is no home
    home_owner: str = ""  # "user:group" of ~owner, as stat names them
    owner_group: str = ""  # the owner's login group ("" while there is no owner)


def gather(ctx: Context) -> OwnerFacts:
    owner, home = shlex.quote(ctx.wanted.owner), shlex.quote(ctx.wanted.home)
    out = ctx.host.run(
        f"id -u {owner} >/dev/null 2>&1 && echo exists; echo @@; id -gn {owner} 2>/dev/null; "
        f"echo @@; id -nG {WEB_USER} 2>/dev/null; echo @@; stat -L -c '%a %U:%G' {home} "
        "2>/dev/null", check=False
    ).stdout
    exists, group, web_groups, home = ([*out.split("@@"), "", "", ""])[:4]
    mode, _, home_owner = home.strip().partition(" ")
    return OwnerFacts(
        exists="exists" in exists.split(),
        web_in_group=ctx.wanted.owner in web_groups.split(),
        home_mode=int(mode, 8) if mode.isdigit() else None,
        home_owner=home_owner.strip(),
        owner_group=group.strip(),
    )


def decide(facts: OwnerFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    wanted = f"{spec.owner}:{facts.owner_group or spec.owner}"
    if not facts.exists:
        actions.append(Action("create-user", spec.owner))
    if facts.home_mode is None:
        if facts.exists:  # useradd -m makes the home of a new account
            actions.append(Action("create-home", f"{spec.home} ({wanted}, 0750)"))
    elif facts.home_owner != wanted:
        # useradd -m keeps an existing directory as it is: it needs giving back too
        actions.append(Action("chown-home", f"{wanted} {spec.home} (owned by "
                                            f"{facts.home_owner or 'nobody known'})"))
    if not facts.web_in_group:
        actions.append(Action("add-to-group", f"{WEB_USER} -> {spec.owner}"))
    # Apache must traverse ~owner to the project's html/ (group access is enough); a home made
    # by create-home has it already
    if (facts.home_mode is None and not facts.exists) or (
            facts.home_mode is not None and facts.home_mode & 0o010 == 0):
        actions.append(Action("chmod-home", f"g+x {spec.home}"))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    owner, home = shlex.quote(ctx.wanted.owner), shlex.quote(ctx.wanted.home)
    for action in actions:
        if action.kind == "create-user":
            # a group of that name can outlive its user (userdel keeps a group with members,
            # and www-data is one): the account takes it as its own again
            ctx.host.sudo(f"if getent group {owner} >/dev/null; then g='-g {owner}'; else g=; fi;"
                          f" useradd -m -d {home} -s /bin/bash $g {owner}", what="useradd")
        elif action.kind == "create-home":
            ctx.host.sudo(f"mkdir -m 0750 {home} && chown {owner}: {home}",
                          what=f"making {ctx.wanted.home}")
        elif action.kind == "chown-home":
            # the directory itself only (no -R): root never walks what the owner can write
            ctx.host.sudo(f"chown {owner}: {home}", what=f"giving {ctx.wanted.home} to "
                                                         f"{ctx.wanted.owner}")
        elif action.kind == "add-to-group":
            # Apache's workers see the new group only after a restart: the apache step reads
            # that from a running worker, so a re-run after a failure in between still restarts
            ctx.host.sudo(f"usermod -a -G {owner} {WEB_USER}", what="usermod")
        elif action.kind == "chmod-home":
            ctx.host.sudo(f"chmod g+x {home}")


STEP = Step("owner", "create the owner user and its home", gather, decide, apply)
