"""``pymw-admin upgrade --boinc-source SRC``: move the project to another BOINC server release.

Thin: read the project file, run the upgrade plan (pymw_admin.admin.server.upgrade) with
step-by-step progress, and record the new source in the project file once the plan is through.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from pymw_admin.admin import config
from pymw_admin.admin.plan import Context
from pymw_admin.admin.remote import connect
from pymw_admin.admin.server.boinc_build import parse_source
from pymw_admin.admin.server.upgrade import UPGRADE_STEPS
from pymw_admin.cli import plan_view
from pymw_admin.cli.app import app, console


@app.command("upgrade")
def upgrade(
    boinc_source: Annotated[str, typer.Option(
        "--boinc-source", help="The newer BOINC server source: git URL.git@REF, a .tar.gz, or "
                               "a directory on the host (built in place).")],
    project_file: Annotated[Path, typer.Option(
        "--project-file", help="The project file init-project wrote.")] = Path(config.DEFAULT_FILE),
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Print the plan; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print step reports as JSON.")] = False,
) -> None:
    """Upgrade the project's BOINC server: build SRC, run BOINC's upgrade and schema updates,
    restart the daemons; app versions, work and accounts stay. Idempotent."""
    parse_source(boinc_source)  # bad input fails before anything is contacted
    loaded = config.load(project_file)
    spec = dataclasses.replace(loaded.project_spec(), boinc_source=boinc_source)
    started = time.monotonic()
    remote = connect(loaded.host_spec())
    try:
        reports = plan_view.run(Context(remote, spec), UPGRADE_STEPS, console, dry_run=dry_run,
                                quiet=as_json)
    finally:
        remote.close()
    if not dry_run:
        config.save(config.ProjectFile.from_specs(loaded.host_spec(), spec), project_file)
    changes = sum(len(r.actions) for r in reports)
    seconds = time.monotonic() - started
    if as_json:
        print(json.dumps({"project": spec.name, "boinc_source": boinc_source,
                          "dry_run": dry_run, "changes": changes, "seconds": round(seconds, 2),
                          "steps": [r.as_dict() for r in reports]}, indent=2))
    elif dry_run:
        console.print(f"dry run: {changes} change(s) would be made; nothing was changed")
    else:
        console.print(f"[bold green]project {spec.name} runs BOINC from {boinc_source}[/] "
                      f"({changes} change(s), {seconds:.1f} s)")
