"""What the admin wants on the host: one typed object every step reads."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pymw_admin.admin.project import SECRETS_ROOT, Project, check_name, check_user
from pymw_admin.errors import UsageError

__all__ = ["DEFAULT_BOINC_SOURCE", "SECRETS_ROOT", "ProjectSpec", "check_name", "check_user"]

SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9._/-]*$")
DB_HOST_RE = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
URL_BASE_RE = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&*+,;=%\[\]-]+$")
DEFAULT_BOINC_SOURCE = "https://github.com/BOINC/boinc.git@server_release/1.6/1.6.2"


@dataclass(frozen=True)
class ProjectSpec(Project):
    """The wanted project: the Project and what making it needs. Paths are on the host; nothing
    here is secret."""

    url_base: str  # e.g. http://10.0.0.5/  (always ends with /)
    host_name: str  # BOINC's project_host: the host's short name, as `hostname` prints it
    db_host: str = ""  # "" = the local MariaDB through its socket
    boinc_source: str = DEFAULT_BOINC_SOURCE
    long_name: str = ""
    https_cert: str = ""  # paths on the host
    https_key: str = ""
    acme_email: str = ""  # set: the certificate comes from an ACME CA (certbot), renewed by cron
    acme_server: str = ""  # the CA's ACME directory URL ("" = certbot's default CA)
    acme_ca: str = ""  # a CA file on the host to trust when talking to a private acme_server
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.url_base.startswith(("http://", "https://")):
            raise UsageError(f"invalid URL base {self.url_base!r}: it must start with http(s)://")
        if not self.url_base.endswith("/"):
            object.__setattr__(self, "url_base", self.url_base + "/")
        if not self.long_name:
            object.__setattr__(self, "long_name", self.name)
        if bool(self.https_cert) != bool(self.https_key):
            raise UsageError("HTTPS needs both --https-cert and --https-key")
        # these go unquoted into the crontab, the Apache site and client.cnf: plain values only
        for what, value in (("project directory", self.project_dir),
                            ("--https-cert", self.https_cert), ("--https-key", self.https_key)):
            if value and not SAFE_PATH_RE.match(value):
                raise UsageError(f"invalid {what} {value!r}: use an absolute path of letters, "
                                 "digits and . _ - / only")
        if self.db_host and not DB_HOST_RE.match(self.db_host):
            raise UsageError(f"invalid --db-host {self.db_host!r}: give a host name or address")
        if not URL_BASE_RE.match(self.url_base):
            raise UsageError(f"invalid URL base {self.url_base!r}: no spaces, quotes or "
                             "control characters")
        if self.acme_email:
            self._check_acme()

    def _check_acme(self) -> None:
        if self.https_cert:
            raise UsageError("choose one: --https acme or --https-cert/--https-key")
        if "@" not in self.acme_email or any(c.isspace() for c in self.acme_email):
            raise UsageError(f"invalid --acme-email {self.acme_email!r}")
        if not self.url_base.startswith("https://"):
            raise UsageError(f"--https acme needs an https:// URL base, not {self.url_base!r}")
        if self.acme_server and not (self.acme_server.startswith("https://")
                                     and URL_BASE_RE.match(self.acme_server)):
            raise UsageError(f"invalid --acme-server {self.acme_server!r}: it must be https://")
        if self.acme_ca and not SAFE_PATH_RE.match(self.acme_ca):
            raise UsageError(f"invalid --acme-ca {self.acme_ca!r}: use an absolute path of "
                             "letters, digits and . _ - / only")
        domain = self.domain
        try:
            ipaddress.ip_address(domain)
        except ValueError:
            pass
        else:
            raise UsageError(f"an ACME certificate needs a DNS name, not the address {domain}: "
                             "give --url-base https://NAME/")
        if not re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
                        domain):
            raise UsageError(f"an ACME certificate needs a DNS name (a.b), not {domain!r}")

    @property
    def https(self) -> bool:
        return bool(self.https_cert or self.acme_email)

    @property
    def domain(self) -> str:
        """The host name in the URL base (what an ACME certificate is for)."""
        return (urlsplit(self.url_base).hostname or "").lower()

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
    def db_password_file(self) -> str:
        return f"{self.secrets_dir}/db_password"

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
