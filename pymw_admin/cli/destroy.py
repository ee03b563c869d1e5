"""``pymw-admin destroy-project NAME``: remove a project init-project made, after a confirmation."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pymw_admin.admin import target
from pymw_admin.admin.plan import Context
from pymw_admin.admin.remote import connect
from pymw_admin.admin.server import destroy
from pymw_admin.admin.server.spec import ProjectSpec, check_name
from pymw_admin.cli import plan_view
from pymw_admin.cli.app import app, console, fail
from pymw_admin.cli.project_options import (
    HostOpt,
    KeyOpt,
    PortOpt,
    ProjectFileOpt,
    SshConfigOpt,
    TimeoutOpt,
    UserOpt,
)


@app.command("destroy-project")
def destroy_project(
    name: Annotated[str, typer.Argument(help="The project to remove.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for the name again.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Print what would go; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the step report as JSON.")] = False,
    project_file: ProjectFileOpt = None, host: HostOpt = None, user: UserOpt = None,
    port: PortOpt = None, key: KeyOpt = None, ssh_config: SshConfigOpt = None,
    connect_timeout: TimeoutOpt = 10.0,
) -> None:
    """Stop a project's daemons and remove its cron line, site, database and user, directory and
    secrets. Only a project pymw-admin made; the owner account and BOINC builds stay."""
    check_name(name)
    where = target.resolve(project_file, host=host, user=user, port=port, key=key,
                           ssh_config=ssh_config, name=name, connect_timeout=connect_timeout)
    remote = connect(where.host)
    try:
        spec = ProjectSpec(name, "http://localhost/", "", owner=where.owner,
                           project_dir=where.project_dir)
        ctx = Context(remote, spec)
        remains = destroy.gather(ctx)
        if not remains.marker and not remains.secrets:
            raise fail(f"no project {name} made by pymw-admin on {remote.name}", 2)
        if not yes and not dry_run:
            what = remains.marker_dir or spec.secrets_dir
            answer = typer.prompt(f"This removes project {name} ({what}) on {remote.name}, its "
                                  "database and files. Type its name to go on", default="",
                                  show_default=False)
            if answer.strip() != name:
                raise fail(f"not confirmed: project {name} is left as it was", 1)
        reports = plan_view.run(ctx, [destroy.STEP], console, dry_run=dry_run, quiet=as_json)
    finally:
        remote.close()
    if as_json:
        print(json.dumps({"project": name, "dry_run": dry_run,
                          "steps": [r.as_dict() for r in reports]}, indent=2))
    elif not dry_run:
        console.print(f"project {name} removed from {remote.name}", markup=False)

