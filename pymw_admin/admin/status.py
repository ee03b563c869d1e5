"""The project's state in one reading: daemons, work by state per app, what the tasks did per
app and run tag, recent failures, runs.

Counts come from BOINC's database, read on the server with ``mysql --defaults-extra-file=`` the
project's root-only client.cnf (as root), so no password is ever in argv. What the states mean
(BOINC server 1.6, db/boinc_db_types.h and lib/common_defs.h):

results   unsent       server_state INACTIVE (1) or UNSENT (2)
          in_progress  server_state IN_PROGRESS (4)
          done         server_state OVER (5), outcome SUCCESS (1)
          cancelled    OVER, and no longer wanted: its work unit cancelled (error_mask bit
                       WU_ERROR_CANCELLED, 16) and the result not sent (DIDNT_NEED, 5), not heard
                       of (NO_REPLY, 4) or aborted (CLIENT_ERROR, 3, client_state ABORTED, 6); or
                       aborted at the project's word (exit status EXIT_ABORTED_BY_PROJECT, 202)
          errored      OVER, outcome COULDNT_SEND, CLIENT_ERROR, NO_REPLY, VALIDATE_ERROR or
                       CLIENT_DETACHED (2, 3, 4, 6, 7), and not cancelled
          not_needed   OVER, outcome DIDNT_NEED (5): a canonical result or an error came first
work units cancelled   error_mask has WU_ERROR_CANCELLED (16): a master, ``stop`` or ``runs drop``
          errored      any other error_mask bit
          done         no error and a canonical result
          in_progress  neither, and some result was sent (IN_PROGRESS or OVER)
          unsent       none of its results has been sent yet

A task that raised is a BOINC success (its result record says ok false): what the tasks did
comes from the assimilator's tally (``PROJECT/pymw/outcomes/APP.json``, see
project_scripts/pymw_assimilator.py), read as the project's owner.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from xml.sax.saxutils import unescape

from pymw_admin.admin import platforms, runs
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import daemons
from pymw_admin.admin.target import ProjectTarget
from pymw_admin.errors import PymwError, RemoteError
from pymw_admin.wire import boinc_contract as contract
from pymw_admin.wire.boinc_contract import describe_error_mask

RESULT_STATES = ("unsent", "in_progress", "done", "errored", "not_needed", "cancelled")
WU_STATES = ("unsent", "in_progress", "done", "errored", "cancelled")
OUTCOMES = {0: "init", 1: "success", 2: "couldn't send", 3: "client error", 4: "no reply",
            5: "didn't need", 6: "validate error", 7: "client detached"}
ERROR_OUTCOMES = (2, 3, 4, 6, 7)
CLIENT_STATES = {0: "new", 1: "downloading", 2: "downloaded", 3: "compute error",
                 4: "uploading", 5: "uploaded", 6: "aborted", 7: "upload failed"}
WU_ERROR_CANCELLED = 16
CLIENT_ABORTED = 6
EXIT_ABORTED_BY_PROJECT = 202
# what a client error's exit status says (BOINC's lib/error_numbers.h)
EXIT_STATUSES = {
    193: "killed by a signal", 194: "aborted by the client", 196: "disk limit exceeded",
    197: "time limit exceeded", 198: "memory limit exceeded", 199: "the client was exiting",
    200: "not started by its deadline", 201: "missing coprocessor",
    EXIT_ABORTED_BY_PROJECT: "aborted by the project", 203: "aborted by the volunteer",
    -114: "download gave up", -115: "upload gave up", -119: "MD5 check failed",
    -120: "signature check failed", -131: "output file too big", -148: "could not exec the app",
    -163: "file missing", -185: "could not start", -186: "download failed",
    -187: "upload failed", -197: "aborted by the volunteer",
}
FAILURE_LIMIT = 10
EXAMPLES_PER_TYPE = 3  # tasks that raised shown per exception type, newest first
OUTCOMES_READ_MAX = 16 << 20  # bytes of one app's tally read, as many as the assimilator reads
STDERR_BYTES = 4000
# the app API's own lines: "12:34:56 (1234): called boinc_finish(0)"
_BOINC_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \(\d+\):")


def result_state(server_state: int, outcome: int, client_state: int = 0, exit_status: int = 0,
                 wu_cancelled: bool = False) -> str:
    if server_state in (1, 2):
        return "unsent"
    if server_state == 4:
        return "in_progress"
    if outcome == 1:
        return "done"
    aborted = outcome == 3 and client_state == CLIENT_ABORTED
    if (wu_cancelled and (outcome in (4, 5) or aborted)) or (
            aborted and exit_status == EXIT_ABORTED_BY_PROJECT):
        return "cancelled"
    if outcome == 5:
        return "not_needed"
    return "errored"


# result_state's "cancelled" for a finished (OVER) result ``r`` of work unit ``w``
CANCELLED_RESULT_SQL = (
    f"(((w.error_mask & {WU_ERROR_CANCELLED}) <> 0 AND (r.outcome IN (4, 5) OR "
    f"(r.outcome = 3 AND r.client_state = {CLIENT_ABORTED}))) OR "
    f"(r.outcome = 3 AND r.client_state = {CLIENT_ABORTED} "
    f"AND r.exit_status = {EXIT_ABORTED_BY_PROJECT}))")


def wu_state(error_mask: int, canonical: bool, sent: bool) -> str:
    if error_mask & WU_ERROR_CANCELLED:
        return "cancelled"
    if error_mask:
        return "errored"
    if canonical:
        return "done"
    return "in_progress" if sent else "unsent"


def failure_reason(outcome: int, client_state: int, exit_status: int) -> str:
    """A failed result's outcome in words; a client error's with its client state and exit
    status (and what BOINC means by the status, when it is one of BOINC's)."""
    head = OUTCOMES.get(outcome, f"outcome {outcome}")
    if outcome != 3:
        return head
    meaning = EXIT_STATUSES.get(exit_status)
    status = f"exit status {exit_status}" + (f": {meaning}" if meaning else "")
    return f"{head} ({CLIENT_STATES.get(client_state, client_state)}, {status})"


wu_error_text = describe_error_mask


def stderr_reason(stderr_out: str) -> str:
    """One line from a result's stderr_out: BOINC's <message>, and the last line of the task's own
    stderr (where a Python traceback ends with the exception)."""
    text = stderr_out
    message = ""
    if "<message>" in text:
        message = text.split("<message>", 1)[1].split("</message>", 1)[0].strip()
    body = text
    if "<stderr_txt>" in body:
        body = body.split("<stderr_txt>", 1)[1].split("</stderr_txt>", 1)[0]
    lines = [unescape(line.strip()) for line in body.splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(("<", "]]>"))
              and not _BOINC_LOG_LINE.match(ln)]
    last = useful[-1] if useful else ""
    reason = "; ".join(part for part in (unescape(message), last) if part)
    return reason[:300]


@dataclass
class AppCounts:
    name: str
    workunits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WU_STATES, 0))
    results: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULT_STATES, 0))


@dataclass(frozen=True)
class Failure:
    kind: str  # "result" or "workunit"
    name: str
    workunit: str
    app: str
    when: float
    reason: str


@dataclass(frozen=True)
class RaisedExample:
    """A task that raised, as the assimilator kept it (the message's first line)."""

    error_type: str
    message: str
    workunit: str
    when: float


@dataclass(frozen=True)
class FailureCount:
    """How many results (``kind`` "result") or work units ("workunit") failed for one reason,
    and when the newest did."""

    kind: str
    reason: str
    count: int
    last: float


@dataclass
class TaskOutcomes:
    """What an app's tasks did: those of one run tag (``tag``; "" for work units no master of
    ours named), or with ``tag`` None all of the app's, ``tags`` holding each tag's.

    ``workunits`` by state (from the database); of those done, ``ok`` returned and ``raised``
    raised, by exception type (from the assimilator's tally, which counts what it filed since
    it was deployed); ``unreadable``: results whose record could not be read; ``failed``: results
    and work units that failed, by reason; ``cancelled_results``: results of work no longer
    wanted (cancelled work units are ``workunits["cancelled"]``).
    """

    app: str
    tag: str | None = None
    runs: list[str] = field(default_factory=list)
    workunits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WU_STATES, 0))
    ok: int = 0
    raised: dict[str, int] = field(default_factory=dict)
    examples: list[RaisedExample] = field(default_factory=list)  # newest first
    unreadable: int = 0
    failed: list[FailureCount] = field(default_factory=list)
    cancelled_results: int = 0
    last: float = 0.0
    tags: list[TaskOutcomes] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Anything to show: work units, or results filed."""
        return bool(sum(self.workunits.values()) or self.ok or self.raised or self.unreadable
                    or self.failed or self.cancelled_results)

    def add_failure(self, kind: str, reason: str, count: int, last: float) -> None:
        for i, known in enumerate(self.failed):
            if (known.kind, known.reason) == (kind, reason):
                self.failed[i] = FailureCount(kind, reason, known.count + count,
                                              max(known.last, last))
                break
        else:
            self.failed.append(FailureCount(kind, reason, count, last))
        self.last = max(self.last, last)

    def add(self, other: TaskOutcomes) -> None:
        """Count ``other``'s (one of the app's tags) in these."""
        for state, count in other.workunits.items():
            self.workunits[state] = self.workunits.get(state, 0) + count
        self.ok += other.ok
        self.unreadable += other.unreadable
        for error_type, count in other.raised.items():
            self.raised[error_type] = self.raised.get(error_type, 0) + count
        self.examples = newest_examples([*self.examples, *other.examples])
        for failure in other.failed:
            self.add_failure(failure.kind, failure.reason, failure.count, failure.last)
        self.cancelled_results += other.cancelled_results
        self.last = max(self.last, other.last)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"app": self.app}
        if self.tag is not None:
            data.update(tag=self.tag, runs=self.runs)
        data.update(
            workunits=self.workunits, ok=self.ok,
            raised=dict(sorted(self.raised.items(), key=lambda item: -item[1])),
            raised_examples=[asdict(e) for e in self.examples], unreadable=self.unreadable,
            failed=[asdict(f) for f in sorted(self.failed, key=lambda f: -f.count)],
            cancelled={"workunits": self.workunits.get("cancelled", 0),
                       "results": self.cancelled_results},
            last=round(self.last, 3) or None)
        if self.tag is None:
            data["tags"] = [t.as_dict() for t in self.tags]
        return data


def newest_examples(examples: Iterable[RaisedExample],
                    per_type: int = EXAMPLES_PER_TYPE) -> list[RaisedExample]:
    """The newest ``per_type`` examples of each exception type, newest first."""
    kept: list[RaisedExample] = []
    seen: dict[str, int] = {}
    for example in sorted(examples, key=lambda e: e.when, reverse=True):
        if seen.get(example.error_type, 0) < per_type:
            seen[example.error_type] = seen.get(example.error_type, 0) + 1
            kept.append(example)
    return kept


@dataclass(frozen=True)
class VolunteerHost:
    """A client that has talked to the scheduler (BOINC's host table)."""

    id: int
    name: str
    platform: str  # the OS the client reported (os_name os_version)
    cpu: str
    ncpus: int
    last_contact: float  # rpc_time: its last scheduler request (epoch seconds)


@dataclass
class VersionReach:
    """The deployed app versions' platforms and the share of volunteer hosts they can serve."""

    platforms: list[str] = field(default_factory=list)
    hosts_by_platform: dict[str, int] = field(default_factory=dict)  # "" = not told

    @property
    def hosts(self) -> int:
        return sum(self.hosts_by_platform.values())

    @property
    def hosts_served(self) -> int:
        return sum(n for p, n in self.hosts_by_platform.items()
                   if platforms.can_serve(p, self.platforms))

    def as_dict(self) -> dict[str, object]:
        return {"platforms": self.platforms, "hosts_by_platform": self.hosts_by_platform,
                "hosts": self.hosts, "hosts_served": self.hosts_served,
                "share": round(self.hosts_served / self.hosts, 3) if self.hosts else None}


@dataclass
class Status:
    project: str
    host: str
    time: float
    daemons: dict[str, bool]
    daemons_disabled: bool
    apps: list[AppCounts]
    failures: list[Failure]
    runs: list[runs.RunInfo]
    database_error: str = ""
    versions: VersionReach = field(default_factory=VersionReach)
    web_error: str = ""  # the master URL did not answer (Apache down, site missing)
    project_error: str = ""  # the directory is not this project's
    hosts: list[VolunteerHost] = field(default_factory=list)
    tasks: list[TaskOutcomes] = field(default_factory=list)  # per app, each with its tags
    tasks_error: str = ""  # the assimilator's tallies could not be read

    @property
    def daemons_up(self) -> bool:
        return bool(self.daemons) and all(self.daemons.values()) and not self.daemons_disabled

    @property
    def problems(self) -> list[str]:
        """Why the project is not healthy; empty when it is."""
        found = [e for e in (self.project_error, self.web_error) if e]
        if self.database_error:
            found.append(f"database: {self.database_error}")
        if not self.daemons:
            found.append("no daemons configured")
        elif self.daemons_disabled:
            found.append("daemons disabled (stop_daemons file present)")
        down = [name for name, up in self.daemons.items() if not up]
        if down and not self.daemons_disabled:
            found.append("daemons down: " + ", ".join(down))
        return found

    def as_dict(self) -> dict[str, object]:
        known = not self.database_error  # counts read from no database are unknown, not zero
        return {
            "project": self.project, "host": self.host, "time": round(self.time, 3),
            "healthy": not self.problems, "problems": self.problems,
            "daemons": {"up": self.daemons_up, "disabled": self.daemons_disabled,
                        "running": self.daemons},
            "web": {"up": not self.web_error, "error": self.web_error or None},
            "apps": [asdict(a) for a in self.apps] if known else None,
            "totals": {"workunits": _totals(WU_STATES, (a.workunits for a in self.apps)),
                       "results": _totals(RESULT_STATES, (a.results for a in self.apps))}
            if known else None,
            "failures": [asdict(f) for f in self.failures] if known else None,
            "hosts": [asdict(h) for h in self.hosts] if known else None,
            "tasks": [t.as_dict() for t in self.tasks] if known else None,
            "tasks_error": self.tasks_error or None,
            "runs": [r.as_dict() for r in self.runs],
            "versions": self.versions.as_dict(),
            "database_error": self.database_error or None,
        }


def _totals(states: Iterable[str], counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(states, 0)
    for one in counts:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return total


# -- the database readings ------------------------------------------------------------------------
# contract.run_tag in SQL: the name's form by REGEXP (MariaDB's and MySQL's alike), and the tag
# what lies between "pymw_" (5 characters) and the task id's last two parts
_WU_NAME_REGEXP = contract.WU_NAME.pattern.replace("(?P<tag>", "(")
TAG_SQL = (f"IF(w.name REGEXP '{_WU_NAME_REGEXP}', SUBSTRING(w.name, 6, CHAR_LENGTH(w.name) - 6 "
           "- CHAR_LENGTH(SUBSTRING_INDEX(w.name, '_', -2))), '')")


def status_sql(limit: int = FAILURE_LIMIT) -> str:
    """One batch of queries; each section starts with a marker row so the output splits cleanly.

    Finished results that did not succeed are counted by run tag with their work unit's fate
    (@result_outcomes), all others by state (@results); cancelled work is never a failure.
    """
    errors = ",".join(str(o) for o in ERROR_OUTCOMES)
    return f"""
SELECT '@apps';
SELECT name FROM app WHERE deprecated = 0 ORDER BY name;
SELECT '@results';
SELECT a.name, r.server_state, r.outcome, COUNT(*) FROM result r JOIN app a ON a.id = r.appid
 WHERE r.server_state <> 5 OR r.outcome = 1 GROUP BY a.name, r.server_state, r.outcome;
SELECT '@result_outcomes';
SELECT a.name, {TAG_SQL}, r.outcome, r.client_state, r.exit_status,
 (w.error_mask & {WU_ERROR_CANCELLED}) <> 0, COUNT(*),
 MAX(GREATEST(r.received_time, UNIX_TIMESTAMP(r.mod_time)))
 FROM result r JOIN workunit w ON w.id = r.workunitid JOIN app a ON a.id = r.appid
 WHERE r.server_state = 5 AND r.outcome <> 1 GROUP BY 1, 2, 3, 4, 5, 6;
SELECT '@workunits';
SELECT a.name, {TAG_SQL}, w.error_mask, w.canonical_resultid <> 0,
 EXISTS (SELECT 1 FROM result r WHERE r.workunitid = w.id AND r.server_state IN (4, 5)), COUNT(*),
 MAX(UNIX_TIMESTAMP(w.mod_time))
 FROM workunit w JOIN app a ON a.id = w.appid GROUP BY 1, 2, 3, 4, 5;
SELECT '@failed_results';
SELECT r.name, w.name, a.name, r.outcome, r.client_state, r.exit_status,
 GREATEST(r.received_time, UNIX_TIMESTAMP(r.mod_time)),
 HEX(RIGHT(COALESCE(r.stderr_out, ''), {STDERR_BYTES}))
 FROM result r JOIN workunit w ON w.id = r.workunitid JOIN app a ON a.id = r.appid
 WHERE r.server_state = 5 AND r.outcome IN ({errors}) AND NOT {CANCELLED_RESULT_SQL}
 ORDER BY r.mod_time DESC, r.id DESC LIMIT {int(limit)};
SELECT '@hosts';
SELECT h.id, COALESCE(h.domain_name, ''), CONCAT_WS(' ', h.os_name, h.os_version),
 COALESCE(h.p_model, ''), h.p_ncpus, h.rpc_time FROM host h ORDER BY h.rpc_time DESC LIMIT 100;
SELECT '@failed_workunits';
SELECT w.name, a.name, w.error_mask, UNIX_TIMESTAMP(w.mod_time)
 FROM workunit w JOIN app a ON a.id = w.appid
 WHERE w.error_mask <> 0 AND (w.error_mask & {WU_ERROR_CANCELLED}) = 0
 ORDER BY w.mod_time DESC, w.id DESC LIMIT {int(limit)};
SELECT '@versions';
SELECT DISTINCT p.name FROM app_version av JOIN platform p ON p.id = av.platformid
 JOIN app a ON a.id = av.appid WHERE av.deprecated = 0 AND a.deprecated = 0 ORDER BY p.name;
SELECT '@host_kinds';
SELECT COALESCE(os_name, ''), COALESCE(p_vendor, ''), COALESCE(p_model, ''), COUNT(*)
 FROM host GROUP BY 1, 2, 3;
"""


def _sections(text: str) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("@") and "\t" not in line:
            current = sections.setdefault(line[1:], [])
        elif current is not None and line:
            current.append(line.split("\t"))
    return sections


def _rows(sections: dict[str, list[list[str]]], name: str, width: int) -> list[list[str]]:
    """A section's rows of ``width`` fields: a row of another width is not one of its query's."""
    return [row for row in sections.get(name, []) if len(row) == width]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _hex_text(value: str) -> str:
    try:
        return bytes.fromhex(value).decode(errors="replace")
    except ValueError:
        return ""


def _outcome_reason(outcome: int, client_state: int, exit_status: int, stderr_text: str) -> str:
    head = failure_reason(outcome, client_state, exit_status)
    detail = stderr_reason(stderr_text) if outcome in (3, 6) else ""
    return f"{head}: {detail}" if detail else head


def parse_hosts(text: str) -> list[VolunteerHost]:
    hosts = []
    for row in _sections(text).get("hosts", []):
        if len(row) != 6 or not row[0].isdigit():
            continue
        host_id, name, platform, cpu, ncpus, rpc_time = row
        hosts.append(VolunteerHost(int(host_id), name, platform.strip(), cpu,
                                   int(ncpus) if ncpus.isdigit() else 0,
                                   float(rpc_time) if rpc_time.isdigit() else 0.0))
    return hosts


def parse_counts(text: str, limit: int = FAILURE_LIMIT) -> tuple[list[AppCounts], list[Failure]]:
    """Turn the output of :func:`status_sql` (mysql -N -B) into counts per app and failures."""
    sections = _sections(text)
    apps: dict[str, AppCounts] = {}

    def app(name: str) -> AppCounts:
        return apps.setdefault(name, AppCounts(name))

    for (name,) in (row[:1] for row in sections.get("apps", [])):
        app(name)
    for name, server_state, outcome, count in _rows(sections, "results", 4):
        state = result_state(_int(server_state), _int(outcome))
        app(name).results[state] += _int(count)
    for name, _tag, outcome, client_state, exit_status, cancelled, count, _last in _rows(
            sections, "result_outcomes", 8):
        state = result_state(5, _int(outcome), _int(client_state), _int(exit_status),
                             cancelled == "1")
        app(name).results[state] += _int(count)
    for name, _tag, mask, canonical, sent, count, _last in _rows(sections, "workunits", 7):
        app(name).workunits[wu_state(_int(mask), canonical == "1", sent == "1")] += _int(count)
    failures = []
    for row in _rows(sections, "failed_results", 8):
        name, wu, app_name, outcome, client_state, exit_status, when, hexed = row
        reason = _outcome_reason(_int(outcome), _int(client_state), _int(exit_status),
                                 _hex_text(hexed))
        failures.append(Failure("result", name, wu, app_name, _float(when), reason))
    for wu, app_name, mask, when in _rows(sections, "failed_workunits", 4):
        failures.append(Failure("workunit", wu, wu, app_name, _float(when),
                                wu_error_text(_int(mask))))
    failures.sort(key=lambda f: f.when, reverse=True)
    return sorted(apps.values(), key=lambda a: a.name), failures[:limit]


def parse_tasks(text: str) -> dict[tuple[str, str], TaskOutcomes]:
    """What the database says of each app's and run tag's work from :func:`status_sql`'s
    output: work units by state, failures by reason, cancelled results."""
    sections = _sections(text)
    tasks: dict[tuple[str, str], TaskOutcomes] = {}

    def of(app: str, tag: str) -> TaskOutcomes:
        return tasks.setdefault((app, tag), TaskOutcomes(app, tag))

    for app, tag, mask, canonical, sent, count, last in _rows(sections, "workunits", 7):
        state = wu_state(_int(mask), canonical == "1", sent == "1")
        one = of(app, tag)
        one.workunits[state] += _int(count)
        if state == "errored":
            one.add_failure("workunit", wu_error_text(_int(mask)), _int(count), _float(last))
        elif state in ("done", "cancelled"):
            one.last = max(one.last, _float(last))
    for app, tag, outcome, client_state, exit_status, cancelled, count, last in _rows(
            sections, "result_outcomes", 8):
        state = result_state(5, _int(outcome), _int(client_state), _int(exit_status),
                             cancelled == "1")
        one = of(app, tag)
        if state == "errored":
            one.add_failure("result", failure_reason(_int(outcome), _int(client_state),
                                                     _int(exit_status)),
                            _int(count), _float(last))
        elif state == "cancelled":
            one.cancelled_results += _int(count)
    return tasks


# -- the assimilator's tallies (what the filed results said) ---------------------------------------
_APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_TEXT_MAX = 400  # characters of a name or message taken from a tally


def outcomes_command(target: ProjectTarget) -> str:
    """A shell loop printing each app's tally as ``@FILE`` and its text (run as the owner)."""
    directory = shlex.quote("/".join((target.project_dir, *contract.OUTCOMES_DIR)))
    # a regular file's text, briefly and bounded (a FIFO planted there must not hang status)
    return (f"cd {directory} 2>/dev/null || exit 0; "
            f"for f in *{contract.OUTCOMES_SUFFIX}; do [ -f \"$f\" ] || continue; "
            "printf '@%s\\n' \"$f\"; "
            f"timeout 5 head -c {OUTCOMES_READ_MAX} -- \"$f\" 2>/dev/null; echo; done")


def _text(value: object) -> str:
    return value[:_TEXT_MAX] if isinstance(value, str) else ""


def _number(value: object) -> float:
    """A count or a time; 0 for anything else (JSON allows NaN and Infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if math.isfinite(value) and value >= 0 else 0.0


def _tally(app: str, tag: str, raw: object) -> TaskOutcomes:
    """One tag's tally as the assimilator writes it; what is not of its form counts nothing."""
    one = TaskOutcomes(app, tag)
    if not isinstance(raw, dict):
        return one
    one.ok, one.unreadable = int(_number(raw.get("ok"))), int(_number(raw.get("unreadable")))
    one.last = _number(raw.get("last"))
    raised, examples = raw.get("raised"), raw.get("examples")
    if isinstance(raised, dict):
        one.raised = {_text(k): int(_number(v)) for k, v in raised.items() if _number(v)}
    found = []
    for error_type, listed in examples.items() if isinstance(examples, dict) else ():
        for example in listed if isinstance(listed, list) else ():
            if isinstance(example, dict):
                found.append(RaisedExample(_text(error_type), _text(example.get("message")),
                                           _text(example.get("wu")),
                                           _number(example.get("time"))))
    one.examples = newest_examples(found)
    return one


def parse_outcomes(text: str) -> tuple[dict[tuple[str, str], TaskOutcomes], list[str]]:
    """The tallies :func:`outcomes_command` printed, by app and run tag, and the apps whose
    tally could not be read."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@") and line.endswith(contract.OUTCOMES_SUFFIX):
            current = files.setdefault(line[1 : -len(contract.OUTCOMES_SUFFIX)], [])
        elif current is not None:
            current.append(line)
    tasks: dict[tuple[str, str], TaskOutcomes] = {}
    unreadable = []
    for app, lines in files.items():
        if not _APP_NAME.match(app):
            continue
        try:
            tally = json.loads("\n".join(lines))
        except (ValueError, RecursionError):
            unreadable.append(app)
            continue
        tags = tally.get("tags") if isinstance(tally, dict) else None
        if not isinstance(tags, dict):
            unreadable.append(app)
            continue
        for tag, raw in tags.items():
            tasks[(app, _text(tag))] = _tally(app, _text(tag), raw)
    return tasks, unreadable


def task_outcomes(from_database: dict[tuple[str, str], TaskOutcomes],
                  from_tallies: dict[tuple[str, str], TaskOutcomes],
                  known_runs: Iterable[runs.RunInfo] = ()) -> list[TaskOutcomes]:
    """Per app, the database's counts and the tallies' together, each run tag's (newest active
    first, with the ids of the runs whose master uses it) and the app's in all."""
    by_tag: dict[str, list[str]] = {}
    for run in known_runs:
        if run.tag is not None:
            by_tag.setdefault(run.tag, []).append(run.id)
    apps: dict[str, TaskOutcomes] = {}
    for key in sorted(set(from_database) | set(from_tallies)):
        app, tag = key
        one = TaskOutcomes(app, tag, runs=by_tag.get(tag, []) if tag else [])
        for part in (from_database.get(key), from_tallies.get(key)):
            if part is not None:
                one.add(part)
        apps.setdefault(app, TaskOutcomes(app)).tags.append(one)
    for total in apps.values():
        total.tags.sort(key=lambda t: t.last, reverse=True)
        for one in total.tags:
            total.add(one)
    return [apps[name] for name in sorted(apps)]


def read_outcomes(host: Host, target: ProjectTarget
                  ) -> tuple[dict[tuple[str, str], TaskOutcomes], str]:
    """The apps' tallies, read as the owner (root never follows a link planted in the owner's
    tree), and what went wrong reading them ("" when nothing did)."""
    try:
        out = host.run(outcomes_command(target), user=target.owner,
                       what="reading what the tasks did", timeout=60).stdout
    except PymwError as exc:
        return {}, str(exc)
    tasks, unreadable = parse_outcomes(out)
    error = ("tally unreadable for app(s) " + ", ".join(unreadable)) if unreadable else ""
    return tasks, error


def parse_reach(text: str) -> VersionReach:
    """The deployed platforms and hosts by platform from :func:`status_sql`'s output."""
    sections = _sections(text)
    reach = VersionReach(sorted(row[0] for row in sections.get("versions", []) if row))
    for row in sections.get("host_kinds", []):
        if len(row) != 4:
            continue
        kind = platforms.host_platform(row[0], row[1], row[2])
        reach.hosts_by_platform[kind] = reach.hosts_by_platform.get(kind, 0) + int(row[3])
    return reach


def mysql_command(target: ProjectTarget) -> str:
    """The project's own mysql login: the option file holds the password (never argv)."""
    return (f"mysql --defaults-extra-file={shlex.quote(target.db_client_cnf)} -N -B "
            f"{shlex.quote(target.db_name)}")


def query(host: Host, target: ProjectTarget, sql: str) -> str:
    return host.sudo(mysql_command(target), stdin=sql, what="reading the project's database",
                     timeout=60).stdout


def _web_error(host: Host, config_xml: str) -> str:
    """'' when the project's master URL answers on the server (asked from the server itself)."""
    match = re.search(r"<master_url>\s*([^<\s]+)\s*</master_url>", config_xml)
    if not match:
        return "config.xml names no master_url"
    url = unescape(match.group(1))
    out = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {shlex.quote(url)}",
                   check=False).stdout.strip()
    if out.isdigit() and 200 <= int(out) < 400:
        return ""
    return f"the web server does not serve {url} (" + (
        f"HTTP {out})" if out.isdigit() and out != "000" else "no answer)")


def _project_error(target: ProjectTarget, config_xml: str) -> str:
    """The directory is this project's: its config.xml names this project's database."""
    match = re.search(r"<db_name>\s*([^<\s]*)\s*</db_name>", config_xml)
    if match and match.group(1) != target.db_name:
        return (f"{target.project_dir} is project {match.group(1)}'s, not {target.name}'s "
                "(check --project and --project-dir)")
    return ""


def gather(host: Host, target: ProjectTarget, limit: int = FAILURE_LIMIT) -> Status:
    """Read everything on the server; what does not answer is reported, never fatal."""
    facts = daemons.status(host, target)
    running = {name: name in facts.running for name in facts.configured}
    try:  # the owner's file, read as the owner (root never follows a link planted there)
        config_xml = host.read_text(f"{target.project_dir}/config.xml", user=target.owner) or ""
    except RemoteError:
        config_xml = ""
    project_error = _project_error(target, config_xml)
    apps: list[AppCounts] = []
    failures: list[Failure] = []
    hosts: list[VolunteerHost] = []
    from_database: dict[tuple[str, str], TaskOutcomes] = {}
    db_error = ""
    reach = VersionReach()
    if project_error:
        db_error = "not read (not this project's directory)"
    elif not host.exists(target.db_client_cnf):
        db_error = (f"no database login for project {target.name} on {host.name} "
                    f"({target.db_client_cnf} is missing): is the project name right?")
    else:
        try:
            text = query(host, target, status_sql(limit))
            apps, failures = parse_counts(text, limit)
            hosts = parse_hosts(text)
            reach = parse_reach(text)
            from_database = parse_tasks(text)
        except PymwError as exc:
            db_error = str(exc)
    from_tallies, tasks_error = ({}, "") if project_error else read_outcomes(host, target)
    known_runs = runs.list_runs(host, target)
    return Status(target.name, host.name, time.time(), running, facts.disabled, apps, failures,
                  known_runs, db_error, reach, _web_error(host, config_xml), project_error,
                  hosts, task_outcomes(from_database, from_tallies, known_runs), tasks_error)
