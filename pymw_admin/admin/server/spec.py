"""What the admin wants on the host: one typed object every step reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymw_admin.errors import UsageError

# BOINC puts the name into a database name, URLs (NAME, NAME_ops, NAME_cgi) and Apache aliases
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

DEFAULT_BOINC_SOURCE = "https://github.com/BOINC/boinc.git@server_release/1.6/1.6.2"
SECRETS_ROOT = "/etc/pymw-admin"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(
            f"invalid project name {name!r}: use 1-32 lower-case letters, digits or _, "
            "starting with a letter"
        )
    return name


def check_user(user: str) -> str:
    if not USER_RE.match(user) or user == "root":
        raise UsageError(f"invalid owner user {user!r}: use a plain non-root login name")
    return user


@dataclass(frozen=True)
class ProjectSpec:
    """The wanted project. Paths are on the host; nothing here is secret."""

    name: str
    url_base: str  # e.g. http://10.0.0.5/  (always ends with /)
    host_name: str  # BOINC's project_host: the host's short name, as `hostname` prints it
    owner: str = "boincadm"
    db_host: str = ""  # "" = the local MariaDB through its socket
    boinc_source: str = DEFAULT_BOINC_SOURCE
    project_dir: str = ""  # default ~owner/projects/NAME
    long_name: str = ""
    https_cert: str = ""  # paths on the host
    https_key: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        check_user(self.owner)
        if not self.url_base.startswith(("http://", "https://")):
            raise UsageError(f"invalid URL base {self.url_base!r}: it must start with http(s)://")
        if not self.url_base.endswith("/"):
            object.__setattr__(self, "url_base", self.url_base + "/")
        if not self.project_dir:
            object.__setattr__(self, "project_dir", f"{self.home}/projects/{self.name}")
        if not self.long_name:
            object.__setattr__(self, "long_name", self.name)
        if bool(self.https_cert) != bool(self.https_key):
            raise UsageError("HTTPS needs both --https-cert and --https-key")

    @property
    def home(self) -> str:
        return f"/home/{self.owner}"

    @property
    def db_name(self) -> str:
        return self.name

    @property
    def db_user(self) -> str:
        return self.name

    @property
    def master_url(self) -> str:
        return f"{self.url_base}{self.name}/"

    @property
    def ops_url(self) -> str:
        return f"{self.url_base}{self.name}_ops/"

    @property
    def cgi_url(self) -> str:
        return f"{self.url_base}{self.name}_cgi/"

    @property
    def secrets_dir(self) -> str:
        """Root-only (0700) directory of this project's secrets; its presence marks our project."""
        return f"{SECRETS_ROOT}/{self.name}"

    @property
    def db_password_file(self) -> str:
        return f"{self.secrets_dir}/db_password"

    @property
    def db_client_cnf(self) -> str:
        """A MySQL option file ([client] user/password) so no password is ever in argv."""
        return f"{self.secrets_dir}/client.cnf"

    @property
    def ops_password_file(self) -> str:
        return f"{self.secrets_dir}/ops_password"

    @property
    def marker_file(self) -> str:
        return f"{self.secrets_dir}/project"

    @property
    def making_marker(self) -> str:
        """Present (root-only) while make_project runs: a project directory without config.xml
        next to it was half made by pymw-admin and may be removed by the next run."""
        return f"{self.secrets_dir}/make_project.partial"

    @property
    def apache_site(self) -> str:
        return f"/etc/apache2/sites-available/pymw-{self.name}.conf"
