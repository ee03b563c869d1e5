"""``pymw-admin deploy-app [APP]``: the app, its versions (one per bundle), templates and daemons.

Thin: read the project file (or flags), find the bundles, run pymw_admin.admin.apps.deploy with
step-by-step progress. Safe to re-run: nothing changed, nothing done.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from pymw_admin.admin import config
from pymw_admin.admin.apps.deploy import find_bundles, steps
from pymw_admin.admin.apps.spec import DEFAULT_APP, AppSpec, check_app_name
from pymw_admin.admin.plan import Context, StepReport
from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import HostSpec, connect
from pymw_admin.cli import plan_view
from pymw_admin.cli.app import app, console
from pymw_admin.errors import UsageError


def _default_dist() -> Path:
    return Path("pyboinc_bundles") / "dist"  # where bundle build writes, in this directory


@app.command("deploy-app")
def deploy_app(
    name: Annotated[str, typer.Argument(help="The app's name.")] = DEFAULT_APP,
    project_file: Annotated[Path, typer.Option(
        "--project-file", help="The project file init-project wrote.")] = Path(config.DEFAULT_FILE),
    host: Annotated[str | None, typer.Option(
        "--host", help="Host (default: the project file's); 'local' for this machine.")] = None,
    ssh_config: Annotated[str | None, typer.Option("--ssh-config")] = None,
    user: Annotated[str | None, typer.Option("--user", help="SSH login user.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="SSH private key file.")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", help="Project name (without a project file).")] = None,
    owner: Annotated[str, typer.Option("--owner", help="With --project: its owner.")] = "boincadm",
    project_dir: Annotated[str, typer.Option("--project-dir", help="With --project.")] = "",
    bundles: Annotated[Path | None, typer.Option(
        "--bundles", help="Bundle directory, one subdirectory per platform "
                          "(default: pyboinc_bundles/dist).")] = None,
    sign_key: Annotated[Path | None, typer.Option(
        "--sign-key", help="Sign here with this BOINC code-signing private key (kept off the "
                           "server); default: the server signs with keys/code_sign_private.")
    ] = None,
    friendly_name: Annotated[str, typer.Option("--friendly-name",
                                               help="The app's name shown to volunteers.")] = "",
    retire_older: Annotated[bool, typer.Option(
        "--retire-older", help="Deprecate the app's versions older than the deployed one, per "
                               "platform (results in flight still finish).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Print the plan; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print step reports as JSON.")] = False,
) -> None:
    """Deploy APP on the project: register it, install one app version per bundle (signed),
    the templates, the assimilator and validator, and start them. Idempotent."""
    check_app_name(name)
    if sign_key is not None and not sign_key.is_file():
        raise UsageError(f"no such signing key: {sign_key}")
    found = find_bundles(bundles or _default_dist())
    if project:
        host_spec = HostSpec(host or "local", user, None, key, ssh_config)
        spec: Project = Project(project, owner=owner, project_dir=project_dir)
    else:
        loaded = config.load(project_file)
        base = loaded.host_spec()
        host_spec = HostSpec(host or base.host, user or base.user, base.port, key or base.key,
                             ssh_config or base.ssh_config)
        spec = loaded.project_spec()
    wanted = AppSpec(name, friendly_name, found, sign_key, retire_older)
    started = time.monotonic()
    remote = connect(host_spec)
    try:
        reports = _run(Context(remote, spec), wanted, dry_run, as_json)
    finally:
        remote.close()
    changes = sum(len(r.actions) for r in reports)
    seconds = time.monotonic() - started
    if as_json:
        print(json.dumps({"app": name, "project": spec.name, "dry_run": dry_run,
                          "changes": changes, "seconds": round(seconds, 2),
                          "platforms": sorted(wanted.digests()),
                          "steps": [r.as_dict() for r in reports]}, indent=2))
    else:
        plan_view.print_outcome(console, f"app {name} is deployed", f" on {spec.name}", changes,
                                seconds, dry_run=dry_run, unchanged="already up to date")


def _run(ctx: Context, wanted: AppSpec, dry_run: bool, quiet: bool) -> list[StepReport]:
    return plan_view.run(ctx, steps(wanted), console, dry_run=dry_run, quiet=quiet)
