"""``deploy-app --retire-older``: deprecate the app's versions older than the current one, per
platform deployed, so the scheduler sends only the current version's work to new hosts.

The current version of a platform is the one holding the bundle being deployed; when that is
still to be added (a dry run, or before the versions step), every version in the database is
older. BOINC keeps deprecated versions' files and rows (results in flight still name them); the
feeder rereads app versions when ``reread_db`` appears in the project directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymw_admin.admin.apps import versions
from pymw_admin.admin.apps.common import as_owner, quote_sql, sql_rows
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.server.spec import ProjectSpec


@dataclass(frozen=True)
class RetireFacts:
    dirs: dict[tuple[int, str], str]  # (version, platform) -> bundle marker, as versions reads
    live: frozenset[tuple[int, str]]  # app versions in the database not yet deprecated
    task_key: str | None = None  # the project's public task key, part of a version's marker


def gather(ctx: Context, app: AppSpec) -> RetireFacts:
    if not app.retire_older:
        return RetireFacts({}, frozenset())
    found = versions.gather(ctx, app)
    rows = sql_rows(ctx.host, ctx.spec,
                    "SELECT av.version_num, p.name FROM app_version av JOIN app a ON "
                    "av.appid=a.id JOIN platform p ON av.platformid=p.id WHERE av.deprecated=0 "
                    f"AND a.name={quote_sql(app.name)}")
    return RetireFacts(found.dirs, frozenset((int(v), p) for v, p in rows), found.task_key)


def decide(facts: RetireFacts, spec: ProjectSpec, app: AppSpec) -> list[Action]:
    if not app.retire_older:
        return []
    actions = []
    for platform, digest in sorted(app.digests().items()):
        current = [v for (v, p), d in facts.dirs.items()
                   if p == platform and d == versions.marker(digest, facts.task_key)]
        newest = max(current, default=None)
        older = sorted(v for v, p in facts.live if p == platform
                       and (newest is None or v < newest))
        for version in older:
            actions.append(Action("deprecate", f"{app.name} {version} {platform}"))
    return actions


def apply(ctx: Context, actions: list[Action], app: AppSpec) -> None:
    conditions = []
    for action in actions:
        _name, version, platform = action.detail.split()
        conditions.append(f"(av.version_num={int(version)} AND p.name={quote_sql(platform)})")
    if not conditions:
        return
    sql_rows(ctx.host, ctx.spec,
             "UPDATE app_version av JOIN app a ON av.appid=a.id JOIN platform p ON "
             f"av.platformid=p.id SET av.deprecated=1 WHERE a.name={quote_sql(app.name)} AND "
             f"({' OR '.join(conditions)})")
    as_owner(ctx.host, ctx.spec, "touch reread_db", what="asking the feeder to reread")
