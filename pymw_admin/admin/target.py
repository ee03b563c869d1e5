"""Which project on which host a command acts on: the project file, overridden by flags.

``run``, ``runs``, ``status`` and friends need only the host, the project's name, owner and
directory; they read them from pymw-admin.toml (written by init-project) and let flags replace any
of them, so they also work with flags alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pymw_admin.admin import config
from pymw_admin.admin.remote import HostSpec
from pymw_admin.admin.server.spec import SECRETS_ROOT, check_name, check_user
from pymw_admin.errors import ConfigError, UsageError


@dataclass(frozen=True)
class ProjectTarget:
    host: HostSpec
    name: str
    owner: str
    project_dir: str

    @property
    def home(self) -> str:
        return f"/home/{self.owner}"

    @property
    def db_client_cnf(self) -> str:
        return f"{SECRETS_ROOT}/{self.name}/client.cnf"

    @property
    def db_name(self) -> str:
        return self.name


def resolve(
    project_file: Path | None = None,
    *,
    host: str | None = None,
    user: str | None = None,
    port: int | None = None,
    key: str | None = None,
    ssh_config: str | None = None,
    name: str | None = None,
    owner: str | None = None,
    project_dir: str | None = None,
    connect_timeout: float = 10.0,
) -> ProjectTarget:
    """The target from the project file (if it exists or was named) and the flags."""
    path = project_file or Path(config.DEFAULT_FILE)
    loaded = None
    if project_file is not None or path.exists() or not (host and name):
        try:
            loaded = config.load(path)
        except ConfigError:
            if host and name:
                loaded = None
            else:
                raise
    if loaded is not None:
        spec = loaded.host_spec()
        target = ProjectTarget(spec, loaded.project.name, loaded.project.owner,
                               loaded.project_spec().project_dir)
    else:
        if not host or not name:
            raise UsageError("give --host and --project, or a project file")
        target = ProjectTarget(HostSpec(host), name, owner or "boincadm", "")
    h = target.host
    target = replace(
        target,
        host=HostSpec(host or h.host, user or h.user, port or h.port, key or h.key,
                      ssh_config or h.ssh_config, connect_timeout),
        name=check_name(name or target.name),
        owner=check_user(owner or target.owner),
    )
    renamed = bool(name) and (loaded is None or name != loaded.project.name)
    if project_dir or not target.project_dir or renamed:
        target = replace(target, project_dir=project_dir or
                         f"/home/{target.owner}/projects/{target.name}")
    if not target.project_dir.startswith("/"):
        raise UsageError(f"the project directory must be absolute, not {target.project_dir!r}")
    return target
