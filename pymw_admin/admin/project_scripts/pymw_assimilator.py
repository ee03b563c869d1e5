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
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
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
from dataclasses import dataclass

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


def file_result(wu_name: str, paths: list[str], results: str, placeholder: bool = False) -> None:
    """Move the canonical result's upload to WU_NAME.result (with ``placeholder``, leaving an
    empty file for BOINC's file deleter). A missing or empty upload beside a filed result is one
    an earlier run filed already (a work unit whose database update failed is filed again);
    without one, the volunteer sent nothing, and the master hears so."""
    target = os.path.join(results, wu_name + contract.RESULT_SUFFIX)
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
        if placeholder:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o664))


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


def one_pass(db: Database, config: dict[str, str], app_id: int, results: str) -> int:
    """File one batch of the app's work units that are ready, and mark those filed done; how
    many."""
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
    for wu_field, name, canonical_id, mask in ready:
        wu_id, error_mask = int(wu_field), int(mask)
        rows = stderr.get(wu_id, "")
        try:
            if not SAFE_NAME.match(name):
                log(f"work unit {wu_id}: a name that cannot be a file's; marked done unfiled")
            elif wu_id not in failed:
                file_result(name, outputs[int(canonical_id)], results)
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
                count = one_pass(db, config, app_id, results)
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
