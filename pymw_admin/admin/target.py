"""Which project on which host a command acts on: the project file, overridden by flags.

``run``, ``runs``, ``status`` and friends need only the host, the project's name, owner and
directory; they read them from pymw-admin.toml (written by init-project) and let flags replace any
of them, so they also work with flags alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pymw_admin.admin import config
from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import HostSpec
from pymw_admin.errors import ConfigError, UsageError


@dataclass(frozen=True, kw_only=True)
class ProjectTarget(Project):
    """A Project and the host it is on."""

    host: HostSpec


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
        h = loaded.host_spec()
        wanted = loaded.project_spec()
        known_name, known_owner, known_dir = wanted.name, wanted.owner, wanted.project_dir
    else:
        if not host or not name:
            raise UsageError("give --host and --project, or a project file")
        h = HostSpec(host)
        known_name, known_owner, known_dir = name, "boincadm", ""
    renamed = bool(name) and name != known_name
    default_dir = "" if renamed else known_dir  # a renamed project has its own default
    return ProjectTarget(
        name=name or known_name,
        owner=owner or known_owner,
        project_dir=project_dir or default_dir,
        host=HostSpec(host or h.host, user or h.user, port or h.port, key or h.key,
                      ssh_config or h.ssh_config, connect_timeout),
    )
