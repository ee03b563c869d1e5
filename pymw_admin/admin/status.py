"""The project's state in one reading: daemons, work by state per app, recent failures, runs.

Counts come from BOINC's database, read on the server with ``mysql --defaults-extra-file=`` the
project's root-only client.cnf (as root), so no password is ever in argv. What the states mean
(BOINC server 1.6, db/boinc_db_types.h and lib/common_defs.h):

results   unsent       server_state INACTIVE (1) or UNSENT (2)
          in_progress  server_state IN_PROGRESS (4)
          done         server_state OVER (5), outcome SUCCESS (1)
          errored      OVER, outcome COULDNT_SEND, CLIENT_ERROR, NO_REPLY, VALIDATE_ERROR or
                       CLIENT_DETACHED (2, 3, 4, 6, 7)
          not_needed   OVER, outcome DIDNT_NEED (5): a canonical result or an error came first
work units errored     error_mask != 0
          done         no error and a canonical result
          in_progress  neither, and some result was sent (IN_PROGRESS or OVER)
          unsent       none of its results has been sent yet
"""

from __future__ import annotations

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
from pymw_admin.wire.boinc_contract import describe_error_mask

RESULT_STATES = ("unsent", "in_progress", "done", "errored", "not_needed")
WU_STATES = ("unsent", "in_progress", "done", "errored")
OUTCOMES = {0: "init", 1: "success", 2: "couldn't send", 3: "client error", 4: "no reply",
            5: "didn't need", 6: "validate error", 7: "client detached"}
ERROR_OUTCOMES = (2, 3, 4, 6, 7)
CLIENT_STATES = {0: "new", 1: "downloading", 2: "downloaded", 3: "compute error",
                 4: "uploading", 5: "uploaded", 6: "aborted", 7: "upload failed"}
FAILURE_LIMIT = 10
STDERR_BYTES = 4000
# the app API's own lines: "12:34:56 (1234): called boinc_finish(0)"
_BOINC_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \(\d+\):")


def result_state(server_state: int, outcome: int) -> str:
    if server_state in (1, 2):
        return "unsent"
    if server_state == 4:
        return "in_progress"
    if outcome == 1:
        return "done"
    if outcome == 5:
        return "not_needed"
    return "errored"


def wu_state(error_mask: int, canonical: bool, sent: bool) -> str:
    if error_mask:
        return "errored"
    if canonical:
        return "done"
    return "in_progress" if sent else "unsent"


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
def status_sql(limit: int = FAILURE_LIMIT) -> str:
    """One batch of queries; each section starts with a marker row so the output splits cleanly."""
    errors = ",".join(str(o) for o in ERROR_OUTCOMES)
    return f"""
SELECT '@apps';
SELECT name FROM app WHERE deprecated = 0 ORDER BY name;
SELECT '@results';
SELECT a.name, r.server_state, r.outcome, COUNT(*) FROM result r JOIN app a ON a.id = r.appid
 GROUP BY a.name, r.server_state, r.outcome;
SELECT '@workunits';
SELECT a.name, w.error_mask, w.canonical_resultid <> 0,
 EXISTS (SELECT 1 FROM result r WHERE r.workunitid = w.id AND r.server_state IN (4, 5)), COUNT(*)
 FROM workunit w JOIN app a ON a.id = w.appid GROUP BY 1, 2, 3, 4;
SELECT '@failed_results';
SELECT r.name, w.name, a.name, r.outcome, r.client_state, r.exit_status,
 GREATEST(r.received_time, UNIX_TIMESTAMP(r.mod_time)),
 HEX(RIGHT(COALESCE(r.stderr_out, ''), {STDERR_BYTES}))
 FROM result r JOIN workunit w ON w.id = r.workunitid JOIN app a ON a.id = r.appid
 WHERE r.server_state = 5 AND r.outcome IN ({errors}) ORDER BY r.mod_time DESC, r.id DESC
 LIMIT {int(limit)};
SELECT '@hosts';
SELECT h.id, COALESCE(h.domain_name, ''), CONCAT_WS(' ', h.os_name, h.os_version),
 COALESCE(h.p_model, ''), h.p_ncpus, h.rpc_time FROM host h ORDER BY h.rpc_time DESC LIMIT 100;
SELECT '@failed_workunits';
SELECT w.name, a.name, w.error_mask, UNIX_TIMESTAMP(w.mod_time)
 FROM workunit w JOIN app a ON a.id = w.appid WHERE w.error_mask <> 0
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


def _hex_text(value: str) -> str:
    try:
        return bytes.fromhex(value).decode(errors="replace")
    except ValueError:
        return ""


def _outcome_reason(outcome: int, client_state: int, exit_status: int, stderr_text: str) -> str:
    head = OUTCOMES.get(outcome, f"outcome {outcome}")
    if outcome == 3:
        head += f" ({CLIENT_STATES.get(client_state, client_state)}, exit status {exit_status})"
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
    for name, server_state, outcome, count in sections.get("results", []):
        state = result_state(int(server_state), int(outcome))
        app(name).results[state] += int(count)
    for name, mask, canonical, sent, count in sections.get("workunits", []):
        app(name).workunits[wu_state(int(mask), canonical == "1", sent == "1")] += int(count)
    failures = []
    for row in sections.get("failed_results", []):
        name, wu, app_name, outcome, client_state, exit_status, when, hexed = row
        reason = _outcome_reason(int(outcome), int(client_state), int(exit_status),
                                 _hex_text(hexed))
        failures.append(Failure("result", name, wu, app_name, float(when), reason))
    for wu, app_name, mask, when in sections.get("failed_workunits", []):
        failures.append(Failure("workunit", wu, wu, app_name, float(when),
                                wu_error_text(int(mask))))
    failures.sort(key=lambda f: f.when, reverse=True)
    return sorted(apps.values(), key=lambda a: a.name), failures[:limit]


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
        except PymwError as exc:
            db_error = str(exc)
    return Status(target.name, host.name, time.time(), running, facts.disabled, apps, failures,
                  runs.list_runs(host, target), db_error, reach, _web_error(host, config_xml),
                  project_error, hosts)
