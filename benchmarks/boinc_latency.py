"""Item 4 of boinc_scale: one short task through the real client, submit to result, by stage.

Runs as the project owner next to boinc_scale.py (``--latency``), on a project where the
``pymw`` app is deployed and a client is attached (the BOINC end-to-end tests make both). It
waits until the scheduler can send the work unit (the transitioner has made its replica and the
feeder has loaded it: ``bin/show_shmem`` lists it), asks the client for one scheduler RPC then (a
client idle on a project with no work backs off for minutes), and counts every scheduler request
the client made from then until the master holds the result; those it made while the work unit
was not yet fed are counted apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

from boinc_create_work import mysql

from pymw_admin.interfaces.boinc import BoincInterface, ProjectLayout
from pymw_admin.runtime import Master

RPC_TARGET = 2  # scheduler requests: one fetching the work, one reporting it
RPC_PORT = os.environ.get("PYMW_BOINC_RPC_PORT", "31416")


def short(x: int) -> int:
    return x + 1


def boinccmd(*args: str) -> str:
    return subprocess.run(["boinccmd", "--host", f"localhost:{RPC_PORT}", "--passwd", "", *args],
                          capture_output=True, text=True, timeout=60, check=False).stdout


def fed(root: Path, wu_name: str, timeout: float = 120.0) -> float | None:
    """When the feeder has the work unit's replica in shared memory (the scheduler can send it);
    None if it did not within ``timeout``."""
    found = mysql(root, f"SELECT id FROM workunit WHERE name = '{wu_name}'").split()
    # a slot holding work: "SLOT APP WU_ID RESULT_ID ..." (an empty one is "SLOT: ---")
    slot = re.compile(rf"^\s*\d+\s+\S+\s+{found[0]}\s", re.M) if found else None
    deadline = time.time() + timeout
    while slot is not None and time.time() < deadline:
        shown = subprocess.run([str(root / "bin" / "show_shmem")], cwd=root, capture_output=True,
                               text=True, timeout=30, check=False).stdout
        if slot.search(shown):
            return time.time()
        time.sleep(0.1)
    return None


def last_message() -> int:
    numbers = re.findall(r"^(\d+): ", boinccmd("--get_messages", "0"), re.M)
    return int(numbers[-1]) if numbers else 0


class Watcher(threading.Thread):
    """Polls the database every 0.1 s and notes when the work unit passes each state."""

    def __init__(self, root: Path, wu_name: str) -> None:
        super().__init__(daemon=True)
        self.root, self.wu_name = root, wu_name
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            row = mysql(self.root, (
                "SELECT r.server_state, r.outcome, r.validate_state, w.assimilate_state "
                "FROM workunit w LEFT JOIN result r ON r.workunitid = w.id "
                f"WHERE w.name = '{self.wu_name}' ORDER BY r.id LIMIT 1")).split()
            if len(row) < 4 or row[0] == "NULL":
                continue
            now = time.time()
            server_state, outcome, validate_state, assimilate_state = map(int, row)
            if server_state >= 4:  # IN_PROGRESS: the scheduler sent it to the client
                self.seen.setdefault("sent", now)
            if server_state == 5 and outcome == 1:  # OVER, SUCCESS: uploaded and reported
                self.seen.setdefault("reported", now)
            if validate_state == 1:
                self.seen.setdefault("validated", now)
            if assimilate_state == 2:
                self.seen.setdefault("assimilated", now)


def latency(root: Path) -> bool:
    layout = ProjectLayout.read(root)
    first_message = last_message()
    iface = BoincInterface(root, app_name="pymw", tag=f"latency{os.getpid()}", poll_seconds=0.05)
    master = Master(iface)
    start = time.time()
    task = master.submit_task(short, (41,))
    iface.flush()
    created = time.time()
    watcher = Watcher(root, iface.wu_name(task.task_id))
    watcher.start()
    fed_at = fed(root, iface.wu_name(task.task_id))
    ready = fed_at or time.time()
    asked_message = last_message()
    boinccmd("--project", layout.master_url, "update")
    _, value = master.get_result(task, timeout=900)
    held = time.time()
    watcher.stop.set()
    watcher.join()
    master.cleanup()
    # every scheduler request since the submit, read once: before the ask, and from it on
    numbered = re.findall(r"^(\d+): .*?Sending scheduler request: ([^\n.]*)",
                          boinccmd("--get_messages", str(first_message)), re.M)
    early = [reason for number, reason in numbered if int(number) <= asked_message]
    reasons = [reason for number, reason in numbered if int(number) > asked_message]
    rpcs = len(reasons)
    seen = watcher.seen
    started, finished = task.start_time or created, task.finish_time or created
    stages = [
        ("create_work", created - start),
        ("replica made and fed", ready - created),
        ("client fetch", seen.get("sent", started) - ready),
        ("download and start", started - seen.get("sent", started)),
        ("run", finished - started),
        ("upload and report", seen.get("reported", finished) - finished),
        ("validate", seen.get("validated", seen.get("reported", finished))
         - seen.get("reported", finished)),
        ("assimilate", seen.get("assimilated", held) - seen.get("validated", held)),
        ("master", held - seen.get("assimilated", held)),
    ]
    ok = value == 42 and fed_at is not None and 1 <= rpcs <= RPC_TARGET
    print(f"4. one short task through the real client: {held - start:.1f} s from submit to the "
          f"master holding the result; " + ", ".join(f"{n} {s:.1f} s" for n, s in stages))
    print(f"   scheduler RPCs by the client once the work unit could be sent: {rpcs} "
          f"({'; '.join(reasons)}) ({'meets' if ok else 'MISSES'} target <= {RPC_TARGET} beyond "
          f"the run; one was asked for then); before, while it was being fed: {len(early)}"
          + ("" if fed_at else "; the feeder never showed it in shared memory (bin/show_shmem)"))
    return ok
