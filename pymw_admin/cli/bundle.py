"""``pymw-admin bundle``: build and inspect the PyBOINC worker bundles."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from pymw_admin.admin import config, target
from pymw_admin.admin.apps import master_python
from pymw_admin.admin.remote import connect
from pymw_admin.bundles import build as builder
from pymw_admin.bundles import manifest as mf
from pymw_admin.bundles import targets, version_xml
from pymw_admin.cli.app import PlainTyper, app, console, fail
from pymw_admin.errors import ConfigError, EngineUnavailable

bundle_app = PlainTyper(help="Build and inspect the self-contained worker bundles (PyBOINC).",
                        no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")


@bundle_app.command("build")
def build_cmd(
    with_packages: Annotated[list[str] | None, typer.Option(
        "--with", help="An extra installed package to ship (repeatable), e.g. numpy.")] = None,
    dist: Annotated[Path | None, typer.Option(
        help="Output directory (default: ./pyboinc_bundles/dist of this directory).")] = None,
    boinc_library: Annotated[str, typer.Option(
        help="Ship libboinc_api.so.7: auto (when found), yes, no.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    platform: Annotated[str | None, typer.Option(
        "--platform", help="BOINC platform: x86_64-pc-linux-gnu, windows_x86_64, "
                           "aarch64-unknown-linux-gnu (default: this machine's).")] = None,
    python: Annotated[str | None, typer.Option(
        "--python", help="The masters' Python minor version, e.g. 3.11 (default: this "
                         "Python's); task pickles need the same minor on the worker.")] = None,
    sysroot: Annotated[Path | None, typer.Option(
        "--sysroot", help="A Debian root of the platform's architecture holding python3.X "
                          "(for aarch64, or another minor on Linux).")] = None,
    project_file: Annotated[Path | None, typer.Option(
        "--project-file", help="Without --python: build for the Python minor of this project's "
                               "server (default: ./pymw-admin.toml when present).")] = None,
) -> None:
    """Build a platform's bundle: interpreter, whole stdlib, worker, `boinc` module."""
    if boinc_library not in ("auto", "yes", "no"):
        raise fail(f"--boinc-library must be auto, yes or no, not {boinc_library!r}", 2)
    if python is not None and not re.fullmatch(r"3\.\d{1,2}", python):
        raise fail(f"--python takes a minor version such as 3.11, not {python!r}", 2)
    wanted = platform or mf.platform_name()
    if wanted in targets.MACOS:
        typer.echo(targets.MACOS_LINE)
        raise typer.Exit(1)
    if python is None:
        given = project_file or Path(config.DEFAULT_FILE)
        if project_file is not None or given.is_file():
            python = server_python(given)
            console.print(f"building for Python {python}, the project server's")
    with console.status("building the bundle...") as status:
        bundle = targets.build(wanted, (dist or builder.default_dist()).resolve(), python=python,
                               with_packages=with_packages or [], sysroot=sysroot,
                               boinc_library=boinc_library, say=lambda line: status.update(line))
    stage = bundle.root / version_xml.VERSION_XML
    stage.write_bytes(version_xml.to_bytes(version_xml.for_client(bundle.manifest)))
    if as_json:
        print(bundle.manifest.to_json(), end="")
        return
    size = sum(f.size for f in bundle.manifest.files.values())
    console.print(f"built {bundle.manifest.platform} bundle (Python {bundle.manifest.python}, "
                  f"{len(bundle.manifest.files)} files, {size / 1e6:.1f} MB) in {bundle.root}")
    if bundle.imports:
        console.print("imported in the bundle: " + ", ".join(
            f"{name} {version}" for name, version in bundle.imports.items()), soft_wrap=True)
    else:
        console.print("imports not checked: this machine cannot run the platform's programs "
                      "(wine or qemu-user)", soft_wrap=True)


def _import_problems(bundle: mf.Bundle) -> list[str]:
    # matching hashes say nothing of a bundle built broken: run it
    try:
        targets.check_imports(bundle)
    except EngineUnavailable as exc:
        console.print(f"{bundle.manifest.platform}: imports not checked: {exc}")
    except ConfigError as exc:
        return [str(exc)]
    return []


def server_python(project_file: Path) -> str:
    """The minor version of ``python3`` on the project's server, which runs its masters."""
    where = target.resolve(project_file)
    remote = connect(where.host)
    try:
        out = remote.run(master_python.PYTHON_MINOR, what="python3 on the server", check=False)
    finally:
        remote.close()
    minor = out.stdout.strip()
    if not out.ok or not re.fullmatch(r"3\.\d{1,2}", minor):
        raise fail(f"cannot read the Python version on {where.host.host}: give --python 3.X", 1)
    return minor


@bundle_app.command("list")
def list_cmd(
    dist: Annotated[Path | None, typer.Option(
        help="Bundle directory (default: ./pyboinc_bundles/dist of this directory).")] = None,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Check every file's hash, and run each bundle (wine/qemu for other "
                         "platforms) to import every package it ships.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The bundles present (one per platform), checked against their manifests."""
    found = mf.find_bundles(dist or builder.default_dist())
    rows: list[dict[str, Any]] = []
    bad = False
    for bundle in found:
        problems = mf.check(bundle.manifest, bundle.dir, hashes=verify)
        if verify and not problems:
            problems += _import_problems(bundle)
        bad = bad or bool(problems)
        rows.append({"platform": bundle.manifest.platform, "python": bundle.manifest.python,
                     "files": len(bundle.manifest.files), "path": str(bundle.root),
                     "problems": problems})
    if as_json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        console.print("no bundles built yet: pymw-admin bundle build")
    for row in rows if not as_json else []:
        state = "ok" if not row["problems"] else f"{len(row['problems'])} problem(s)"
        console.print(f"{row['platform']}  Python {row['python']}  {row['files']} files  "
                      f"{state}  {row['path']}")
        for problem in row["problems"][:5]:
            console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
    if bad:
        raise typer.Exit(1)
