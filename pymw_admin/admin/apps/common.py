"""What every deploy step shares: paths in the project, commands as its owner, database reads."""

from __future__ import annotations

import shlex

from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server.database import user_mysql
from pymw_admin.admin.server.project import SYSTEM_PATH


def project_path(spec: Project, rel: str) -> str:
    return f"{spec.project_dir}/{rel}"


def as_owner(host: Host, spec: Project, command: str, *, what: str = "",
             check: bool = True, stdin: str | None = None, timeout: float = 600) -> str:
    """Run ``command`` in the project directory as its owner, with a plain system PATH.

    (BOINC's tools are ``#!/usr/bin/env python``/``php`` scripts: no pyenv shims on PATH.)
    """
    full = f"cd {shlex.quote(spec.project_dir)} && PATH={SYSTEM_PATH} {command}"
    return host.run(full, user=spec.owner, what=what or command.split()[0], check=check,
                    stdin=stdin, timeout=timeout).stdout


def sql_rows(host: Host, spec: Project, query: str) -> list[list[str]]:
    """Rows of a read-only query on the project's database (the password stays in its file)."""
    out = host.sudo(f"{user_mysql(spec)} -N -B -e {shlex.quote(query)}",
                    what="reading the project database").stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def quote_sql(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
