#!/usr/bin/env python3
"""File a finished BOINC work unit where the pymw-admin BOINC interface finds it.

Installed as ``bin/pymw_assimilate_error``: BOINC's script_assimilator runs ``bin/pymw_assimilator``
(pymw_assimilator.sh) from PROJECT/tmp_HOST, which files results itself and hands a failed work
unit to this script. Called with a result (the way earlier versions were installed), it still
files it, by copy:

    pymw_assimilate_error --error MASK WU_NAME WU_ID BATCH   the work unit failed
    pymw_assimilate_error WU_ID FILE...                      a canonical result exists

A result goes to PROJECT/pymw/results/WU_NAME.result (copied: the file deleter removes the upload
soon after); a failure to WU_NAME.error, a JSON record with BOINC's error mask, its meaning and the
stderr the task's hosts reported. Files appear whole (written aside, then renamed). Standard
library only: the server's python3 runs it. Exit 0 on success; BOINC retries on non-zero.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

# deploy-app installs pymw_admin.wire.boinc_contract beside this script
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import pymw_boinc_contract as contract

# upload names are RESULTNAME_rRANDOM_INDEX (older servers: RESULTNAME_INDEX); RESULTNAME is
# WUNAME_REPLICA: the work unit's name comes from the server's path, never from the file's content
UPLOAD_NAME = re.compile(r"^(?P<wu>.+)_\d+(?:_r\d+)?_\d+$")


def project_dir() -> str:
    # we run in PROJECT/tmp_HOST; the project root holds config.xml
    here = os.getcwd()
    for candidate in (here, os.path.dirname(here)):
        if os.path.exists(os.path.join(candidate, "config.xml")):
            return candidate
    return os.path.dirname(here)


def results_dir() -> str:
    path = os.path.join(project_dir(), *contract.RESULTS_DIR)
    os.makedirs(path, exist_ok=True)
    return path


def place(data_path: str, target: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".part-")
    os.close(fd)
    shutil.copyfile(data_path, tmp)
    os.chmod(tmp, 0o664)
    os.replace(tmp, target)


def write_json(record: dict[str, object], target: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".part-")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.chmod(tmp, 0o664)
    os.replace(tmp, target)


def db_config() -> dict[str, str]:
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
    }


def stderr_of(wu_id: str) -> str:
    """The stderr its hosts reported for the work unit's results (from the project database)."""
    try:
        db = db_config()
        # the password goes through a 0600 option file, never the command line
        fd, option_file = tempfile.mkstemp(prefix="pymw-db-")
        with os.fdopen(fd, "w") as f:
            f.write(f"[client]\nuser={db['user']}\npassword={db['password']}\nhost={db['host']}\n")
        try:
            out = subprocess.run(
                # batch mode escapes newlines and tabs in a field (no -r): a volunteer's stderr
                # can never start a row of its own
                ["mysql", f"--defaults-extra-file={option_file}", "-N", "-B", db["name"],
                 "-e", f"select outcome, exit_status, stderr_out from result "
                       f"where workunitid={int(wu_id)} order by id"],
                capture_output=True, text=True, timeout=60, check=False,
            )
        finally:
            os.unlink(option_file)
        return clean_stderr(out.stdout)
    except Exception as exc:  # the error record matters more than its stderr
        return f"(stderr unavailable: {exc})"


STDERR_TXT = re.compile(r"<stderr_txt>\n?(.*?)</stderr_txt>", re.S)
MESSAGE = re.compile(r"<message>\s*(.*?)\s*</message>", re.S)


_MYSQL_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}


def unescape(field: str) -> str:
    """A field of mysql's batch output: \\n, \\t, \\0 and \\\\ back to what they stand for."""
    return re.sub(r"\\(.)", lambda m: _MYSQL_ESCAPES.get(m.group(1), m.group(1)), field)


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


def main(argv: list[str]) -> int:
    if argv[:1] == ["--error"]:
        if len(argv) < 4:
            print("usage: pymw_assimilator --error MASK WU_NAME WU_ID [BATCH]", file=sys.stderr)
            return 2
        mask, wu_name, wu_id = int(argv[1]), argv[2], argv[3]
        record: dict[str, object] = {
            "wu_name": wu_name,
            "wu_id": int(wu_id),
            "error_mask": mask,
            "error": contract.describe_error_mask(mask),
            "stderr": stderr_of(wu_id),
        }
        write_json(record, os.path.join(results_dir(), wu_name + contract.ERROR_SUFFIX))
        return 0
    if len(argv) < 2:
        print("usage: pymw_assimilator WU_ID FILE...", file=sys.stderr)
        return 2
    for path in argv[1:]:
        match = UPLOAD_NAME.match(os.path.basename(path))
        if match is None:
            print(f"pymw_assimilator: unexpected upload name {path}", file=sys.stderr)
            return 1
        place(path, os.path.join(results_dir(), match.group("wu") + contract.RESULT_SUFFIX))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
