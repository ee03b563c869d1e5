"""status on a real project (init-project + deploy-app on the sshd test host): a master script
run with ``pymw-admin run`` makes real work units through the BOINC interface; ``status --json``
must say what BOINC's database says, counted here with our own SQL, also after the transitioner
has handled cancelled work units (counted apart, never as failures)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pymw_admin.admin.remote import HostSpec, connect
from pymw_admin.admin.server import daemons
from tests.conftest import default_sigint
from tests.helpers.cli import cli_env, pymw_admin
from tests.integration.runs.conftest import STATUS_NAME

pytestmark = [pytest.mark.ssh, pytest.mark.boinc]

ROOT = Path(__file__).resolve().parents[3]
TASKS = 6


def sql(statement: str) -> list[list[str]]:
    out = subprocess.run(["mysql", "-N", "-B", STATUS_NAME, "-e", statement], check=True,
                         capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


# a finished result no longer wanted: its work unit cancelled (WU_ERROR_CANCELLED) and the result
# not sent, not heard of or aborted; or aborted at the project's word (EXIT_ABORTED_BY_PROJECT)
CANCELLED = ("(((w.error_mask & 16) <> 0 AND (r.outcome IN (4, 5) OR (r.outcome = 3 AND "
             "r.client_state = 6))) OR (r.outcome = 3 AND r.client_state = 6 AND "
             "r.exit_status = 202))")


def counted_by_hand() -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Results and work units by state per app, straight from the definitions."""
    results = {row[0]: dict(zip(("unsent", "in_progress", "done", "errored", "not_needed",
                                 "cancelled"), map(int, row[1:]), strict=True)) for row in sql(
        "SELECT a.name, SUM(r.server_state IN (1, 2)), SUM(r.server_state = 4), "
        "SUM(r.server_state = 5 AND r.outcome = 1), "
        f"SUM(r.server_state = 5 AND r.outcome IN (2, 3, 4, 6, 7) AND NOT {CANCELLED}), "
        f"SUM(r.server_state = 5 AND r.outcome = 5 AND NOT {CANCELLED}), "
        f"SUM(r.server_state = 5 AND r.outcome <> 1 AND {CANCELLED}) "
        "FROM app a JOIN result r ON r.appid = a.id JOIN workunit w ON w.id = r.workunitid "
        "GROUP BY a.name")}
    wus = {row[0]: dict(zip(("unsent", "in_progress", "done", "errored", "cancelled"),
                            map(int, row[1:]), strict=True)) for row in sql(
        "SELECT a.name, "
        "SUM(w.error_mask = 0 AND w.canonical_resultid = 0 AND NOT EXISTS (SELECT 1 FROM result r "
        "  WHERE r.workunitid = w.id AND r.server_state IN (4, 5))), "
        "SUM(w.error_mask = 0 AND w.canonical_resultid = 0 AND EXISTS (SELECT 1 FROM result r "
        "  WHERE r.workunitid = w.id AND r.server_state IN (4, 5))), "
        "SUM(w.error_mask = 0 AND w.canonical_resultid <> 0), "
        "SUM(w.error_mask <> 0 AND (w.error_mask & 16) = 0), SUM((w.error_mask & 16) <> 0) "
        "FROM app a JOIN workunit w ON w.appid = a.id GROUP BY a.name")}
    return results, wus


def status_json(project_file: Path) -> dict:  # type: ignore[type-arg]
    out = pymw_admin("status", "--json", "--project-file", str(project_file))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def assert_matches_database(data: dict, counted: tuple | None = None) -> None:  # type: ignore[type-arg]
    results, wus = counted or counted_by_hand()
    shown = {app["name"]: app for app in data["apps"]}
    for name, counts in results.items():
        assert shown[name]["results"] == counts, name
    for name, counts in wus.items():
        assert shown[name]["workunits"] == counts, name
    assert data["totals"]["results"]["unsent"] == sum(c["unsent"] for c in results.values())


def wait_for(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def master_run(status_project: Path) -> str:
    out = pymw_admin("run", "--detach", "--project-file", str(status_project),
                     str(ROOT / "examples" / "null_test.py"), "--", "--tasks", str(TASKS))
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    wait_for(lambda: int(sql("SELECT COUNT(*) FROM workunit")[0][0]) >= TASKS, 90,
             "the master's work units")
    wait_for(lambda: int(sql("SELECT COUNT(*) FROM result")[0][0]) >= TASKS, 60,
             "the transitioner to make their results")
    return run_id


@dataclass(frozen=True)
class Seen:
    """What status said, and what the database held, at one moment."""

    data: dict  # type: ignore[type-arg]
    counted: tuple  # type: ignore[type-arg]


@pytest.fixture(scope="module")
def before_cancelling(status_project: Path, master_run: str) -> Seen:
    """status and the database before any work is cancelled: taken first, whatever order the
    tests run in (cancelling depends on this fixture)."""
    return Seen(status_json(status_project), counted_by_hand())


@pytest.fixture(scope="module")
def cancelled(status_project: Path, master_run: str, before_cancelling: Seen) -> list[str]:
    """Cancel two of the master's work units as BOINC's own cancel does (flag them, hand them to
    the transitioner) and wait until their results are closed; their ids."""
    ids = [row[0] for row in sql("SELECT id FROM workunit WHERE error_mask = 0 ORDER BY id "
                                 "LIMIT 2")]
    sql(f"UPDATE workunit SET error_mask = error_mask | 16, transition_time = 0 "
        f"WHERE id IN ({','.join(ids)})")
    wait_for(lambda: int(sql(f"SELECT COUNT(*) FROM result WHERE server_state = 5 AND "
                             f"workunitid IN ({','.join(ids)})")[0][0]) == 2, 60,
             "the transitioner to close the cancelled work units' results")
    return ids


def test_status_counts_match_the_database(before_cancelling: Seen, master_run: str) -> None:
    data = before_cancelling.data
    assert_matches_database(data, before_cancelling.counted)
    pymw = next(app for app in data["apps"] if app["name"] == "pymw")
    assert pymw["workunits"]["unsent"] == TASKS  # nobody has fetched work: no client attached
    assert pymw["results"]["unsent"] == TASKS
    run = next(r for r in data["runs"] if str(r["id"]) == master_run)
    assert run["state"] == "running" and run["script"] == "null_test.py"


def test_daemons_match_their_pid_files(status_project: Path) -> None:
    from pymw_admin.admin import config

    project = config.load(status_project)
    host = connect(HostSpec("vm", ssh_config=project.host.ssh_config))
    try:
        facts = daemons.status(host, project.project_spec())
    finally:
        host.close()
    data = status_json(status_project)
    assert data["daemons"]["running"] == {n: n in facts.running for n in facts.configured}
    assert data["daemons"]["up"] is True
    assert {"feeder", "transitioner", "file_deleter"} <= set(data["daemons"]["running"])


def test_cancelled_work_shows_apart_from_failures(status_project: Path,
                                                  cancelled: list[str]) -> None:
    ids = cancelled
    data = status_json(status_project)
    assert_matches_database(data)
    pymw = next(app for app in data["apps"] if app["name"] == "pymw")
    assert pymw["workunits"]["cancelled"] >= 2 and pymw["results"]["cancelled"] >= 2
    names = {row[0] for row in sql(f"SELECT name FROM workunit WHERE id IN ({','.join(ids)})")}
    failed = {f["workunit"] for f in data["failures"]}
    assert not names & failed  # cancelled by us: not a failure, whatever bits BOINC adds
    # per run tag: the master's (null_test.py's) work units, the cancelled ones apart
    (tasks,) = (t for t in data["tasks"] if t["app"] == "pymw")
    (tag,) = (t for t in tasks["tags"] if t["tag"] == "null_test")
    assert tag["cancelled"]["workunits"] >= 2 and tag["cancelled"]["results"] >= 2
    assert not [f for f in tag["failed"] if "cancelled" in f["reason"]]


def test_table_and_watch(status_project: Path, cancelled: list[str]) -> None:
    table = pymw_admin("status", "--project-file", str(status_project))
    assert table.returncode == 0
    for word in ("feeder", "pymw", "null_test.py", "tasks (work units", "null_test",
                 "cancelled"):
        assert word in table.stdout, word
    exe = str(Path(sys.executable).parent / "pymw-admin")
    watch = subprocess.Popen([exe, "status", "--watch", "--interval", "1", "--project-file",
                              str(status_project)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=cli_env(), preexec_fn=default_sigint)
    time.sleep(6)
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert STATUS_NAME in out and "Traceback" not in err


def test_the_master_hears_of_the_cancelled_work(status_project: Path, master_run: str,
                                                cancelled: list[str]) -> None:
    """The assimilator files the cancelled work units as errors; the master on the server
    raises, and the run ends with the master's exit status and reason in its log."""

    def state() -> str:
        return next(r for r in status_json(status_project)["runs"]
                    if str(r["id"]) == master_run)["state"]

    wait_for(lambda: state() != "running", 120, "the master to hear of the cancelled work")
    assert state() == "exited(1)"
    log = pymw_admin("logs", "--project-file", str(status_project), master_run, "-n", "1")
    assert "BOINC work unit" in log.stdout and "cancelled" in log.stdout
