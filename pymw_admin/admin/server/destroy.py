"""``destroy-project``: remove what init-project made for one project, in one plan step.

Only a project pymw-admin made is removed: the root-only marker in /etc/pymw-admin/NAME/ names
its directory and owner, and nothing else is trusted. Removed: the daemons (bin/stop, then any
process still working in the directory), the owner's cron line for it, the Apache site, the
database and its user, the project directory (by the owner: root never walks a tree the owner can
write) and /etc/pymw-admin/NAME/. The owner account, packages and BOINC builds stay.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server import cron, database, services
from pymw_admin.admin.server.os_check import parse_marker
from pymw_admin.admin.server.project import SYSTEM_PATH
from pymw_admin.admin.server.spec import ProjectSpec


@dataclass(frozen=True)
class Remains:
    marker: bool
    marker_dir: str = ""
    marker_owner: str = ""
    project_dir: bool = False
    database: bool = False
    db_user_hosts: tuple[str, ...] = ()
    site: bool = False
    cron_line: bool = False
    secrets: bool = False


def gather(ctx: Context) -> Remains:
    host, spec = ctx.host, ctx.wanted
    marker = host.read_text(spec.marker_file)
    if marker is None:
        return Remains(False, secrets=host.exists(spec.secrets_dir))
    found = parse_marker(marker)
    project_dir = found.get("project_dir", "")
    owner = found.get("owner", "")
    admin = database.admin_mysql(spec)
    names = host.sudo(
        f"{admin} -N -B -e {shlex.quote(f'SHOW DATABASES LIKE {spec.db_name!r}')}; "
        f"{admin} -N -B -e \"SELECT CONCAT('@user ', Host) FROM mysql.user "
        f"WHERE User = '{spec.db_user}'\"", check=False).stdout.split()
    tab = host.sudo(f"crontab -l -u {shlex.quote(owner)} 2>/dev/null", check=False).stdout \
        if owner else ""
    owned = ProjectSpec(spec.name, spec.url_base, spec.host_name, owner=owner or spec.owner,
                        project_dir=project_dir or spec.project_dir)
    return Remains(
        True, project_dir, owner,
        project_dir=bool(project_dir) and host.exists(project_dir),
        database=spec.db_name in names,
        db_user_hosts=tuple(names[i + 1] for i, word in enumerate(names[:-1])
                            if word == "@user"),
        site=host.exists(spec.apache_site) or host.exists(
            spec.apache_site.replace("sites-available", "sites-enabled")),
        cron_line=any(cron.is_ours(line, owned) for line in tab.splitlines()),
        secrets=True,
    )


def decide(facts: Remains, spec: ProjectSpec) -> list[Action]:
    if not facts.marker:
        if facts.secrets:  # a half-removed project: its last traces
            return [Action("remove-secrets", spec.secrets_dir)]
        return []
    actions = []
    if facts.project_dir:
        actions.append(Action("stop-daemons", facts.marker_dir))
    if facts.cron_line:
        actions.append(Action("remove-cron-line", facts.marker_owner))
    if facts.site:
        actions.append(Action("remove-site", spec.apache_site))
    if facts.database or facts.db_user_hosts:
        actions.append(Action("drop-database", f"{spec.db_name} and its user"))
    if facts.project_dir:
        actions.append(Action("remove-directory", facts.marker_dir))
    actions.append(Action("remove-secrets", spec.secrets_dir))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    host, spec = ctx.host, ctx.wanted
    facts = gather(ctx)
    owner, project_dir = facts.marker_owner, facts.marker_dir
    owned = ProjectSpec(spec.name, spec.url_base, spec.host_name, owner=owner or spec.owner,
                        project_dir=project_dir or spec.project_dir)
    for action in actions:
        if action.kind == "stop-daemons":
            q = shlex.quote(project_dir)
            host.run(f"cd {q} && test -x bin/stop && PATH={SYSTEM_PATH} bin/stop; "
                     # what bin/stop left, and masters of runs: every process of the owner
                     # working in the directory
                     f"for p in /proc/[0-9]*; do case \"$(readlink $p/cwd)/\" in {q}/*) "
                     "kill -KILL ${p#/proc/} 2>/dev/null;; esac; done; true",
                     user=owner, check=False, timeout=120)
        elif action.kind == "remove-cron-line":
            tab = host.sudo(f"crontab -l -u {shlex.quote(owner)} 2>/dev/null", check=False).stdout
            kept = [line for line in tab.splitlines() if not cron.is_ours(line, owned)]
            host.sudo(f"crontab -u {shlex.quote(owner)} -", stdin="\n".join(kept) + "\n",
                      what="crontab")
        elif action.kind == "remove-site":
            host.sudo(f"a2dissite -q pymw-{spec.name} 2>/dev/null; "
                      f"rm -f {shlex.quote(spec.apache_site)}", what="removing the Apache site")
            if services.is_running(host, "apache2"):
                services.control(host, "apache2", "reload")
        elif action.kind == "drop-database":
            drops = "".join(f"DROP USER IF EXISTS '{spec.db_user}'@'{where}';\n"
                            for where in facts.db_user_hosts)
            host.sudo(database.admin_mysql(spec),
                      stdin=f"DROP DATABASE IF EXISTS `{spec.db_name}`;\n{drops}",
                      what="dropping the database and its user")
        elif action.kind == "remove-directory":
            host.run(f"rm -rf {shlex.quote(project_dir)}", user=owner,
                     what="removing the project directory")
        elif action.kind == "remove-secrets":
            host.sudo(f"rm -rf {shlex.quote(spec.secrets_dir)}", what="removing the secrets")


STEP = Step("destroy", "remove the project", gather, decide, apply,
            hint="fix the cause and run the same command again: it removes what is left")
