"""Cancelling many work units at once, as BOINC's ``cancel_jobs`` cancels one.

``cancel_jobs --name`` is a process and three statements per work unit: a master that ends with
100,000 work units out would spend most of an hour on it. This does what its ``cancel_job``
does (unsent results over as "didn't need", the work unit's error mask with "cancelled" and the
transitioner called) for up to ``CHUNK`` work units a statement, through the project's own
database (:mod:`pymw_admin.interfaces.boinc_database`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pymw_admin.interfaces.boinc_database import DatabaseError, query

CHUNK = 1000  # work-unit names a statement
# BOINC's constants (db/boinc_db_types.h)
RESULT_SERVER_STATE_UNSENT = 2
RESULT_SERVER_STATE_OVER = 5
RESULT_OUTCOME_DIDNT_NEED = 5
WU_ERROR_CANCELLED = 16


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
    try:
        query(project_root, "\n".join(statements))
    except DatabaseError as exc:
        raise CancelFailed(str(exc)) from None
