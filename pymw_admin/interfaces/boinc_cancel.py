"""Cancelling many work units at once, as BOINC's ``cancel_jobs`` cancels one.

``cancel_jobs --name`` is a process and three statements per work unit: a master that ends with
100,000 work units out would spend most of an hour on it. This does what its ``cancel_job``
does (unsent results over as "didn't need", the work unit's error mask with "cancelled" and the
transitioner called) for up to ``CHUNK`` work units a statement, through the project's own
database credentials (config.xml, which the owner running the master reads); the password goes
through a private option file, never the command line.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from lxml import etree

CHUNK = 1000  # work-unit names a statement
# BOINC's constants (db/boinc_db_types.h)
RESULT_SERVER_STATE_UNSENT = 2
RESULT_SERVER_STATE_OVER = 5
RESULT_OUTCOME_DIDNT_NEED = 5
WU_ERROR_CANCELLED = 16
TIMEOUT = 300.0  # seconds for one mysql run


class CancelFailed(Exception):
    """The database could not be reached or refused the statements."""


def cancel_work_units(project_root: Path, names: Iterable[str]) -> None:
    """Cancel the named work units (names as the interface makes them: letters, digits, _)."""
    names = list(names)
    if not names:
        return
    for name in names:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a work-unit name: {name!r}")
    credentials = _credentials(project_root)
    statements = []
    for start in range(0, len(names), CHUNK):
        listed = ",".join(f"'{name}'" for name in names[start : start + CHUNK])
        statements += [
            f"UPDATE result r JOIN workunit w ON r.workunitid=w.id "
            f"SET r.server_state={RESULT_SERVER_STATE_OVER}, r.outcome={RESULT_OUTCOME_DIDNT_NEED}"
            f" WHERE r.server_state<={RESULT_SERVER_STATE_UNSENT} AND w.name IN ({listed});",
            f"UPDATE workunit SET error_mask=error_mask|{WU_ERROR_CANCELLED}, "
            f"transition_time=UNIX_TIMESTAMP() WHERE name IN ({listed});",
        ]
    _mysql(credentials, "\n".join(statements))


def _credentials(project_root: Path) -> dict[str, str]:
    try:
        config = etree.parse(str(project_root / "config.xml")).find("config")
    except (OSError, etree.XMLSyntaxError) as exc:
        raise CancelFailed(f"cannot read config.xml: {exc}") from None
    if config is None:
        raise CancelFailed("config.xml has no <config>")
    values = {tag: (config.findtext(tag) or "").strip()
              for tag in ("db_name", "db_user", "db_passwd", "db_host")}
    if not values["db_name"] or not values["db_user"]:
        raise CancelFailed("config.xml names no database")
    return values


def _option_value(text: str) -> str:
    """``text`` as a value in a MySQL option file: quoted, since a ``#`` would start a comment
    and a ``\\`` an escape."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _mysql(credentials: dict[str, str], statements: str) -> None:
    fd, option_file = tempfile.mkstemp(prefix="pymw-cancel-")
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
                timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CancelFailed(str(exc)) from None
        if done.returncode != 0:
            raise CancelFailed(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                               else f"mysql exited {done.returncode}")
    finally:
        os.unlink(option_file)
