"""make_project, then the schema, and the database password into config.xml.

make_project runs as the owner with ``--no_db`` so no password is ever on its command line; this
step loads BOINC's schema itself and writes the password into config.xml (mode 0640: the owner and
Apache's group only). While make_project runs, a root-only marker (``spec.making_marker``) says
so: if it fails, or the connection or the client dies in the middle, the next run finds the marker
and removes the half-made directory, so a re-run converges. A directory this step did not create is
never removed: an existing project directory without config.xml and without the marker is refused
(it may hold the only copy of a project's keys).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from lxml import etree

from pymw_admin.admin import boincxml
from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import Host, root_only_parents
from pymw_admin.admin.server import database
from pymw_admin.admin.server.boinc_build import parse_source, tree_dir
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import PymwError, RemoteError, UsageError

SCHEMA = ("schema.sql", "constraints.sql", "content.sql")
# BOINC's tools are `#!/usr/bin/env python` scripts: keep a plain system PATH (no pyenv shims)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProjectFacts:
    config_xml: bool
    tables: int
    config_password_ok: bool
    config_mode_ok: bool
    db_revision: bool
    dir_exists: bool = False  # the project directory exists (it always does with config.xml)
    half_made: bool = False  # make_project was cut short here (its marker is still there)
    rpc_delay: bool = True  # config.xml tells clients when to come back (<next_rpc_delay>)
    daemons_ok: bool = True  # the feeder drops stale work; it and the transitioner look often
    keys_ok: bool = True  # the private keys have KEY_MODES (or are not there)


# make_project's feeder keeps a slot until a host takes its work: work no attached host can run
# (an app with only a Windows version, work units deleted after they were fed) can hold every
# slot, and no other work is sent. --purge_stale (minutes) lets untaken work make room again.
# (--allapps would share slots by app, but its feeder dies on a project with no app yet.)
# A new work unit waits for the transitioner to make its replicas, then for the feeder to load
# them, each idle daemon sleeping 5 s by default: a client that asks in between hears "no work"
# and spends a scheduler request for nothing. A master's tasks are often short, so they look
# every second (an indexed query each, on an idle project).
DAEMON_SLEEP = 1
FEEDER = boincxml.Daemon(f"feeder -d 3 --purge_stale 1 --sleep_interval {DAEMON_SLEEP}",
                         "feeder.pid", "feeder.log")
TRANSITIONER = boincxml.Daemon(f"transitioner -d 3 --sleep_interval {DAEMON_SLEEP}",
                               "transitioner.pid", "transitioner.log")
TUNED_DAEMONS = (FEEDER, TRANSITIONER)


# make_project writes its keys with the umask's 0644. code_sign_private signs the app versions
# every volunteer's client runs, and only update_versions (as the owner) reads it; upload_private
# is read by the daemons (the owner) and the scheduler (Apache's user, in the owner's group).
# A key that is not there (code_sign_private taken offline, as BOINC advises) is left so.
KEY_MODES = {"code_sign_private": 0o600, "upload_private": 0o640}


def config_path(spec: Project) -> str:
    return f"{spec.project_dir}/config.xml"


def set_db_password(config_xml: str, password: str) -> str:
    """config.xml with <db_passwd> set (lxml keeps the rest of the document as it was)."""
    root = etree.fromstring(config_xml.encode())
    cfg = root.find("config")
    if cfg is None:
        raise RemoteError("config.xml has no <config> element")
    node = cfg.find("db_passwd")
    if node is None:
        node = etree.SubElement(cfg, "db_passwd")
    node.text = password
    return etree.tostring(root, encoding="unicode") + "\n"


# clients look in this often while no master has work out (the BOINC interface shortens it while
# one has): a client that heard "no work" would otherwise back off for many minutes
IDLE_RPC_DELAY = 60


def has_rpc_delay(config_xml: str) -> bool:
    try:
        return etree.fromstring(config_xml.encode()).find("config/next_rpc_delay") is not None
    except etree.XMLSyntaxError:
        return True  # not ours to repair here


def set_rpc_delay(config_xml: str) -> str:
    root = etree.fromstring(config_xml.encode())
    cfg = root.find("config")
    if cfg is None:
        raise RemoteError("config.xml has no <config> element")
    if cfg.find("next_rpc_delay") is None:
        etree.SubElement(cfg, "next_rpc_delay").text = str(IDLE_RPC_DELAY)
    return etree.tostring(root, encoding="unicode") + "\n"


def db_password_in(config_xml: str) -> str:
    try:
        node = etree.fromstring(config_xml.encode()).find("config/db_passwd")
    except etree.XMLSyntaxError:
        return ""
    return (node.text or "").strip() if node is not None else ""


def gather(ctx: Context) -> ProjectFacts:
    host, spec = ctx.host, ctx.wanted
    # the project tree is the owner's: it is read as the owner, never as root
    text = host.read_text(config_path(spec), user=spec.owner)
    if text is None or host.exists(spec.making_marker):
        # the marker outlives make_project only when it was cut short: config.xml or not,
        # the directory is not a whole project
        exists = host.exists(spec.project_dir)
        return ProjectFacts(False, 0, False, False, False, dir_exists=exists,
                            half_made=exists and host.exists(spec.making_marker))
    count = host.sudo(
        f"{database.admin_mysql(spec)} -N -B -e \"SELECT COUNT(*) FROM information_schema.tables "
        f"WHERE table_schema='{spec.db_name}'\"", check=False
    ).stdout.strip()
    password = database.db_password(host, spec)
    modes = file_modes(host, spec, ["config.xml", *(f"keys/{name}" for name in KEY_MODES)])
    rev = host.run(f"test -s {shlex.quote(spec.project_dir)}/db_revision", user=spec.owner,
                   check=False).ok
    return ProjectFacts(True, int(count) if count.isdigit() else 0,
                        bool(password) and db_password_in(text) == password,
                        modes.get("config.xml") == "640", rev, dir_exists=True,
                        rpc_delay=has_rpc_delay(text), daemons_ok=daemons_tuned(text),
                        keys_ok=all(modes.get(f"keys/{name}", f"{mode:o}") == f"{mode:o}"
                                    for name, mode in KEY_MODES.items()))


def file_modes(host: Host, spec: ProjectSpec, names: list[str]) -> dict[str, str]:
    """Octal modes of project-relative files, read as the owner in one call; a missing file is
    left out (stat says so on stderr and lists the others)."""
    quoted = " ".join(shlex.quote(name) for name in names)
    listed = host.run(f"cd {shlex.quote(spec.project_dir)} && stat -c '%n %a' -- {quoted}",
                      user=spec.owner, check=False).stdout
    return dict(line.rsplit(" ", 1) for line in listed.splitlines() if " " in line)


def decide(facts: ProjectFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    if not facts.config_xml and facts.dir_exists and not facts.half_made:
        # make_project would refuse it anyway, and a failure must never lead to removing it
        raise UsageError(f"{spec.project_dir} exists but has no config.xml; restore config.xml "
                         "or remove the directory yourself")
    if facts.half_made:
        actions.append(Action("remove-half-made", spec.project_dir))
    if not facts.config_xml:
        actions.append(Action("make_project", f"{spec.name} in {spec.project_dir}"))
    if facts.tables == 0:
        actions.append(Action("load-schema", spec.db_name))
    if not facts.config_password_ok or not facts.config_mode_ok:
        actions.append(Action("set-db-password", "config.xml"))
    if not facts.db_revision:
        actions.append(Action("db-revision", "db_revision"))
    if not facts.config_xml or not facts.rpc_delay:
        actions.append(Action("next-rpc-delay", f"clients look in every {IDLE_RPC_DELAY} s"))
    if not facts.config_xml or not facts.daemons_ok:
        actions.append(Action("daemon-options", "work nobody takes leaves the feeder's slots; "
                              "new work reaches the scheduler within seconds"))
    if not facts.config_xml or not facts.keys_ok:
        actions.append(Action("protect-keys", ", ".join(
            f"keys/{name} {mode:o}" for name, mode in KEY_MODES.items())))
    return actions


def daemons_tuned(config_xml: str) -> bool:
    try:
        configured = boincxml.configured_daemons(config_xml)
    except PymwError:  # not XML: set-db-password's rewrite says so
        return False
    return all(getattr(configured.get(d.pid_file), "cmd", None) == d.cmd for d in TUNED_DAEMONS)


def make_project_command(spec: ProjectSpec, tree: str, hostname: str) -> str:
    args = [
        "./make_project", "--no_query", "--no_db", "--srcdir", tree,
        "--project_root", spec.project_dir, "--project_host", hostname,
        "--url_base", spec.url_base, "--db_name", spec.db_name, "--db_user", spec.db_user,
        "--user_name", spec.owner,
    ]
    if spec.db_host:
        args += ["--db_host", spec.db_host]
    args += [spec.name, spec.long_name]
    env = f"env USER={spec.owner} HOME={spec.home} PATH={SYSTEM_PATH}"
    return f"cd {shlex.quote(tree)}/tools && {env} " + " ".join(shlex.quote(a) for a in args)


def apply(ctx: Context, actions: list[Action]) -> None:
    host, spec = ctx.host, ctx.wanted
    tree = tree_dir(parse_source(spec.boinc_source))
    hostname = spec.host_name or ctx.notes.get("hostname", "")
    marker = shlex.quote(spec.making_marker)
    for action in actions:
        if action.kind == "remove-half-made":
            # made by make_project as the owner: the owner removes it (root never walks a tree
            # the owner can write)
            ctx.log(f"removing {spec.project_dir}, left half-made by an interrupted run")
            host.run(f"rm -rf {shlex.quote(spec.project_dir)}", user=spec.owner,
                     what="removing the half-made project directory")
        elif action.kind == "make_project":
            parent = shlex.quote(spec.project_dir.rsplit("/", 1)[0] or "/")
            owner = shlex.quote(spec.owner)
            # in the owner's home the owner makes it; elsewhere root, where only root can write
            made = host.run(f"test -d {parent} || install -d -m 755 {parent}", user=spec.owner,
                            check=False).ok
            if not made:
                host.sudo(f"{root_only_parents(spec.project_dir)} && "
                          f"install -d -m 755 -o {owner} -g {owner} {parent}",
                          what=f"making {parent}")
            if host.exists(spec.project_dir):  # appeared since gather: not ours to remove
                raise UsageError(f"{spec.project_dir} exists but has no config.xml; restore "
                                 "config.xml or remove the directory yourself")
            host.sudo(f"install -d -m 700 {shlex.quote(spec.secrets_dir)} && "
                      f"date +%s > {marker}", what="marking make_project as under way")
            result = host.run(make_project_command(spec, tree, hostname), user=spec.owner,
                              check=False, timeout=600)
            if not result.ok:
                # make_project made the directory (it was absent just above): nothing half-made
                host.run(f"rm -rf {shlex.quote(spec.project_dir)}", user=spec.owner,
                         check=False)
                raise RemoteError(f"make_project failed on {host.name} (exit "
                                  f"{result.exit_code}): {result.last_lines()}")
            host.sudo(f"rm -f {marker}")
        elif action.kind == "load-schema":
            files = " ".join(shlex.quote(f"{tree}/db/{name}") for name in SCHEMA)
            host.sudo(f"cat {files} | {database.admin_mysql(spec)} {spec.db_name}",
                      what="loading BOINC's schema")
        elif action.kind == "set-db-password":
            text = host.read_text(config_path(spec), user=spec.owner) or ""
            host.write_file(config_path(spec),
                            set_db_password(text, database.db_password(host, spec)),
                            mode=0o640, owner=spec.owner)
        elif action.kind == "next-rpc-delay":
            text = host.read_text(config_path(spec), user=spec.owner) or ""
            host.write_file(config_path(spec), set_rpc_delay(text), mode=0o640, owner=spec.owner)
        elif action.kind == "daemon-options":
            text = host.read_text(config_path(spec), user=spec.owner) or ""
            host.write_file(config_path(spec), boincxml.set_daemons(text, list(TUNED_DAEMONS)),
                            mode=0o640, owner=spec.owner)
            # a running daemon keeps its old arguments: stop it, the daemons step starts it
            for daemon in TUNED_DAEMONS:
                pid = shlex.quote(f"{spec.project_dir}/pid_{boincxml.config_value(text, 'host')}"
                                  f"/{daemon.pid_file}")
                host.run(f"if [ -f {pid} ]; then kill \"$(cat {pid})\" 2>/dev/null; fi; true",
                         user=spec.owner,
                         what=f"stopping {daemon.cmd.split()[0]} for its new options")
        elif action.kind == "protect-keys":
            # as the owner, whose files they are
            keys = shlex.quote(f"{spec.project_dir}/keys")
            host.run(f"cd {keys} && " + " && ".join(
                f"{{ test ! -f {name} || chmod {mode:o} {name}; }}"
                for name, mode in KEY_MODES.items()), user=spec.owner,
                what="making the private keys unreadable to other accounts")
        elif action.kind == "db-revision":
            ops = shlex.quote(f"{spec.project_dir}/html/ops")
            host.run(f"cd {ops} && PATH={SYSTEM_PATH} ./db_schemaversion.php > ../../db_revision",
                     user=spec.owner, what="db_schemaversion.php")


STEP = Step("project", "make the project (make_project)", gather, decide, apply,
            hint="fix the cause and run the same command again (a half-made project directory "
                 "is removed)")
