"""Python tasks through a real BOINC server and a real BOINC client, end to end.

All masters of this module start together (one round trip for all, the client has two CPUs):
monte_pi prints pi; a task that raises comes back as that error; a task reporting progress through
the ``boinc`` module's own shared-memory protocol shows it in ``boinccmd --get_tasks``; a master
killed after submitting and restarted with the same tag collects each earlier result exactly once.
A replicated run needs two volunteers: test_quorum.py.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from testbed import boinc_client
from testbed.boinc_project import OWNER, PROJECT_DIR, WORK
from tests.helpers.boinc_master import (
    REPO,
    MasterRun,
    Project,
    record_timing,
    start_master,
    tag,
    write_script,
)

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

CHECKS = '''
import sys
from pymw_admin.runtime import Master, options
from pymw_admin.runtime.errors import TaskError


def boom(x):
    raise ValueError(f"boom {x}")


def slow(steps):
    import time

    import boinc
    for i in range(steps):
        boinc.fraction_done(i / steps)
        time.sleep(1.0)
    # the module's own Python protocol talked to the client (no C library involved)
    return steps * 2, boinc.mode(), boinc.is_standalone()


with Master(interface=options.interface_from_args()) as master:
    master.submit_task(boom, (42,))
    master.submit_task(slow, (int(sys.argv[-1]),))
    for _ in range(2):
        try:
            task, value = master.get_result()
            print("RESULT", task.name, value, flush=True)
        except TaskError as exc:
            print("ERROR", exc.task.name, exc.remote_type, exc.remote_message, flush=True)
'''

RESUMABLE = '''
import sys
from pymw_admin.runtime import Master, options


def square(x):
    return x * x


master = Master(interface=options.interface_from_args())
if sys.argv[-1] == "submit":
    tasks = [master.submit_task(square, (i,)) for i in range(3)]
    master.interface.flush()  # the work units exist now
    print("SUBMITTED", len(tasks), flush=True)
    import time
    time.sleep(3600)  # killed here, before collecting anything
else:
    print("RESUMED", len(master.resumed), flush=True)
    for _ in master.resumed:
        task, value = master.get_result()
        print("GOT", task.task_id, value, flush=True)
    master.cleanup()
'''


class Runs:
    def __init__(self) -> None:
        self.pi: MasterRun
        self.checks: MasterRun
        self.resume_tag = ""
        self.fractions: list[float] = []
        self.first_submit: MasterRun


def _watch_fractions(runs: Runs, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        for task in boinc_client.tasks():
            if "slow" in task.get("WU name", "") or "checks" in task.get("WU name", ""):
                value = task.get("fraction done")
                if value is not None and task.get("active_task_state") == "EXECUTING":
                    runs.fractions.append(float(value))


@pytest.fixture(scope="module")
def runs(project: Project, master_python: str, kicker: None) -> Iterator[Runs]:
    result = Runs()
    checks = write_script("boinc_checks.py", CHECKS)
    resumable = write_script("boinc_resumable.py", RESUMABLE)
    result.resume_tag = tag("resume")
    started = time.monotonic()
    # the owner runs the masters: copies where it can read them (the checkout may be private)
    monte_pi = write_script("monte_pi.py", (REPO / "examples" / "monte_pi.py").read_text())
    result.pi = start_master(master_python, monte_pi, "-a",
                             f"tag={tag('pi')}", "--tasks", "4", "--darts", "200000")
    result.checks = start_master(master_python, checks, "-a", f"tag={tag('checks')}", "12")
    result.first_submit = start_master(master_python, resumable, "-a",
                                       f"tag={result.resume_tag}", "submit")
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_fractions, args=(result, stop), daemon=True)
    watcher.start()
    yield result
    stop.set()
    watcher.join(timeout=5)
    record_timing("all_round_trips_s", round(time.monotonic() - started, 1))
    for run in (result.pi, result.checks, result.first_submit):
        if run.proc.poll() is None:
            run.proc.kill()
    # killing sudo leaves its child: end every master still running on this project
    subprocess.run(["pkill", "-KILL", "-u", OWNER, "-f", "--", f"-i boinc -p {PROJECT_DIR}"],
                   check=False)


def test_monte_pi_prints_pi(runs: Runs) -> None:
    run = runs.pi.finish()
    record_timing("monte_pi_s", round(run.seconds, 1))
    assert run.proc.returncode == 0, run.stderr[-3000:]
    match = re.search(r"pi is about ([0-9.]+)", run.stdout)
    assert match, run.stdout
    assert abs(float(match.group(1)) - math.pi) < 0.05


def test_task_error_and_result(runs: Runs) -> None:
    run = runs.checks.finish()
    record_timing("error_and_progress_s", round(run.seconds, 1))
    assert run.proc.returncode == 0, run.stderr[-3000:]
    assert "ERROR boom ValueError boom 42" in run.stdout, run.stdout + run.stderr[-2000:]
    assert "RESULT slow (24, 'client', False)" in run.stdout, run.stdout


def test_fraction_done_reaches_the_client(runs: Runs) -> None:
    runs.checks.finish()
    inside = [f for f in runs.fractions if 0.0 < f < 1.0]
    assert inside, f"no fraction done between 0 and 1 seen: {runs.fractions[:20]}"
    assert max(inside) > min(inside)  # it rose while the task ran


def _wait_results(wanted_tag: str, count: int, timeout: float = 240) -> None:
    journal = PROJECT_DIR / "pymw" / "masters" / wanted_tag / "submitted.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists():
            names = [json.loads(line)["wu"] for line in journal.read_text().splitlines()]
            results = PROJECT_DIR / "pymw" / "results"
            done = [n for n in names if (results / f"{n}.result").exists()]
            if len(names) == count and len(done) == count:
                return
        time.sleep(1)
    raise AssertionError(f"the {count} work units of {wanted_tag} were not assimilated")


def test_resume_collects_each_result_once(runs: Runs, master_python: str) -> None:
    first = runs.first_submit
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "SUBMITTED" not in line:
        line = first.proc.stdout.readline() if first.proc.stdout else ""
    assert "SUBMITTED 3" in line
    # SIGKILL can't be relayed by sudo: kill the owner's master process itself, uncollected
    subprocess.run(["pkill", "-KILL", "-u", OWNER, "-f", f"tag={runs.resume_tag} submit"],
                   check=False)
    first.proc.wait(timeout=30)
    _wait_results(runs.resume_tag, 3)  # they finish with no master running
    script = WORK / "boinc_resumable.py"
    # not asked to resume: refused, and nothing of the earlier run is handed out
    plain = start_master(master_python, script, "-a", f"tag={runs.resume_tag}",
                         "collect").finish(timeout=120)
    assert plain.proc.returncode != 0
    assert f"tag {runs.resume_tag} holds 3 uncollected task(s)" in plain.stderr
    assert "GOT" not in plain.stdout and "Traceback" not in plain.stderr, plain.stderr
    second = start_master(master_python, script, "-a", f"tag={runs.resume_tag} resume=yes",
                          "collect").finish(timeout=120)
    assert second.proc.returncode == 0, second.stderr[-3000:]
    assert "RESUMED 3" in second.stdout
    assert "resuming 3 task(s) an earlier master left" in second.stderr  # one line in the log
    values = sorted(int(v) for v in re.findall(r"GOT \S+ (\d+)", second.stdout))
    assert values == [0, 1, 4]
    third = start_master(master_python, script, "-a", f"tag={runs.resume_tag} resume=yes",
                         "collect").finish(timeout=60)
    assert "RESUMED 0" in third.stdout, third.stdout + third.stderr[-2000:]
    assert "GOT" not in third.stdout
