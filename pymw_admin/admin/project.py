"""Which project, where: the one type every admin command names a project by.

``Project`` is what a command needs to find a project on its host (name, owner, directory, and
what follows from them); init-project's wanted ``ProjectSpec`` extends it with what making the
project needs, ``ProjectTarget`` with the host to reach it on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymw_admin.errors import UsageError

# BOINC puts the name into a database name, URLs (NAME, NAME_ops, NAME_cgi) and Apache aliases
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

SECRETS_ROOT = "/etc/pymw-admin"


def checked(value: str, pattern: re.Pattern[str], what: str, rule: str) -> str:
    """``value`` when ``pattern`` matches it, else a UsageError saying ``rule``."""
    if not pattern.match(value):
        raise UsageError(f"invalid {what} {value!r}: {rule}")
    return value


def check_name(name: str) -> str:
    return checked(name, NAME_RE, "project name",
                   "use 1-32 lower-case letters, digits or _, starting with a letter")


def check_user(user: str) -> str:
    if not USER_RE.match(user) or user == "root":
        raise UsageError(f"invalid owner user {user!r}: use a plain non-root login name")
    return user


@dataclass(frozen=True)
class Project:
    name: str
    # keyword-only, so a subclass's own fields follow the name positionally
    owner: str = field(default="boincadm", kw_only=True)
    project_dir: str = field(default="", kw_only=True)  # default ~owner/projects/NAME

    def __post_init__(self) -> None:
        check_name(self.name)
        check_user(self.owner)
        if not self.project_dir:
            object.__setattr__(self, "project_dir", f"{self.home}/projects/{self.name}")
        if not self.project_dir.startswith("/"):
            raise UsageError(f"the project directory must be absolute, not {self.project_dir!r}")

    @property
    def home(self) -> str:
        return f"/home/{self.owner}"

    @property
    def db_name(self) -> str:
        return self.name

    @property
    def secrets_dir(self) -> str:
        """Root-only (0700) directory of this project's secrets; its presence marks our project."""
        return f"{SECRETS_ROOT}/{self.name}"

    @property
    def db_client_cnf(self) -> str:
        """A MySQL option file ([client] user/password) so no password is ever in argv."""
        return f"{self.secrets_dir}/client.cnf"
