"""Cancelling many work units at once, as BOINC's ``cancel_jobs`` cancels one.

``cancel_jobs --name`` is a process and three statements per work unit: a master that ends with
100,000 work units out would spend most of an hour on it. This does what its ``cancel_job``
does (unsent results over as "didn't need", the work unit's error mask with "cancelled" and the
transitioner called) for up to ``CHUNK`` work units a statement, through the project's own
database (:mod:`pymw_admin.interfaces.boinc_database`).

Unlike ``cancel_job``, it leaves finished work units alone: one with a canonical result, or one
the transitioner handed to the assimilator, stays as BOINC has it (done stays done, never
"cancelled" after the fact).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pymw_admin.interfaces.boinc_database import DatabaseError, query

CHUNK = 1000  # work-unit names a statement
# BOINC's constants (db/boinc_db_types.h)
RESULT_SERVER_STATE_UNSENT = 2
RESULT_SERVER_STATE_OVER = 5
RESULT_OUTCOME_DIDNT_NEED = 5
WU_ERROR_CANCELLED = 16
ASSIMILATE_READY = 1  # and ASSIMILATE_DONE = 2: the work unit's fate is decided


def _unfinished(table: str = "") -> str:
    """Not validated, nor handed to the assimilator (as a success or an error): BOINC is not
    done with the work unit."""
    return f"{table}canonical_resultid=0 AND {table}assimilate_state<{ASSIMILATE_READY}"


class CancelFailed(Exception):
    """The database could not be reached or refused the statements."""


@dataclass(frozen=True)
class Cancelled:
    """What :func:`cancel_work_units` did with the names it was given."""

    cancelled: list[str]  # cancelled now, or unknown to the database (nothing of them runs)
    finished: list[str]  # left as they were: BOINC was done with them


def cancel_work_units(project_root: Path, names: Iterable[str]) -> Cancelled:
    """Cancel the named work units (names as the interface makes them: letters, digits, _),
    except those BOINC is done with."""
    names = list(names)
    if not names:
        return Cancelled([], [])
    for name in names:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a work-unit name: {name!r}")
    statements = []
    for start in range(0, len(names), CHUNK):
        listed = ",".join(f"'{name}'" for name in names[start : start + CHUNK])
        statements += [
            f"UPDATE result r JOIN workunit w ON r.workunitid=w.id "
            f"SET r.server_state={RESULT_SERVER_STATE_OVER}, r.outcome={RESULT_OUTCOME_DIDNT_NEED}"
            f" WHERE r.server_state<={RESULT_SERVER_STATE_UNSENT} AND {_unfinished('w.')}"
            f" AND w.name IN ({listed});",
            f"UPDATE workunit SET error_mask=error_mask|{WU_ERROR_CANCELLED}, "
            f"transition_time=UNIX_TIMESTAMP() WHERE {_unfinished()} AND name IN ({listed});",
            # after the updates, not before: a work unit validated in between is then told
            # right (the update skipped it, so its mask has no "cancelled"), without locks
            f"SELECT name FROM workunit WHERE error_mask&{WU_ERROR_CANCELLED}=0 AND "
            f"NOT ({_unfinished()}) AND name IN ({listed});",
        ]
    try:
        said = query(project_root, "\n".join(statements))
    except DatabaseError as exc:
        raise CancelFailed(str(exc)) from None
    finished = set(said.split()) & set(names)
    return Cancelled([n for n in names if n not in finished], [n for n in names if n in finished])
