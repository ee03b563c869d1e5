"""``pymw-admin backup`` and ``pymw-admin restore ARCHIVE --host NEW``.

Thin: resolve the project, call pymw_admin.admin.server.backup, or read the archive and run the
restore plan (pymw_admin.admin.server.restore) with step-by-step progress, then write the
project file for the new host.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from pymw_admin.admin import config
from pymw_admin.admin.plan import Context
from pymw_admin.admin.remote import HostSpec, connect
from pymw_admin.admin.server import archive, restore
from pymw_admin.admin.server import backup as backup_lib
from pymw_admin.cli import plan_view
from pymw_admin.cli.app import app, console
from pymw_admin.cli.project_options import (
    HostOpt,
    KeyOpt,
    OwnerOpt,
    PortOpt,
    ProjectDirOpt,
    ProjectFileOpt,
    ProjectOpt,
    SshConfigOpt,
    TimeoutOpt,
    UserOpt,
    opened,
)
from pymw_admin.cli.terminal_text import shown_line
from pymw_admin.errors import ConfigError, UsageError


def _known_source(project_file: Path | None, name: str) -> str:
    """The BOINC source the project file records for this project ("" when none does)."""
    path = project_file or Path(config.DEFAULT_FILE)
    if not path.exists():
        return ""
    try:
        loaded = config.load(path)
    except ConfigError:
        return ""
    return loaded.project.boinc_source if loaded.project.name == name else ""


@app.command("backup")
def backup(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The archive to write (default ./NAME-DATE.pymw-backup.tar.gz); "
                               "mode 0600: it holds the project's keys and database.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    project_file: ProjectFileOpt = None, host: HostOpt = None, user: UserOpt = None,
    port: PortOpt = None, key: KeyOpt = None, ssh_config: SshConfigOpt = None,
    project: ProjectOpt = None, owner: OwnerOpt = None, project_dir: ProjectDirOpt = None,
    connect_timeout: TimeoutOpt = 10.0,
) -> None:
    """Write one archive of the project: database, keys, configuration, app versions, work and
    uploaded results, pymw-admin's runs and masters' state. The daemons pause meanwhile."""
    if output is not None and output.is_dir():
        raise UsageError(f"--output {output} is a directory; name the archive file")
    with opened(project_file, host, user, port, key, ssh_config, project, owner, project_dir,
                connect_timeout) as (remote, where):
        out = output or Path(f"{where.name}-{time.strftime('%Y%m%d-%H%M%S')}"
                             ".pymw-backup.tar.gz")
        with console.status("backing up ...") as spinner:
            report = backup_lib.backup(remote, where, out,
                                       boinc_source=_known_source(project_file, where.name),
                                       log=lambda m: spinner.update(m + " ..."))
    manifest = report.manifest
    if as_json:
        print(json.dumps({"archive": str(report.path), "bytes": report.size,
                          "seconds": round(report.seconds, 2), "paused": list(report.paused),
                          "left_out": list(report.left_out), "manifest": manifest.as_dict()},
                         indent=2))
        return
    console.print(f"[bold green]project {where.name} backed up[/] to {report.path} "
                  f"({report.size / 1e6:.1f} MB, {manifest.files} files, "
                  f"{len(manifest.secrets)} secrets, {report.seconds:.1f} s)", highlight=False)
    _note_left_out(report.left_out)


def _note_left_out(left_out: tuple[str, ...]) -> None:
    # the links' names and targets are the project owner's: shown, never markup
    if left_out:
        more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        console.print(shown_line(f"note: left out {len(left_out)} link(s) that may lead out of "
                                 f"the project: {', '.join(left_out[:5])}{more}"),
                      highlight=False, markup=False)


@app.command("restore")
def restore_command(
    archive_path: Annotated[Path, typer.Argument(metavar="ARCHIVE",
                                                 help="An archive `pymw-admin backup` wrote.")],
    host: Annotated[str, typer.Option("--host", help="The new host (address or ssh-config "
                                                     "alias).")],
    user: Annotated[str | None, typer.Option("--user", help="SSH login user.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="SSH port.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="SSH private key file.")] = None,
    ssh_config: Annotated[str | None, typer.Option("--ssh-config",
                                                   help="An ssh config file.")] = None,
    url_base: Annotated[str | None, typer.Option(
        "--url-base", help="A new URL base for the project (default: the archive's; clients "
                           "attached by URL follow a DNS name that moved with it).")] = None,
    host_name: Annotated[str | None, typer.Option(
        "--host-name", help="BOINC's project host (default: what `hostname` prints on the new "
                            "host).")] = None,
    boinc_source: Annotated[str | None, typer.Option(
        "--boinc-source", help="The BOINC server source to build there (default: the "
                               "archive's).")] = None,
    project_file: Annotated[Path, typer.Option(
        "--project-file", help="Where to write the project file for the new host.")] = Path(
        config.DEFAULT_FILE),
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Print the plan; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print step reports as JSON.")] = False,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout",
                                                   help="Seconds to wait for SSH.")] = 10.0,
) -> None:
    """Rebuild the archived project on HOST: init-project's steps, then its files, database,
    URL and host name; the same work units, accounts and app versions go on there. A host with
    another project of the same name is refused, unchanged. Idempotent."""
    the = archive.read(archive_path)  # a bad archive fails before anything is contacted
    if not as_json:
        _note_left_out(the.left_out)
    started = time.monotonic()
    remote = connect(HostSpec(host, user, port, key, ssh_config, connect_timeout))
    try:
        new_name = host_name or remote.run("hostname").stdout.strip()
        spec = restore.wanted_spec(the.manifest, url_base=url_base or "", host_name=new_name,
                                   boinc_source=boinc_source or "")
        ctx = Context(remote, spec, notes={restore.ARCHIVE_NOTE: the})
        reports = plan_view.run(ctx, restore.RESTORE_STEPS, console, dry_run=dry_run,
                                quiet=as_json)
    finally:
        remote.close()
    changes = sum(len(r.actions) for r in reports)
    seconds = time.monotonic() - started
    if not dry_run:
        config.save(config.ProjectFile.from_specs(HostSpec(host, user, port, key, ssh_config),
                                                  spec), project_file)
    if as_json:
        print(json.dumps({"project": spec.name, "archive": the.manifest.id,
                          "left_out": list(the.left_out), "dry_run": dry_run,
                          "changes": changes, "seconds": round(seconds, 2),
                          "steps": [r.as_dict() for r in reports]}, indent=2))
        return
    plan_view.print_outcome(console, f"project {spec.name} restored", f" at {spec.master_url}",
                            changes, seconds, dry_run=dry_run, unchanged="already restored",
                            note=f"; wrote {project_file}")
