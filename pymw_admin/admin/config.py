"""The admin's project file, ``pymw-admin.toml``: where the project lives and how to reach it.

``init-project`` writes it; later commands (deploy-app, run, status) read it so the admin repeats no
flags. It holds no secrets: the database and ops passwords stay in root-only files on the server
(their paths are recorded here).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pymw_admin.admin.remote import HostSpec
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import ConfigError, UsageError

DEFAULT_FILE = "pymw-admin.toml"


@dataclass(frozen=True)
class HostSection:
    host: str
    user: str = ""
    port: int = 0
    key: str = ""
    ssh_config: str = ""

    def spec(self) -> HostSpec:
        return HostSpec(self.host, self.user or None, self.port or None, self.key or None,
                        self.ssh_config or None)


@dataclass(frozen=True)
class ProjectSection:
    name: str
    url_base: str
    host_name: str
    owner: str = "boincadm"
    db_host: str = ""
    dir: str = ""
    long_name: str = ""
    boinc_source: str = ""
    https_cert: str = ""
    https_key: str = ""
    acme_email: str = ""
    acme_server: str = ""
    acme_ca: str = ""


@dataclass(frozen=True)
class ProjectFile:
    host: HostSection
    project: ProjectSection

    def host_spec(self) -> HostSpec:
        return self.host.spec()

    def project_spec(self) -> ProjectSpec:
        p = self.project
        kwargs: dict[str, Any] = {
            "name": p.name, "url_base": p.url_base, "host_name": p.host_name, "owner": p.owner,
            "db_host": p.db_host, "project_dir": p.dir, "long_name": p.long_name,
            "https_cert": p.https_cert, "https_key": p.https_key, "acme_email": p.acme_email,
            "acme_server": p.acme_server, "acme_ca": p.acme_ca,
        }
        if p.boinc_source:
            kwargs["boinc_source"] = p.boinc_source
        return ProjectSpec(**kwargs)

    @classmethod
    def from_specs(cls, host: HostSpec, spec: ProjectSpec) -> ProjectFile:
        return cls(
            HostSection(host.host, host.user or "", host.port or 0, host.key or "",
                        host.ssh_config or ""),
            ProjectSection(spec.name, spec.url_base, spec.host_name, spec.owner, spec.db_host,
                           spec.project_dir, spec.long_name, spec.boinc_source, spec.https_cert,
                           spec.https_key, spec.acme_email, spec.acme_server, spec.acme_ca),
        )


def _section(cls: type, data: Any, name: str, path: Path) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown key {name}.{unknown[0]}")
    for key, value in data.items():
        want = int if known[key].type in ("int", int) else str
        if not isinstance(value, want) or isinstance(value, bool):
            raise ConfigError(f"{path}: {name}.{key} must be a {want.__name__}")
    try:
        return cls(**data)
    except TypeError as exc:
        missing = str(exc).rsplit(":", 1)[-1].strip()
        raise ConfigError(f"{path}: [{name}] is missing {missing}") from None


def load(path: str | Path = DEFAULT_FILE) -> ProjectFile:
    """Read a project file; any problem is one ConfigError line naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no project file {path}: run `pymw-admin init-project` first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for name in ("host", "project"):
        if name not in data:
            raise ConfigError(f"{path}: missing the [{name}] table")
    # [paths] was written by older versions: derivable from [project], so read and ignored
    unknown = sorted(set(data) - {"host", "project", "paths"})
    if unknown:
        raise ConfigError(f"{path}: unknown table [{unknown[0]}]")
    result = ProjectFile(
        _section(HostSection, data["host"], "host", path),
        _section(ProjectSection, data["project"], "project", path),
    )
    try:
        result.project_spec()
    except UsageError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return result


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text) + '"'


def dumps(project_file: ProjectFile) -> str:
    lines = ["# pymw-admin project file: written by `pymw-admin init-project`; holds no secrets"]
    for name in ("host", "project"):
        lines += ["", f"[{name}]"]
        for key, value in asdict(getattr(project_file, name)).items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def save(project_file: ProjectFile, path: str | Path = DEFAULT_FILE) -> Path:
    path = Path(path)
    path.write_text(dumps(project_file))
    return path
