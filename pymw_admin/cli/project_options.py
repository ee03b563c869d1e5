"""The options that name a project and its host (the project file, overridden by flags), shared
by every command that acts on a made project: run, runs, logs, attach, stop, status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from pymw_admin.admin import target
from pymw_admin.admin.remote import Host, connect

ProjectFileOpt = Annotated[Path | None, typer.Option(
    "--project-file", help="The project file (default ./pymw-admin.toml).")]
HostOpt = Annotated[str | None, typer.Option("--host", help="Host (overrides the project file).")]
UserOpt = Annotated[str | None, typer.Option("--user", help="SSH login user.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="SSH port.")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="SSH private key file.")]
SshConfigOpt = Annotated[str | None, typer.Option("--ssh-config", help="An ssh config file.")]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Project name.")]
OwnerOpt = Annotated[str | None, typer.Option("--owner", help="The project's owner user.")]
ProjectDirOpt = Annotated[str | None, typer.Option("--project-dir",
                                                   help="The project directory on the host.")]
TimeoutOpt = Annotated[float, typer.Option("--connect-timeout", help="Seconds to wait for SSH.")]


@contextlib.contextmanager
def opened(project_file: Path | None, host: str | None, user: str | None, port: int | None,
           key: str | None, ssh_config: str | None, project: str | None, owner: str | None,
           project_dir: str | None, connect_timeout: float,
           ) -> Iterator[tuple[Host, target.ProjectTarget]]:
    """The project and a connection to its host, closed afterwards."""
    where = target.resolve(project_file, host=host, user=user, port=port, key=key,
                           ssh_config=ssh_config, name=project, owner=owner,
                           project_dir=project_dir, connect_timeout=connect_timeout)
    remote = connect(where.host)
    try:
        yield remote, where
    finally:
        remote.close()
