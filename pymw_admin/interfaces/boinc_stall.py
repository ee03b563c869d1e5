"""A stalled BOINC run says why: its work units stay unsent and the log would otherwise be silent.

The interface's wait loop calls :meth:`StallWatch.tick` on every poll. While results come back
that costs a clock reading. Once the master has open work units and nothing came back for
``QUIET`` seconds, it asks the project's database, at most every ``CHECK_EVERY`` seconds, how
many of the tag's open work units have no result sent yet (one query, :func:`unsent_sql`). When
two looks in a row find some, none sent in between, and the oldest waiting longer than
``QUIET``, one line on stderr (the run's log) says so and why, as far as the server tells:

1. a daemon sending depends on is not running (the feeder, which hands results to the scheduler,
   or the transitioner, which makes a new work unit's results), read as ``status`` reads them: a
   live process behind ``pid_HOST/NAME.pid``, and no ``stop_daemons`` file;
2. else no volunteer host has asked the scheduler for work lately (``host.rpc_time``);
3. else the tag's other work units keep the hosts busy;
4. else hosts ask and are sent none of these (a platform without an app version, for one).

The line is said once a stall, again when the reason changes or every ``REPEAT`` seconds, and
one more says when work units are sent again. Nothing here may end a run: an error is one line,
once, and the check backs off.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from pymw_admin.interfaces.boinc_database import query

QUIET = 60.0  # seconds without a result before the database is asked
CHECK_EVERY = 30.0  # seconds between two looks at the database
REPEAT = 600.0  # a stall that goes on is said again this often
BACK_OFF = 300.0  # seconds before looking again after a look failed
HOST_SILENT = 90.0  # no scheduler request this long: no host asks (busy clients ask every 10 s)
QUERY_SECONDS = 10.0  # a database that hangs must not hold the wait loop for long
SENDING_DAEMONS = ("feeder", "transitioner")  # the daemons a work unit needs to be sent
_TAG = re.compile(r"[A-Za-z0-9_]+")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Unsent:
    """One look at the tag's open work units."""

    count: int  # none of their results sent yet (or none made yet)
    oldest: float  # the oldest of those one's create_time (epoch seconds)
    running: int  # with a result on a volunteer's host
    now: float  # the database's clock
    last_rpc: float  # the latest scheduler request of any host; 0: none ever


def unsent_sql(tag: str) -> str:
    """The tag's open work units (no canonical result, no error, not assimilated) counted by
    whether any of their results was sent, and the latest scheduler request.

    By work unit, not by unsent result: with the transitioner down a new work unit has no
    result at all. The name prefix is matched literally (``!`` escapes LIKE's ``_``); a tag
    another one begins with (``a`` and ``a_b``) counts that one's too: names cannot tell them
    apart.
    """
    if not _TAG.fullmatch(tag):
        raise ValueError(f"not a tag: {tag!r}")
    prefix = f"pymw_{tag}_".replace("_", "!_")
    return (
        "SELECT COALESCE(SUM(sent = 0), 0), COALESCE(MIN(IF(sent = 0, create_time, NULL)), 0), "
        "COALESCE(SUM(running), 0), UNIX_TIMESTAMP(), "
        "COALESCE((SELECT MAX(rpc_time) FROM host), 0) FROM ("
        "SELECT w.create_time, COALESCE(MAX(r.server_state IN (4, 5)), 0) AS sent, "
        "COALESCE(MAX(r.server_state = 4), 0) AS running "
        "FROM workunit w LEFT JOIN result r ON r.workunitid = w.id "
        f"WHERE w.name LIKE '{prefix}%' ESCAPE '!' AND w.canonical_resultid = 0 "
        "AND w.error_mask = 0 AND w.assimilate_state = 0 GROUP BY w.id, w.create_time) "
        "AS open_units;\n"
    )


def parse_unsent(text: str) -> Unsent:
    words = text.split()
    if len(words) != 5:
        raise ValueError(f"unexpected answer from the database: {text.strip()[:80]!r}")
    count, oldest, running, now, last_rpc = (float(w) for w in words)
    return Unsent(int(count), oldest, int(running), now, last_rpc)


def stopped_daemons(root: Path) -> str:
    """Why the project sends nothing, from its daemons alone ('' when they run): a
    ``stop_daemons`` file, or the sending daemons config.xml lists without a live process."""
    if (root / "stop_daemons").exists():
        return ("the project's daemons are stopped (a stop_daemons file: bin/start starts them; "
                "pymw-admin status)")
    try:
        top = etree.parse(str(root / "config.xml")).getroot()
    except (OSError, etree.XMLSyntaxError):
        return ""
    host = (top.findtext("config/host") or "").strip()
    down = []
    for daemon in top.iterfind("daemons/daemon"):  # beside <config>, as bin/start reads them
        words = (daemon.findtext("cmd") or "").split()
        program = words[0].rsplit("/", 1)[-1] if words else ""
        disabled = (daemon.findtext("disabled") or "0").strip() not in ("0", "")
        elsewhere = (daemon.findtext("host") or host).strip() != host  # bin/start runs it there
        if program not in SENDING_DAEMONS or disabled or elsewhere:
            continue
        pid_file = (daemon.findtext("pid_file") or "").strip() or program + ".pid"
        if "/" in pid_file or not _alive(root / f"pid_{host}" / pid_file):
            down.append(program)
    if not down:
        return ""
    names = " and ".join(dict.fromkeys(down))
    return (f"the {names} {'is' if len(down) == 1 else 'are'} not running "
            f"(bin/start starts {'it' if len(down) == 1 else 'them'}; pymw-admin status)")


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it lives
        return True
    return True


def _since(when: float, now: float) -> str:
    return time.strftime("%H:%M" if now - when < 86400 else "%Y-%m-%d %H:%M",
                         time.localtime(when))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def reason(root: Path, unsent: Unsent) -> str:
    """Why the work units wait, as far as the server tells: the first that holds of the
    module's four."""
    daemons = stopped_daemons(root)
    if daemons:
        return daemons
    if not unsent.last_rpc:
        return "no volunteer host has ever asked for work (attach a client, or wait)"
    if unsent.now - unsent.last_rpc > HOST_SILENT:
        return (f"no volunteer host has asked for work since "
                f"{_since(unsent.last_rpc, unsent.now)} (attach a client, or wait)")
    if unsent.running:
        return (f"{unsent.running} other(s) run on the volunteers' hosts and keep them busy "
                "(attach more clients, or wait)")
    return ("hosts ask for work but are sent none of these (pymw-admin status: the app "
            "versions' platforms, recent failures)")


class StallWatch:
    """Notices a tag's work units staying unsent while the master waits, and says why."""

    def __init__(self, root: Path, tag: str, *, now: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] = _say) -> None:
        self.root = root
        self.tag = tag
        self._now = now
        self._say = say
        self._quiet_since: float | None = None  # open work units, nothing back since then
        self._next_look = 0.0
        self._previous: int | None = None  # unsent at the last look
        self._said = ""  # the reason of the stall on now; '' when none is
        self._said_at = 0.0
        self._failed = False  # a look failed and said so

    def tick(self, open_units: int, came_back: bool) -> None:
        """One poll of the wait loop: how many work units are open, whether any came back."""
        try:
            self._tick(open_units, came_back)
        except Exception as exc:  # a look at the server must never end the run
            self._next_look = self._now() + BACK_OFF
            if not self._failed:
                self._failed = True
                self._say(f"pymw: cannot tell whether work units are being sent ({exc})")

    def _tick(self, open_units: int, came_back: bool) -> None:
        now = self._now()
        if not open_units:
            self._over()
            self._quiet_since, self._previous = None, None
            return
        if came_back or self._quiet_since is None:
            self._quiet_since = now
        # a stall said is looked at until it is over, results or not
        if (not self._said and now - self._quiet_since < QUIET) or now < self._next_look:
            return
        self._next_look = now + CHECK_EVERY
        unsent = parse_unsent(query(self.root, unsent_sql(self.tag), QUERY_SECONDS))
        previous, self._previous = self._previous, unsent.count
        if not unsent.count or (previous is not None and unsent.count < previous):
            self._over()
            return
        if previous is None or unsent.now - unsent.oldest <= QUIET:
            return  # one look cannot tell a stall from a slow trickle
        why = reason(self.root, unsent)
        if why == self._said and now - self._said_at < REPEAT:
            return
        self._said, self._said_at = why, now
        self._say(f"pymw: {unsent.count} work unit(s) unsent for "
                  f"{_duration(unsent.now - unsent.oldest)}: {why}")

    def _over(self) -> None:
        if self._said:
            self._said = ""
            self._say("pymw: work units are being sent again")
