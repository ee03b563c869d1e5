"""``pymw-admin backup``: one local archive of a project (see :mod:`archive` for what it holds).

The project is quiet while it is copied, so the database and the files agree: a backup refuses
while a master holds a tag (stop it, or let it end; it resumes after a restore with
``-a resume=yes``), and BOINC's daemons and scheduler are paused (``bin/stop``) for the dump
and the copy and started again afterwards (``bin/start``) when they ran before. The database is
dumped by mysqldump through the project's root-only client option file (the password never in
argv); the project's files are read by a ``tar`` run as the project's owner and streamed back:
root never reads in the owner's tree.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pymw_admin import __version__
from pymw_admin.admin import boincxml
from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import archive, daemons
from pymw_admin.admin.server.project import SYSTEM_PATH, config_path
from pymw_admin.errors import RemoteError, UsageError

STOP_WAIT = 30.0  # seconds for the daemons to end after bin/stop (1.6.2's does not wait)


@dataclass(frozen=True)
class BackupReport:
    path: Path
    manifest: archive.Manifest
    size: int
    seconds: float
    paused: tuple[str, ...]  # the daemons paused for the copy (and started again)
    left_out: tuple[str, ...] = ()  # links that may lead out of the project ("NAME -> TARGET")


def project_info(config_xml: str, project: Project, boinc_source: str) -> archive.ProjectInfo:
    """What a restore needs to know about the project, from its config.xml."""
    master_url = boincxml.config_value(config_xml, "master_url")
    suffix = f"{project.name}/"
    if not master_url.endswith(suffix):
        raise UsageError(f"config.xml's master_url {master_url!r} does not end with {suffix!r}: "
                         "not a project pymw-admin made")
    return archive.ProjectInfo(
        name=project.name, owner=project.owner, project_dir=project.project_dir,
        url_base=master_url[: -len(suffix)], host_name=boincxml.config_value(config_xml, "host"),
        long_name=boincxml.config_value(config_xml, "long_name"), boinc_source=boinc_source)


def live_masters(host: Host, project: Project) -> list[str]:
    """The tags whose state lock a running master holds (read as the owner)."""
    masters = shlex.quote(f"{project.project_dir}/pymw/masters")
    out = host.run(f"for l in {masters}/*/lock; do [ -f \"$l\" ] || continue; "
                   "flock -n \"$l\" true || echo \"@live $(basename \"$(dirname \"$l\")\")\"; "
                   "done", user=project.owner, check=False).stdout
    return [line[6:] for line in out.splitlines() if line.startswith("@live ")]


def _decoded(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RemoteError(f"{what}: the host sent back something unreadable") from None


def dump_database(host: Host, project: Project) -> bytes:
    """mysqldump of the project's database (gzip on the way), as root through client.cnf."""
    cnf = shlex.quote(project.db_client_cnf)
    result = host.sudo(
        f"test -r {cnf} || {{ echo 'no {project.db_client_cnf}' >&2; exit 3; }}; "
        f"{{ mysqldump --defaults-extra-file={cnf} --single-transaction --hex-blob "
        f"--no-tablespaces --default-character-set=utf8mb4 {shlex.quote(project.db_name)} "
        "|| echo \"@failed $?\" >&2; } | gzip -c | base64 -w0",
        what="mysqldump", timeout=3600, check=False)
    if result.exit_code == 3:
        raise UsageError(f"project {project.name} on {host.name} was not made by pymw-admin "
                         f"(no {project.db_client_cnf})")
    if not result.ok or "@failed" in result.stderr:
        raise RemoteError(f"mysqldump failed on {host.name}: {result.last_lines()}")
    return gzip.decompress(_decoded(result.stdout, "mysqldump"))


def project_tree(host: Host, project: Project) -> bytes:
    """A gzip tar of the project's own parts (archive.PROJECT_PARTS), made by the owner."""
    parts = " ".join(archive.PROJECT_PARTS)  # constants; bin/pymw_* is a glob on purpose
    result = host.run(
        f"cd {shlex.quote(project.project_dir)} && set -- && for p in {parts}; do "
        "[ -e \"$p\" ] && set -- \"$@\" \"$p\"; done; "
        "{ tar -czf - --format=gnu -- \"$@\" || echo \"@failed $?\" >&2; } | base64 -w0",
        user=project.owner, what="tar of the project directory", timeout=3600, check=False)
    if not result.ok or "@failed" in result.stderr:
        raise RemoteError(f"copying the project directory failed on {host.name}: "
                          f"{result.last_lines()}")
    return _decoded(result.stdout, "tar of the project directory")


def _pause(host: Host, project: Project) -> tuple[str, ...]:
    running = daemons.status(host, project).running
    if not running:
        return ()
    host.run(f"cd {shlex.quote(project.project_dir)} && PATH={SYSTEM_PATH} bin/stop",
             user=project.owner, what="bin/stop", timeout=120)
    deadline = time.monotonic() + STOP_WAIT
    while daemons.status(host, project).running and time.monotonic() < deadline:
        time.sleep(0.5)
    return tuple(sorted(running))


def _resume(host: Host, project: Project) -> None:
    host.run(f"cd {shlex.quote(project.project_dir)} && PATH={SYSTEM_PATH} bin/start",
             user=project.owner, what="bin/start", timeout=120)


def backup(host: Host, project: Project, out: Path, *, boinc_source: str = "",
           log: Callable[[str], None] = lambda _m: None) -> BackupReport:
    """Write the project's archive to ``out``; the project runs on as before afterwards."""
    started = time.monotonic()
    archive.check_destination(out)  # before the project pauses for a copy it could not keep
    text = host.read_text(config_path(project), user=project.owner)
    if text is None:
        raise UsageError(f"no project {project.name} in {project.project_dir} on {host.name}")
    info = project_info(text, project, boinc_source)
    live = live_masters(host, project)
    if live:
        raise UsageError(f"a master is running on {host.name} (tag {', '.join(live)}): stop it "
                         "or let it end first; after a restore it resumes with -a resume=yes")
    log("pausing the project's daemons")
    paused = _pause(host, project)
    try:
        log("dumping the database")
        database = dump_database(host, project)
        log("copying the project directory")
        tree = project_tree(host, project)
    finally:
        if paused:
            log("starting the project's daemons again")
            _resume(host, project)
    left_out: list[str] = []
    members = list(archive.project_members(tree, left_out))
    public = next((data for member, data in members
                   if member.name == archive.PROJECT_PREFIX + "keys/code_sign_public"), None)
    manifest = archive.Manifest(
        project=info, identity=archive.identity(public), source_host=host.name,
        secrets=(archive.DATABASE, *(m.name for m, _ in members
                                     if m.isfile() and archive.is_secret(
                                         m.name[len(archive.PROJECT_PREFIX):]))),
        files=sum(1 for m, _ in members if m.isfile()),
        database_sha256=hashlib.sha256(database).hexdigest(), pymw_admin=__version__)
    archive.write(out, manifest, database, members)
    return BackupReport(out, manifest, out.stat().st_size, time.monotonic() - started, paused,
                        tuple(left_out))
