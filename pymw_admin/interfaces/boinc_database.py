"""The project's database as the project's owner reaches it: ``mysql`` with the credentials of
the project's config.xml (which the owner running a master reads). The password goes through a
private option file, never the command line.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from lxml import etree

TIMEOUT = 300.0  # seconds for one mysql run


class DatabaseError(Exception):
    """The database could not be reached or refused the statements (one line: mysql's last)."""


def query(project_root: Path, statements: str, timeout: float = TIMEOUT) -> str:
    """Run ``statements`` in the project's database; what they print, tab-separated rows
    without headers (mysql's batch mode)."""
    return _mysql(_credentials(project_root), statements, timeout)


def _credentials(project_root: Path) -> dict[str, str]:
    try:
        config = etree.parse(str(project_root / "config.xml")).find("config")
    except (OSError, etree.XMLSyntaxError) as exc:
        raise DatabaseError(f"cannot read config.xml: {exc}") from None
    if config is None:
        raise DatabaseError("config.xml has no <config>")
    values = {tag: (config.findtext(tag) or "").strip()
              for tag in ("db_name", "db_user", "db_passwd", "db_host")}
    if not values["db_name"] or not values["db_user"]:
        raise DatabaseError("config.xml names no database")
    return values


def _option_value(text: str) -> str:
    """``text`` as a value in a MySQL option file: quoted, since a ``#`` would start a comment
    and a ``\\`` an escape."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _mysql(credentials: dict[str, str], statements: str, timeout: float = TIMEOUT) -> str:
    fd, option_file = tempfile.mkstemp(prefix="pymw-db-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"[client]\nuser={_option_value(credentials['db_user'])}\n"
                    f"password={_option_value(credentials['db_passwd'])}\n"
                    + (f"host={_option_value(credentials['db_host'])}\n"
                       if credentials["db_host"] else ""))
        try:
            done = subprocess.run(
                ["mysql", f"--defaults-extra-file={option_file}", "-N", "-B",
                 credentials["db_name"]], input=statements, capture_output=True, text=True,
                timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DatabaseError(str(exc)) from None
        if done.returncode != 0:
            raise DatabaseError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                                else f"mysql exited {done.returncode}")
        return done.stdout
    finally:
        os.unlink(option_file)
