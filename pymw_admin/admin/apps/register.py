"""The app (and the bundles' platforms) in project.xml and the database, through ``bin/xadd``.

xadd (server 1.6.2) reads project.xml and inserts what the database lacks; it changes a listed
app's user-friendly name, never removes anything. The feeder is told to re-read its tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymw_admin.admin import boincxml
from pymw_admin.admin.apps.common import as_owner, project_path, quote_sql, sql_rows
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.project import Project
from pymw_admin.errors import RemoteError


@dataclass(frozen=True)
class RegisterFacts:
    listed_apps: dict[str, str]  # project.xml: name -> user-friendly name
    listed_platforms: frozenset[str]
    db_app: str | None  # the app's user-friendly name in the database, None when absent
    db_platforms: frozenset[str]


def gather(ctx: Context, app: AppSpec) -> RegisterFacts:
    host, spec = ctx.host, ctx.spec
    text = host.read_text(project_path(spec, "project.xml"), user=spec.owner)
    if text is None:
        raise RemoteError(f"no project at {spec.project_dir} (no project.xml): run "
                          "`pymw-admin init-project` first")
    rows = sql_rows(host, spec, f"SELECT user_friendly_name FROM app WHERE name="
                                f"{quote_sql(app.name)}")
    platforms = sql_rows(host, spec, "SELECT name FROM platform")
    return RegisterFacts(boincxml.project_apps(text), boincxml.project_platforms(text),
                         rows[0][0] if rows else None, frozenset(r[0] for r in platforms))


def decide(facts: RegisterFacts, spec: Project, app: AppSpec) -> list[Action]:
    actions = []
    if facts.listed_apps.get(app.name) != app.friendly_name:
        actions.append(Action("list-app", f"{app.name} in project.xml"))
    wanted_platforms = sorted(app.digests())
    for platform in wanted_platforms:
        if platform not in facts.listed_platforms and platform not in facts.db_platforms:
            actions.append(Action("list-platform", f"{platform} in project.xml"))
    if facts.db_app != app.friendly_name or any(
            p not in facts.db_platforms for p in wanted_platforms):
        actions.append(Action("xadd", f"app {app.name} into the database"))
    return actions


def apply(ctx: Context, actions: list[Action], app: AppSpec) -> None:
    host, spec = ctx.host, ctx.spec
    kinds = {a.kind for a in actions}
    if kinds & {"list-app", "list-platform"}:
        path = project_path(spec, "project.xml")
        text = host.read_text(path, user=spec.owner) or "<boinc>\n</boinc>\n"
        text = boincxml.add_app(text, app.name, app.friendly_name)
        for platform in sorted(app.digests()):
            text = boincxml.add_platform(text, platform)
        host.write_file(path, text, mode=0o644, owner=spec.owner)
    if kinds & {"xadd", "list-platform"}:
        out = as_owner(host, spec, "bin/xadd", what="bin/xadd")
        if "error" in out.lower():
            raise RemoteError(f"bin/xadd: {out.strip().splitlines()[-1]}")
        as_owner(host, spec, "touch reread_db")  # the feeder re-reads apps and versions
