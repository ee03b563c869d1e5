"""``pymw-admin restore ARCHIVE --host NEW``: rebuild a backed-up project on another host.

The plan is init-project's (packages, owner, database, BOINC build, make_project, Apache, cron,
daemons, the check from here) with the archive put in between: after make_project has made a
fresh project, its owner unpacks the archive's project files over it (configuration, keys, apps,
work, uploads, pymw-admin's state), root loads the database dump, config.xml and the database
follow the URL and host name asked for, and init-project's project step then writes the new
host's database password into config.xml. Every step starts from facts, so an interrupted
restore continues where it stopped; root-only stamps in /etc/pymw-admin/NAME/ record which
archive was claimed, unpacked and loaded.

First, before anything changes: a host that already has a project by this name which this
archive did not restore (another project, or this same one still live there) is refused.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass

from lxml import etree

from pymw_admin.admin import boincxml
from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server import (
    archive,
    database,
    os_check,
    project,
    provision,
)
from pymw_admin.admin.server.os_check import OSFacts, parse_marker
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import RemoteError, UsageError

ARCHIVE_NOTE = "archive"


def the_archive(ctx: Context) -> archive.Archive:
    found = ctx.notes.get(ARCHIVE_NOTE)
    if not isinstance(found, archive.Archive):
        raise TypeError("the restore steps need the archive in ctx.notes['archive']")
    return found


def stamp(spec: ProjectSpec, what: str) -> str:
    """A root-only file holding the id of the archive this host's project was restored from:
    ``restore`` (claimed), ``restored-files``, ``restored-database``."""
    return f"{spec.secrets_dir}/{what}"


def _stamp_says(ctx: Context, what: str) -> str:
    return (ctx.host.read_text(stamp(ctx.wanted, what)) or "").strip()


def _write_stamp(ctx: Context, what: str) -> None:
    spec = ctx.wanted
    ctx.host.sudo(f"install -d -m 700 -o root -g root {shlex.quote(spec.secrets_dir)}")
    ctx.host.write_file(stamp(spec, what), the_archive(ctx).manifest.id + "\n", mode=0o600)


# -- the claim: refuse another project, before anything changes --------------------------------
@dataclass(frozen=True)
class ClaimFacts:
    os: OSFacts
    host: str
    archive_id: str
    archive_identity: str
    claimed: str  # the archive id of a restore under way or done here ("" = none)
    identity: str = ""  # the identity of the project by this name on the host ("" = none)


def claim_gather(ctx: Context) -> ClaimFacts:
    found = os_check.gather(ctx)
    manifest = the_archive(ctx).manifest
    existing = ""
    if found.marker:
        recorded = parse_marker(ctx.host.read_text(ctx.wanted.marker_file) or "")
        where = recorded.get("project_dir") or ctx.wanted.project_dir
        who = recorded.get("owner") or ctx.wanted.owner
        key = ctx.host.read_text(f"{where}/keys/code_sign_public", user=who)
        existing = archive.identity(key.encode() if key else None)
    return ClaimFacts(found, ctx.host.name, manifest.id, manifest.identity,
                      _stamp_says(ctx, "restore"), existing)


def claim_decide(facts: ClaimFacts, spec: ProjectSpec) -> list[Action]:
    if facts.claimed == facts.archive_id:
        return []  # this archive's restore, under way or done: continue or converge
    if facts.os.marker:
        if facts.identity and facts.identity == facts.archive_identity:
            raise UsageError(f"{facts.host} already has project {spec.name} (this same project, "
                             "not restored from this archive): restore onto another host, or "
                             f"remove it there first (destroy-project {spec.name})")
        raise UsageError(f"{facts.host} already has a different project {spec.name} (its "
                         "code-signing key is not the archive's): nothing was changed; restore "
                         f"onto another host, or remove it there first (destroy-project "
                         f"{spec.name})")
    os_check.decide(facts.os, spec)  # the OS, and no project directory or database of the name
    return [Action("claim", f"restore {spec.name} from archive {facts.archive_id[:12]}")]


def claim_apply(ctx: Context, actions: list[Action]) -> None:
    _write_stamp(ctx, "restore")


CLAIM = Step("restore_claim", "check the host has no other project by this name", claim_gather,
             claim_decide, claim_apply)


# -- the project's files ------------------------------------------------------------------------
@dataclass(frozen=True)
class StampFacts:
    done: bool
    count: int  # files (or bytes of the dump) the archive holds


def files_gather(ctx: Context) -> StampFacts:
    the = the_archive(ctx)
    return StampFacts(_stamp_says(ctx, "restored-files") == the.manifest.id, the.manifest.files)


def files_decide(facts: StampFacts, spec: ProjectSpec) -> list[Action]:
    if facts.done:
        return []
    return [Action("unpack", f"{facts.count} files into {spec.project_dir}")]


def files_apply(ctx: Context, actions: list[Action]) -> None:
    spec = ctx.wanted
    # by the owner, in the owner's tree; modes as in the archive (keys stay 0600)
    ctx.host.run(f"cd {shlex.quote(spec.project_dir)} && tar -xzpf - --no-same-owner",
                 user=spec.owner, stdin=the_archive(ctx).project_tar(), timeout=3600,
                 what="unpacking the project's files")
    _write_stamp(ctx, "restored-files")


FILES = Step("restore_files", "unpack the project's files from the archive", files_gather,
             files_decide, files_apply)


# -- the database -----------------------------------------------------------------------------
def db_gather(ctx: Context) -> StampFacts:
    the = the_archive(ctx)
    return StampFacts(_stamp_says(ctx, "restored-database") == the.manifest.id,
                      len(the.database))


def db_decide(facts: StampFacts, spec: ProjectSpec) -> list[Action]:
    if facts.done:
        return []
    return [Action("load-dump", f"{facts.count} bytes into database {spec.db_name}")]


def db_apply(ctx: Context, actions: list[Action]) -> None:
    spec = ctx.wanted
    # the dump drops and recreates each table: make_project's empty schema goes
    ctx.host.sudo(f"{database.admin_mysql(spec)} {shlex.quote(spec.db_name)}",
                  stdin=the_archive(ctx).database, timeout=3600, what="loading the database dump")
    _write_stamp(ctx, "restored-database")


DATABASE = Step("restore_database", "load the database dump", db_gather, db_decide, db_apply,
                hint="check MariaDB on the host and run the same restore again")


# -- a new URL or host name -------------------------------------------------------------------
URL_COLUMNS = (("app_version", "xml_doc"), ("workunit", "xml_doc"), ("result", "xml_doc_in"))


def moved_config(config_xml: str, old_base: str, new_base: str, host_name: str) -> str:
    """config.xml with every setting that starts with the old URL base moved to the new one,
    and <host> set (lxml keeps the rest as it was)."""
    root = etree.fromstring(config_xml.encode())
    cfg = root.find("config")
    if cfg is None:
        raise RemoteError("config.xml has no <config> element")
    if old_base != new_base:
        for node in cfg:
            text = (node.text or "").strip()
            if isinstance(node.tag, str) and text.startswith(old_base):
                node.text = new_base + text[len(old_base):]
    host = cfg.find("host")
    if host is None:
        host = etree.SubElement(cfg, "host")
    host.text = host_name
    return etree.tostring(root, encoding="unicode") + "\n"


@dataclass(frozen=True)
class RehostFacts:
    old_base: str  # the URL base the project has now (config.xml's; else the archive's)
    master_url: str  # config.xml's, on the host
    host: str  # config.xml's <host>
    db_old_urls: int  # rows whose XML names the old URL base (-1: the dump is not in yet)
    schedulers_old: bool = False  # html/user/schedulers.txt names the old URL base


def _sql_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def current_base(ctx: Context, config_xml: str) -> str:
    """The URL base the project has now: config.xml's master_url less NAME/ (the archive's
    while there is no config.xml)."""
    master_url = boincxml.config_value(config_xml, "master_url") if config_xml else ""
    suffix = f"{ctx.wanted.name}/"
    if master_url.endswith(suffix):
        return master_url[: -len(suffix)]
    return the_archive(ctx).manifest.project.url_base


def _schedulers(spec: ProjectSpec) -> str:
    return f"{spec.project_dir}/html/user/schedulers.txt"


def rehost_gather(ctx: Context) -> RehostFacts:
    spec = ctx.wanted
    text = ctx.host.read_text(project.config_path(spec), user=spec.owner) or ""
    old = current_base(ctx, text)
    count, schedulers_old = 0, False
    if old != spec.url_base and _stamp_says(ctx, "restored-database") != (
            the_archive(ctx).manifest.id):
        count = -1  # the dump is not loaded yet: its URLs move once it is
    elif old != spec.url_base:
        like = _sql_text(old).replace("%", "\\%").replace("_", "\\_")
        query = " + ".join(f"(SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%{like}%')"
                           for table, column in URL_COLUMNS)
        out = database.sql(ctx.host, spec, f"USE `{spec.db_name}`; SELECT {query};",
                           what="counting old URLs").strip()
        count = int(out) if out.isdigit() else 0
    if old != spec.url_base:
        schedulers_old = old in (ctx.host.read_text(_schedulers(spec), user=spec.owner) or "")
    return RehostFacts(old, boincxml.config_value(text, "master_url") if text else "",
                       boincxml.config_value(text, "host") if text else "", count,
                       schedulers_old)


def rehost_decide(facts: RehostFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    moves = []
    if facts.master_url != spec.master_url:
        moves.append(f"URLs {facts.old_base} -> {spec.url_base}")
    if facts.host != spec.host_name:
        moves.append(f"<host> {facts.host or '(none yet)'} -> {spec.host_name}")
    if moves:
        actions.append(Action("config", "config.xml: " + ", ".join(moves)))
    if facts.db_old_urls:
        rows = "rows" if facts.db_old_urls < 0 else f"{facts.db_old_urls} row(s)"
        actions.append(Action("database-urls", f"{rows}: {facts.old_base} -> {spec.url_base}"))
    if facts.schedulers_old:
        actions.append(Action("schedulers", f"html/user/schedulers.txt -> {spec.url_base}"))
    return actions


def rehost_apply(ctx: Context, actions: list[Action]) -> None:
    spec = ctx.wanted
    path = project.config_path(spec)
    old = current_base(ctx, ctx.host.read_text(path, user=spec.owner) or "")
    for action in actions:
        if action.kind == "config":
            text = ctx.host.read_text(path, user=spec.owner) or ""
            ctx.host.write_file(path, moved_config(text, old, spec.url_base, spec.host_name),
                                mode=0o640, owner=spec.owner)
        elif action.kind == "database-urls":
            database.sql(ctx.host, spec, f"USE `{spec.db_name}`;\n" + "".join(
                f"UPDATE {table} SET {column} = REPLACE({column}, '{_sql_text(old)}', "
                f"'{_sql_text(spec.url_base)}');\n" for table, column in URL_COLUMNS),
                what="moving the URLs in the database")
        elif action.kind == "schedulers":
            text = ctx.host.read_text(_schedulers(spec), user=spec.owner) or ""
            ctx.host.write_file(_schedulers(spec), text.replace(old, spec.url_base),
                                mode=0o644, owner=spec.owner)


REHOST = Step("restore_rehost", "move the project to this host's URL and host name",
              rehost_gather, rehost_decide, rehost_apply)

PROJECT_SETTINGS = dataclasses.replace(
    project.STEP, name="project_settings",
    title="set this host's database password in the restored config.xml")

# init-project's plan, with the archive put in right after make_project (a step init-project
# gains is a step restore gains)
_MADE = provision.STEPS.index(project.STEP) + 1
RESTORE_STEPS: tuple[Step, ...] = (
    CLAIM, *provision.STEPS[:_MADE], FILES, DATABASE, REHOST, PROJECT_SETTINGS,
    *provision.STEPS[_MADE:],
)


def wanted_spec(manifest: archive.Manifest, *, url_base: str = "", host_name: str = "",
                boinc_source: str = "") -> ProjectSpec:
    """The project to make on the new host: the archive's, with the new URL base, host name and
    BOINC source when given. Owner and directory stay (BOINC's files name the directory)."""
    info = manifest.project
    source = boinc_source or info.boinc_source
    if not source:
        raise UsageError("the archive does not say which BOINC source the project was built "
                         "from: give --boinc-source")
    return ProjectSpec(name=info.name, url_base=url_base or info.url_base,
                       host_name=host_name or info.host_name, owner=info.owner,
                       project_dir=info.project_dir, long_name=info.long_name,
                       boinc_source=source)
