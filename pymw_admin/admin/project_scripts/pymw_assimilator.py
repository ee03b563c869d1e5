#!/usr/bin/env python3
"""File finished BOINC work units where the pymw-admin BOINC interface finds them.

Installed as ``bin/pymw_assimilator``. Run by ``bin/start`` as the app's assimilator daemon:

    pymw_assimilator --app APP [--sleep_interval S] [--one_pass] [-d]

It does what BOINC's assimilator does (work units of APP whose ``assimilate_state`` is READY,
then DONE with a new ``transition_time``), a batch of up to 1,000 work units at a time: three
mysql runs a batch (a fourth for its failed work units' stderr) and a rename per result, where
BOINC's ``script_assimilator`` starts a process for each work unit. Earlier deploys ran it
through script_assimilator, once per work unit, and those calls still work:

    pymw_assimilator WU_ID FILE...                      a canonical result exists
    pymw_assimilator --error MASK WU_NAME WU_ID BATCH   the work unit failed

A result is moved (one rename: it appears whole) to PROJECT/pymw/results/WU_NAME.result. The
daemon marks the canonical result's files deleted (``file_delete_state`` DONE, in the batch's
update), as they are from the upload directory: BOINC's file deleter passes over them instead of
logging a missing upload as critical, and the transitioner marks a replica that comes in later
too late rather than have it compared with a file that is gone. Called per work unit by
script_assimilator, it cannot update the database and leaves an empty file in the upload's place
for the file deleter instead. A failure goes to
WU_NAME.error, a JSON record with BOINC's error mask, its meaning and the stderr the task's hosts
reported. Standard library only: the server's python3 runs it, without pymw-admin.

A task that raised is a BOINC success (its record says ok false), so the daemon also reads each
canonical result's header (the JSON before the payload, bounded, never the pickle) and tallies
what the app's tasks did in PROJECT/pymw/outcomes/APP.json: per run tag, the tasks that returned,
those that raised by exception type with the newest examples; ``pymw-admin status`` shows it.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

# deploy-app installs pymw_admin.wire.boinc_contract beside this script
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import pymw_boinc_contract as contract

ASSIMILATE_READY, ASSIMILATE_DONE = 1, 2  # BOINC's workunit.assimilate_state
FILE_DELETE_DONE = 2  # BOINC's result.file_delete_state
NO_CANONICAL_RESULT = 32  # BOINC's WU_ERROR_NO_CANONICAL_RESULT
# a replica sent to a host that came to nothing: BOINC's result outcomes CLIENT_ERROR, NO_REPLY,
# VALIDATE_ERROR and CLIENT_DETACHED (not COULDNT_SEND: no host had it)
FAILED_OUTCOMES = frozenset({"3", "4", "6", "7"})
BATCH = 1000  # work units a pass, as BOINC's assimilator enumerates them
STDERR_CHUNK = 100  # failed work units whose stderr one mysql run reads
SLEEP_INTERVAL = 1.0  # seconds between passes that found nothing (BOINC's default is 10)
DB_TIMEOUT = 120  # seconds for one statement

# upload names are RESULTNAME_rRANDOM_INDEX (older servers: RESULTNAME_INDEX); RESULTNAME is
# WUNAME_REPLICA: the work unit's name comes from the server's path, never from the file's content
UPLOAD_NAME = re.compile(r"^(?P<wu>.+)_\d+(?:_r\d+)?_\d+$")
# what create_work and the transitioner name things: nothing a path or a shell could misread
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
FILE_REF_NAME = re.compile(r"<file_ref>.*?<file_name>\s*(.*?)\s*</file_name>", re.S)


def project_dir() -> str:
    # daemons and the scripts they call run in PROJECT/tmp_HOST; the project root holds config.xml
    here = os.getcwd()
    for candidate in (here, os.path.dirname(here)):
        if os.path.exists(os.path.join(candidate, "config.xml")):
            return candidate
    return os.path.dirname(here)


def log(message: str) -> None:
    print(f"{time.strftime('%d-%b-%Y %H:%M:%S')} pymw_assimilator: {message}", flush=True)


# --- filing ------------------------------------------------------------------------------------


def results_dir() -> str:
    path = os.path.join(project_dir(), *contract.RESULTS_DIR)
    os.makedirs(path, exist_ok=True)
    return path


def write_json(record: dict[str, object], target: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".part-")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.chmod(tmp, 0o664)
    os.replace(tmp, target)


def file_result(wu_name: str, paths: list[str], results: str, placeholder: bool = False) -> bool:
    """Move the canonical result's upload to WU_NAME.result (with ``placeholder``, leaving an
    empty file for BOINC's file deleter); whether an upload moved. A missing or empty upload
    beside a filed result is one an earlier run filed already (a work unit whose database update
    failed is filed again); without one, the volunteer sent nothing, and the master hears so."""
    target = os.path.join(results, wu_name + contract.RESULT_SUFFIX)
    moved = False
    for path in paths:
        try:
            if os.path.getsize(path) == 0:
                if not os.path.exists(target):
                    write_json({"wu_name": wu_name, "error": "the result file is empty"},
                               os.path.join(results, wu_name + contract.ERROR_SUFFIX))
                continue
        except FileNotFoundError:
            # the upload handler answers success when it cannot write (BOINC takes that for a
            # duplicate upload): say so to the master rather than leave it waiting for ever
            if os.path.exists(target):
                continue
            write_json({"wu_name": wu_name, "error": "the result file is missing on the server: "
                        "the upload was lost (can the web server write to the upload "
                        "directory?)"}, os.path.join(results, wu_name + contract.ERROR_SUFFIX))
            continue
        try:
            os.replace(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # an upload directory on another file system: copied in whole, then renamed
            fd, tmp = tempfile.mkstemp(dir=results, prefix=".part-")
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.chmod(tmp, 0o664)
            os.replace(tmp, target)
            os.unlink(path)
        moved = True
        if placeholder:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o664))
    return moved


def file_error(wu_name: str, wu_id: int, mask: int, stderr: str, results: str,
               error: str = "", failed_results: int = 0) -> None:
    """``failed_results``: the work unit's replicas that hosts were sent and failed, which the
    master counts as the task's attempts."""
    write_json({"wu_name": wu_name, "wu_id": wu_id, "error_mask": mask,
                "error": error or contract.describe_error_mask(mask), "stderr": stderr,
                "failed_results": failed_results},
               os.path.join(results, wu_name + contract.ERROR_SUFFIX))


STDERR_TXT = re.compile(r"<stderr_txt>\n?(.*?)</stderr_txt>", re.S)
MESSAGE = re.compile(r"<message>\s*(.*?)\s*</message>", re.S)
_MYSQL_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}


def unescape(field: str) -> str:
    """A field of mysql's batch output: \\n, \\t, \\0 and \\\\ back to what they stand for."""
    return re.sub(r"\\(.)", lambda m: _MYSQL_ESCAPES.get(m.group(1), m.group(1)), field)


def failed_replicas(rows: str) -> int:
    """How many of the replicas in ``outcome\texit\tstderr_out`` rows were sent and failed."""
    fields = (row.split("\t") for row in rows.splitlines())
    return sum(1 for row in fields if len(row) == 3 and row[0] in FAILED_OUTCOMES)


def clean_stderr(rows: str) -> str:
    """Each replica's stderr (what the task wrote) from ``outcome\texit\tstderr_out`` rows.

    BOINC wraps it: ``<core_client_version>``, a CDATA section, a ``<message>`` from the client
    and the task's own output in ``<stderr_txt>``. The task's output comes last, so a reader's
    "last line" is the task's, not the wrapping.
    """
    parts = []
    for row in rows.splitlines():
        fields = row.split("\t")
        if len(fields) != 3 or not fields[0].isdigit():
            continue
        outcome, exit_status, text = fields[0], fields[1], unescape(fields[2])
        message = MESSAGE.search(text)
        body = STDERR_TXT.search(text)
        head = f"[replica outcome {outcome}, exit status {exit_status}]"
        if message:
            head += f" {' '.join(message.group(1).split())}"
        # the replica's own lines are indented: only our headers start a line
        lines = (body.group(1).rstrip() if body else text.strip()).splitlines()
        parts.append(head + "".join(f"\n  {line}" for line in lines))
    return "\n".join(parts)


# --- what the tasks did -------------------------------------------------------------------------

# a result record: this line, then its header (one line of JSON), then the pickle payload
RESULT_MAGIC = b"PYMW-RESULT 1\n"
HEADER_MAX = 1 << 20  # bytes of a header read: past them (a task that printed megabytes), what
# came before still counts (ok and the error's type come before stdout in an honest header)
FIELDS_MAX = 32  # a header has 12
TEXT_MAX = 4096  # bytes of a string value decoded: enough for a message's first line
MESSAGE_MAX = 200  # characters of a message kept
TYPE_MAX = 100
OUTCOMES_TAGS = 50  # run tags kept per app: the most recently active
OUTCOMES_TYPES = 10  # exception types counted per tag; later ones together as OTHER_TYPES
OTHER_TYPES = "(other types)"
OUTCOMES_EXAMPLES = 3  # newest tasks kept per exception type
OUTCOMES_FILE_MAX = 16 << 20  # a tally bigger than this is not ours (its bounds keep it
# under 6 MB, every text at its longest): it starts afresh

_WS = rb"[ \t\r\n]*"
_OPEN = re.compile(_WS + rb"\{")
_KEY = re.compile(_WS + rb'"([A-Za-z_]{1,40})"' + _WS + rb":" + _WS)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_SCALAR = re.compile(rb"true|false|null|-?[0-9][0-9.eE+-]{0,40}")
_NEXT = re.compile(_WS + rb"([,}])")
_WANTED = {"ok": bool, "error_type": str, "error_message": str}
# C0 and C1 controls, DEL, bidi marks, embeddings and isolates: volunteers' text shown on a
# terminal must not move its cursor, set its title or reorder what it shows
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")  # and lone surrogates, which no terminal can take


def _json_string(raw: bytes) -> str:
    """A JSON string's text from its quoted bytes, the first TEXT_MAX bytes only: a cut that
    splits an escape or a character is backed off until it decodes."""
    body = raw[1 : min(len(raw) - 1, TEXT_MAX + 1)]
    for cut in range(13):  # \uXXXX\uXXXX, the longest thing a cut can split
        try:
            value = json.loads(b'"' + body[: len(body) - cut] + b'"')
        except (ValueError, RecursionError):
            continue
        # a cut between a surrogate pair's halves leaves the first alone
        return re.sub("[\ud800-\udbff]$", "", value) if isinstance(value, str) else ""
    return ""


def header_fields(data: bytes) -> dict[str, object]:
    """The fields status needs (ok, error_type, error_message) from a result
    record's header line, read as a flat JSON object by patterns: never more than the bytes
    given, no nesting, each string decoded up to TEXT_MAX bytes. A field of the wrong type is
    left out; what comes after something that is not a flat JSON object (or after the end of a
    header cut off at HEADER_MAX) is not read."""
    fields: dict[str, object] = {}
    start = _OPEN.match(data)
    if start is None:
        return fields
    pos = start.end()
    for _ in range(FIELDS_MAX):
        key = _KEY.match(data, pos)
        if key is None:
            break
        name, pos = key.group(1).decode(), key.end()
        value: object
        string = _STRING.match(data, pos)
        if string is not None:
            value, pos = (_json_string(string.group()) if name in _WANTED else ""), string.end()
        else:
            scalar = _SCALAR.match(data, pos)
            if scalar is None:  # a list, an object, or the header's cut-off end
                break
            value = {b"true": True, b"false": False}.get(scalar.group())
            pos = scalar.end()
        wanted = _WANTED.get(name)
        if wanted is not None and isinstance(value, wanted) and name not in fields:
            fields[name] = value
        more = _NEXT.match(data, pos)
        if more is None or more.group(1) == b"}":
            break
        pos = more.end()
    return fields


def plain(text: str, limit: int) -> str:
    """``text``'s first line, its control and bidi characters written out visibly, at most
    ``limit`` characters."""
    lines = text[: limit * 8].splitlines()
    line = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", lines[0].strip() if lines else "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass(frozen=True)
class Outcome:
    """What a canonical result's record says its task did."""

    kind: str  # "ok", "raised" or "unreadable" (not a result record we can read)
    error_type: str = ""
    message: str = ""


def task_outcome(paths: list[str]) -> Outcome:
    """The outcome in the first non-empty upload of ``paths`` (the volunteer's record: its
    header alone is read, HEADER_MAX bytes at most, its payload never)."""
    for path in paths:
        try:
            with open(path, "rb") as f:
                magic = f.read(len(RESULT_MAGIC))
                if not magic:
                    continue
                line = f.readline(HEADER_MAX) if magic == RESULT_MAGIC else b""
        except OSError:
            continue
        fields = header_fields(line)
        if fields.get("ok") is True:
            return Outcome("ok")
        if fields.get("ok") is False:
            error_type = plain(str(fields.get("error_type", "")), TYPE_MAX).replace(" ", "")
            return Outcome("raised", error_type or "(no type)",
                           plain(str(fields.get("error_message", "")), MESSAGE_MAX))
        return Outcome("unreadable")
    return Outcome("unreadable")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _when(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0  # JSON allows NaN and Infinity


@dataclass
class TagTally:
    """What the filed results of one run tag said. ``examples``: per exception type, the newest
    tasks that raised it first ({"wu", "message", "time"})."""

    ok: int = 0
    unreadable: int = 0
    raised: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0

    @classmethod
    def from_json(cls, raw: object) -> TagTally:
        """As :func:`record_outcomes` wrote it; a field of the wrong type is taken as empty."""
        if not isinstance(raw, dict):
            return cls()
        raised, examples = raw.get("raised"), raw.get("examples")
        tally = cls(_count(raw.get("ok")), _count(raw.get("unreadable")),
                    first=_when(raw.get("first")), last=_when(raw.get("last")))
        if isinstance(raised, dict):
            tally.raised = {str(k): _count(v) for k, v in raised.items()}
        for error_type, listed in examples.items() if isinstance(examples, dict) else ():
            if isinstance(listed, list):
                tally.examples[str(error_type)] = [
                    {"wu": str(e.get("wu", "")), "message": str(e.get("message", "")),
                     "time": _when(e.get("time"))}
                    for e in listed[:OUTCOMES_EXAMPLES] if isinstance(e, dict)]
        return tally

    def add(self, wu_name: str, outcome: Outcome, now: float) -> None:
        self.first = self.first or now
        self.last = now
        if outcome.kind == "ok":
            self.ok += 1
            return
        if outcome.kind != "raised":
            self.unreadable += 1
            return
        error_type = outcome.error_type
        example: dict[str, object] = {"wu": wu_name, "message": outcome.message, "time": now}
        if error_type not in self.raised and len(self.raised) >= OUTCOMES_TYPES:
            error_type = OTHER_TYPES
            # which type it was, where the count cannot say
            example["message"] = plain(f"{outcome.error_type}: {outcome.message}", MESSAGE_MAX)
        self.raised[error_type] = self.raised.get(error_type, 0) + 1
        self.examples[error_type] = [example, *self.examples.get(error_type, [])][
            :OUTCOMES_EXAMPLES]


def load_outcomes(path: str) -> dict[str, TagTally]:
    """The tags' tallies in an outcomes file; none when there is none."""
    try:
        with open(path, "rb") as f:
            data = f.read(OUTCOMES_FILE_MAX + 1)
    except FileNotFoundError:
        return {}
    if len(data) > OUTCOMES_FILE_MAX:
        raise ValueError(f"{path} is larger than a tally grows")
    try:
        loaded = json.loads(data)
    except RecursionError:
        raise ValueError(f"{path} is not a tally") from None
    tags = loaded.get("tags") if isinstance(loaded, dict) else None
    if not isinstance(tags, dict):
        raise ValueError(f"{path} is not a tally")
    return {str(tag): TagTally.from_json(tally) for tag, tally in tags.items()}


def trim_outcomes(tags: dict[str, TagTally]) -> dict[str, TagTally]:
    """The OUTCOMES_TAGS most recently active tags: the file stays small whatever runs came."""
    newest = sorted(tags.items(), key=lambda item: item[1].last, reverse=True)
    return dict(newest[:OUTCOMES_TAGS])


def outcomes_dir() -> str:
    path = os.path.join(project_dir(), *contract.OUTCOMES_DIR)
    os.makedirs(path, exist_ok=True)
    return path


def record_outcomes(app: str, filed: list[tuple[str, Outcome]], now: float | None = None) -> None:
    """Add what the tasks of ``filed`` (work-unit name, outcome) did to the app's tally."""
    if not filed:
        return
    directory = outcomes_dir()
    path = os.path.join(directory, app + contract.OUTCOMES_SUFFIX)
    now = time.time() if now is None else now
    lock = os.open(os.path.join(directory, f".{app}.lock"),
                   os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o664)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two daemons of one app would lose each other's
        try:
            tags = load_outcomes(path)
        except ValueError as exc:  # a tally that is not one counts for nothing: start afresh
            log(f"{exc}; starting its tally afresh")
            tags = {}
        for wu_name, outcome in filed:
            tags.setdefault(contract.run_tag(wu_name), TagTally()).add(wu_name, outcome, now)
        write_json({"format": contract.OUTCOMES_FORMAT, "app": app, "updated": now,
                    "tags": {tag: asdict(tally) for tag, tally in trim_outcomes(tags).items()}},
                   path)
    finally:
        os.close(lock)


class _Said:
    tally_error = ""  # the tally's failure, said once until it works again


def tally_outcomes(app: str, filed: list[tuple[str, Outcome]]) -> None:
    """:func:`record_outcomes`, which never holds back filing: status only shows less."""
    try:
        record_outcomes(app, filed)
    except Exception as exc:  # whatever it is: the batch's uploads have moved, mark them done
        if str(exc) != _Said.tally_error:
            _Said.tally_error = str(exc)
            log(f"cannot write what the tasks did (status shows less): {exc}")
        return
    if _Said.tally_error:
        _Said.tally_error = ""
        log("writing what the tasks did again")


# --- the project's database --------------------------------------------------------------------


def project_config() -> dict[str, str]:
    root = ET.parse(os.path.join(project_dir(), "config.xml")).getroot()
    config = root.find("config")
    if config is None:
        config = root

    def get(tag: str, default: str = "") -> str:
        node = config.find(tag)
        return node.text.strip() if node is not None and node.text else default

    return {
        "name": get("db_name"),
        "user": get("db_user"),
        "password": get("db_passwd"),
        "host": get("db_host", "localhost"),
        "upload_dir": get("upload_dir", os.path.join(project_dir(), "upload")),
        "fanout": get("uldl_dir_fanout", "1024"),
    }


class DatabaseError(Exception):
    pass


def option_value(text: str) -> str:
    """``text`` as a value in a MySQL option file: quoted, since a ``#`` would start a comment
    and a ``\\`` an escape."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@contextmanager
def database(config: dict[str, str]) -> Iterator[Database]:
    # the password goes through a 0600 option file, never the command line
    fd, option_file = tempfile.mkstemp(prefix="pymw-db-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"[client]\nuser={option_value(config['user'])}\n"
                    f"password={option_value(config['password'])}\n"
                    f"host={option_value(config['host'])}\n")
        yield Database(option_file, config["name"])
    finally:
        os.unlink(option_file)


@dataclass
class Database:
    option_file: str
    name: str

    def rows(self, statement: str) -> list[list[str]]:
        """The rows ``statement`` returns, fields as mysql's batch mode escapes them (no -r): a
        volunteer's stderr can never start a row of its own."""
        return [line.split("\t") for line in self.run(statement).splitlines()]

    def run(self, statement: str) -> str:
        try:
            # a volunteer's stderr is a BLOB, written out as it came: any bytes, not only UTF-8
            done = subprocess.run(
                ["mysql", f"--defaults-extra-file={self.option_file}", "-N", "-B", self.name,
                 "-e", statement], capture_output=True, encoding="utf-8", errors="replace",
                timeout=DB_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DatabaseError(str(exc)) from None
        if done.returncode != 0:
            # mysql's own error is its last line (warnings may come before it)
            said = done.stderr.strip().splitlines()
            raise DatabaseError(said[-1] if said else f"mysql exited {done.returncode}")
        return done.stdout


def stderr_of(wu_id: int) -> tuple[str, int]:
    """The stderr its hosts reported for the work unit's results (from the project database),
    and how many of those results failed."""
    try:
        with database(project_config()) as db:
            rows = db.run(f"select outcome, exit_status, stderr_out from result "
                          f"where workunitid={int(wu_id)} order by id")
    except Exception as exc:  # the error record matters more than its stderr
        return f"(stderr unavailable: {exc})", 0
    return clean_stderr(rows), failed_replicas(rows)


# --- the daemon --------------------------------------------------------------------------------


def upload_path(config: dict[str, str], name: str) -> str:
    """Where BOINC's dir_hier_path puts an upload: a fan-out directory from its name's md5."""
    fanout = int(config["fanout"])
    if fanout == 0:
        return os.path.join(config["upload_dir"], name)
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
    return os.path.join(config["upload_dir"], f"{int(digest[1:8], 16) % fanout:x}", name)


def one_pass(db: Database, config: dict[str, str], app_id: int, results: str,
             app: str = "") -> int:
    """File one batch of the app's work units that are ready, and mark those filed done; how
    many. With ``app``, what the filed results' tasks did goes to its tally."""
    ready = db.rows(f"select id, name, canonical_resultid, error_mask from workunit "
                    f"where appid={app_id} and assimilate_state={ASSIMILATE_READY} "
                    f"order by id limit {BATCH}")
    if not ready:
        return 0
    canonical = [int(row[2]) for row in ready if row[2] != "0"]
    outputs: dict[int, list[str]] = {}
    if canonical:
        ids = ",".join(map(str, canonical))
        for result_id, xml_doc_in in db.rows(f"select id, xml_doc_in from result "
                                             f"where id in ({ids})"):
            # the server's own text (the transitioner's from the result template), not a host's
            names = FILE_REF_NAME.findall(unescape(xml_doc_in))
            outputs[int(result_id)] = [upload_path(config, n) for n in names if SAFE_NAME.match(n)]
    # as script_assimilator: a canonical result is filed, whatever the error mask says
    failed = {int(wu_id) for wu_id, _name, canonical_id, _mask in ready
              if not outputs.get(int(canonical_id))}
    stderr: dict[int, str] = {}
    # the replicas' stderr, up to 64 KB each, a hundred work units a run: a batch of failures
    # a volunteer made with the most stderr it may send stays tens of megabytes, not hundreds
    failed_ids = sorted(failed)
    for start in range(0, len(failed_ids), STDERR_CHUNK):
        ids = ",".join(map(str, failed_ids[start : start + STDERR_CHUNK]))
        for of_wu, *fields in db.rows(f"select workunitid, outcome, exit_status, stderr_out "
                                      f"from result where workunitid in ({ids}) "
                                      f"order by workunitid, id"):
            stderr[int(of_wu)] = stderr.get(int(of_wu), "") + "\t".join(fields) + "\n"
    done: list[int] = []
    filed: list[int] = []  # canonical results whose upload moved
    lost: list[int] = []
    unfiled: list[str] = []
    outcomes: list[tuple[str, Outcome]] = []
    for wu_field, name, canonical_id, mask in ready:
        wu_id, error_mask = int(wu_field), int(mask)
        rows = stderr.get(wu_id, "")
        try:
            if not SAFE_NAME.match(name):
                log(f"work unit {wu_id}: a name that cannot be a file's; marked done unfiled")
            elif wu_id not in failed:
                paths = outputs[int(canonical_id)]
                outcome = task_outcome(paths) if app else Outcome("unreadable")
                if file_result(name, paths, results):  # not one an earlier pass counted
                    outcomes.append((name, outcome))
                filed.append(int(canonical_id))
            elif int(canonical_id) in outputs:  # the server's own template named no output file
                file_error(name, wu_id, error_mask, clean_stderr(rows), results,
                           "the canonical result names no output file", failed_replicas(rows))
            elif error_mask:
                file_error(name, wu_id, error_mask, clean_stderr(rows), results,
                           failed_results=failed_replicas(rows))
            else:  # BOINC's assimilator: the canonical result's record is gone
                file_error(name, wu_id, NO_CANONICAL_RESULT, clean_stderr(rows), results,
                           failed_results=failed_replicas(rows))
                lost.append(wu_id)
        except OSError as exc:
            # one work unit that cannot be filed (an upload the owner may not move, say) must
            # not hold back the rest: it stays ready, and the next pass tries it again
            unfiled.append(f"work unit {wu_id}: {exc}")
            continue
        done.append(wu_id)
    if unfiled:
        log(f"{len(unfiled)} work unit(s) not filed, left ready for the next pass; the first, "
            f"{unfiled[0]}")
    if not done:
        return 0
    if app:
        tally_outcomes(app, outcomes)
    statements = []
    if filed:  # before the work units: the transitioner acts on DONE work units only
        statements.append(f"update result set file_delete_state={FILE_DELETE_DONE} "
                          f"where id in ({','.join(map(str, filed))}) "
                          f"and file_delete_state<{FILE_DELETE_DONE}")
    if lost:
        statements.append(f"update workunit set error_mask=error_mask|{NO_CANONICAL_RESULT} "
                          f"where id in ({','.join(map(str, lost))})")
    statements.append(f"update workunit set assimilate_state={ASSIMILATE_DONE}, "
                      f"transition_time=unix_timestamp() where id in ({','.join(map(str, done))}) "
                      f"and assimilate_state={ASSIMILATE_READY}")
    db.run("; ".join(statements))
    return len(done)


class Stop:
    """bin/stop's SIGHUP (or a SIGTERM) ends the daemon after the batch it is filing."""

    requested = False

    @classmethod
    def install(cls) -> None:
        def handler(_signum: int, _frame: object) -> None:
            cls.requested = True

        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)

    @classmethod
    def now(cls) -> bool:
        # bin/stop also leaves PROJECT/stop_daemons, as every BOINC daemon checks
        return cls.requested or os.path.exists(os.path.join(project_dir(), "stop_daemons"))


def daemon(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymw_assimilator")
    parser.add_argument("--app", required=True)
    parser.add_argument("--sleep_interval", type=float, default=SLEEP_INTERVAL)
    parser.add_argument("--one_pass", action="store_true", help="one batch, then exit")
    parser.add_argument("-d", "--debug_level", type=int, default=1)
    args = parser.parse_args(argv)
    if not SAFE_NAME.match(args.app):
        print(f"pymw_assimilator: not an app name: {args.app!r}", file=sys.stderr)
        return 2
    Stop.install()
    try:
        config = project_config()
        results = results_dir()
    except (OSError, ET.ParseError) as exc:  # as BOINC's daemons: one line, and exit
        log(f"cannot read the project's config.xml or make its results directory: {exc}")
        return 1
    app_id = 0
    failing = ""  # the error the passes meet, said once, until they succeed again
    with database(config) as db:
        while not Stop.now():
            count = 0
            try:
                if not app_id:
                    found = db.rows(f"select id from app where name='{args.app}'")
                    if not found:
                        log(f"no app {args.app} in the project database")
                        return 1
                    app_id = int(found[0][0])
                    log(f"filing {args.app}'s work units into {results}")
                count = one_pass(db, config, app_id, results, args.app)
                if failing:
                    log("working again")
                    failing = ""
            except (DatabaseError, OSError) as exc:
                # BOINC's daemons exit here and cron's bin/start brings them back minutes
                # later; a database that restarts should not leave results unfiled that long
                # (what was filed stays filed: its upload is gone now, passed over next time)
                what = ("cannot reach the project database" if isinstance(exc, DatabaseError)
                        else "cannot file")
                if f"{what}: {exc}" != failing:
                    failing = f"{what}: {exc}"
                    log(f"{failing}; trying again every {args.sleep_interval:g} s")
                if args.one_pass:
                    return 1
            if count and args.debug_level >= 1:
                log(f"filed {count} work unit(s)")
            if args.one_pass:
                break
            if count < BATCH:
                deadline = time.monotonic() + args.sleep_interval
                while time.monotonic() < deadline and not Stop.now():
                    time.sleep(0.2)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--error"]:  # as script_assimilator calls it for a failed work unit
        if len(argv) < 4 or not argv[3].isdigit() or not argv[1].isdigit():
            print("usage: pymw_assimilator --error MASK WU_NAME WU_ID [BATCH]", file=sys.stderr)
            return 2
        stderr, failed = stderr_of(int(argv[3]))
        file_error(argv[2], int(argv[3]), int(argv[1]), stderr, results_dir(),
                   failed_results=failed)
        return 0
    if argv and argv[0].startswith("-"):
        return daemon(argv)
    if len(argv) < 2:
        print("usage: pymw_assimilator --app APP | WU_ID FILE...", file=sys.stderr)
        return 2
    by_wu: dict[str, list[str]] = {}  # as script_assimilator calls it with a canonical result
    for path in argv[1:]:
        match = UPLOAD_NAME.match(os.path.basename(path))
        if match is None or not SAFE_NAME.match(match.group("wu")):
            print(f"pymw_assimilator: unexpected upload name {path}", file=sys.stderr)
            return 1
        by_wu.setdefault(match.group("wu"), []).append(path)
    results = results_dir()
    for wu_name, paths in by_wu.items():
        file_result(wu_name, paths, results, placeholder=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
