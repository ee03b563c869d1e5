"""``pymw-admin init-project NAME --host HOST``: turn a Debian/Ubuntu host into a BOINC server.

Thin: parse options, connect, run the provisioning plan (pymw_admin.admin.server.provision) with
step-by-step progress, write pymw-admin.toml. Safe to re-run: a converged host changes nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from pymw_admin.admin import config
from pymw_admin.admin.plan import Context, StepReport
from pymw_admin.admin.remote import HostSpec, connect
from pymw_admin.admin.server import provision
from pymw_admin.admin.server.boinc_build import parse_source
from pymw_admin.admin.server.spec import DEFAULT_BOINC_SOURCE, ProjectSpec, check_name, check_user
from pymw_admin.cli import plan_view
from pymw_admin.cli.app import app, console
from pymw_admin.errors import UsageError


@app.command("init-project")
def init_project(
    name: Annotated[str, typer.Argument(help="Project short name (a-z, 0-9, _).")],
    host: Annotated[str | None, typer.Option(
        "--host", help="Host address or ssh-config alias; 'local' for this machine. Default: "
                       "the host the project file names for NAME, with its SSH settings.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="SSH login user.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="SSH port.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="SSH private key file.")] = None,
    ssh_config: Annotated[str | None, typer.Option("--ssh-config",
                                                   help="An ssh config file for aliases.")] = None,
    url_base: Annotated[str | None, typer.Option(
        "--url-base", help="Base URL of the web server (default http://HOST/).")] = None,
    host_name: Annotated[str | None, typer.Option(
        "--host-name", help="BOINC's project host: the server's short host name "
                            "(default: what `hostname` prints there).")] = None,
    owner: Annotated[str | None, typer.Option(
        "--owner", help="User owning the project (default boincadm).")] = None,
    db_host: Annotated[str | None, typer.Option(
        "--db-host", help="Database host (default: local MariaDB).")] = None,
    boinc_source: Annotated[str | None, typer.Option(
        "--boinc-source", help="git URL.git@REF, a .tar.gz, or a directory on the host "
                               "(built in place; a built tree is reused). Default "
                               f"{DEFAULT_BOINC_SOURCE}.")] = None,
    project_dir: Annotated[str | None, typer.Option("--project-dir",
                                                    help="Default ~OWNER/projects/NAME.")] = None,
    long_name: Annotated[str | None, typer.Option("--long-name",
                                                  help="Human-readable name.")] = None,
    https_cert: Annotated[str | None, typer.Option("--https-cert",
                                                   help="Certificate file on the host.")] = None,
    https_key: Annotated[str | None, typer.Option("--https-key",
                                                  help="Its key file on the host.")] = None,
    https: Annotated[str, typer.Option(
        "--https", help="'acme': get the certificate from an ACME CA with certbot and renew it "
                        "(needs --acme-email and an https URL base with a DNS name).")] = "",
    acme_email: Annotated[str, typer.Option("--acme-email",
                                            help="Contact address for the ACME account.")] = "",
    acme_server: Annotated[str, typer.Option(
        "--acme-server", help="ACME directory URL of a private CA (default: certbot's).")] = "",
    acme_ca: Annotated[str, typer.Option(
        "--acme-ca", help="CA file on the host to trust for --acme-server.")] = "",
    project_file: Annotated[Path, typer.Option(
        "--project-file", help="Where to write the project file.")] = Path(config.DEFAULT_FILE),
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Print the plan; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print step reports as JSON.")] = False,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout",
                                                   help="Seconds to wait for SSH.")] = 10.0,
) -> None:
    """Provision a BOINC server project on HOST over SSH, idempotently.

    A re-run reads the project file it wrote for NAME: its host and SSH settings, owner,
    directory, URLs and source are the defaults, so `init-project NAME` converges the same
    project; flags win.
    """
    check_name(name)  # bad input fails before anything is contacted
    written = _written(project_file, name)
    if host is None:
        if written is None:
            raise UsageError(f"init-project {name} needs --host HOST: {project_file} names no "
                             f"host for project {name}")
        host = written.host.host
    if written is not None and written.host.host == host:
        # the SSH settings it was reached with before, unless given again
        user = user or written.host.user or None
        port = port or written.host.port or None
        key = key or written.host.key or None
        ssh_config = ssh_config or written.host.ssh_config or None
    earlier = _earlier(written, host)
    owner = check_user(owner or earlier.get("owner") or "boincadm")
    boinc_source = boinc_source or earlier.get("boinc_source") or DEFAULT_BOINC_SOURCE
    parse_source(boinc_source)
    # the directory the file names belongs to its owner: a new --owner gets its own default
    same_owner = owner == earlier.get("owner", owner)
    project_dir = project_dir or (earlier.get("dir", "") if same_owner else "")
    url_base = url_base or earlier.get("url_base") or None
    host_name = host_name or earlier.get("host_name") or None
    db_host = earlier.get("db_host", "") if db_host is None else db_host
    long_name = long_name or earlier.get("long_name", "")
    # --https acme on the command line replaces a certificate an earlier run was given
    kept = {} if https == "acme" else earlier
    https_cert = kept.get("https_cert", "") if https_cert is None else https_cert
    https_key = kept.get("https_key", "") if https_key is None else https_key
    if https not in ("", "acme"):
        raise UsageError(f"invalid --https {https!r}: the only mode is 'acme' (a given "
                         "certificate is --https-cert/--https-key)")
    if (https == "acme") != bool(acme_email):
        raise UsageError("--https acme needs --acme-email (and --acme-email needs --https acme)")
    if (acme_server or acme_ca) and https != "acme":
        raise UsageError("--acme-server and --acme-ca need --https acme")
    started = time.monotonic()
    remote = connect(HostSpec(host, user, port, key, ssh_config, connect_timeout))
    try:
        address = getattr(remote, "address", "localhost")
        # with a certificate the project is reached by https unless the admin says otherwise
        scheme = "https" if https_cert or https else "http"
        spec = ProjectSpec(
            name=name, url_base=url_base or f"{scheme}://{address}/",
            host_name=host_name or remote.run("hostname").stdout.strip(), owner=owner,
            db_host=db_host, boinc_source=boinc_source, project_dir=project_dir,
            long_name=long_name, https_cert=https_cert, https_key=https_key,
            acme_email=acme_email, acme_server=acme_server, acme_ca=acme_ca,
        )
        reports = _run(Context(remote, spec), dry_run, as_json)
    finally:
        remote.close()
    changes = sum(len(r.actions) for r in reports)
    seconds = time.monotonic() - started
    if not dry_run:
        host_spec = HostSpec(host, user, port, key, ssh_config)
        config.save(config.ProjectFile.from_specs(host_spec, spec), project_file)
    if as_json:
        print(json.dumps({"project": name, "dry_run": dry_run, "changes": changes,
                          "seconds": round(seconds, 2),
                          "steps": [r.as_dict() for r in reports]}, indent=2))
        return
    plan_view.print_outcome(console, f"project {name} is up", f" at {spec.master_url}", changes,
                            seconds, dry_run=dry_run, unchanged="already converged",
                            note=f"; wrote {project_file}")


def _written(project_file: Path, name: str) -> config.ProjectFile | None:
    """The project file an earlier run wrote for this project, if it is there."""
    if not project_file.exists():
        return None
    loaded = config.load(project_file)  # a broken file is one ConfigError line
    return loaded if loaded.project.name == name else None


def _earlier(written: config.ProjectFile | None, host: str) -> dict[str, str]:
    """The [project] table of the project file a run for this project on this host wrote."""
    if written is None or written.host.host != host:
        return {}
    return {key: value for key, value in vars(written.project).items() if isinstance(value, str)}


def _run(ctx: Context, dry_run: bool, quiet: bool) -> list[StepReport]:
    return plan_view.run(ctx, provision.STEPS, console, dry_run=dry_run, quiet=quiet)
