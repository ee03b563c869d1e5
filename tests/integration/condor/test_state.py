"""The condor interface's state directory and its failures: what a crash, a refusal or a second
master must not lose or leave behind (review findings A4, A5, A8, A9, A14, A17)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import htcondor2
import pytest

from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces.condor import CondorInterface
from pymw_admin.interfaces.kit.worker_program import _self_extracting
from pymw_admin.runtime import Master, WorkerLost
from testbed.condor import Pool

pytestmark = pytest.mark.condor
# a submit description the schedd refuses: every submission of it raises
REFUSED = {"requirements": "((("}


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_packing_a_worker_leaves_another_writers_partial_file_alone(tmp_path: Path) -> None:
    payload, out = tmp_path / "payload", tmp_path / "worker.run"
    payload.write_bytes(b"PAYLOAD")
    # another master packing the same worker at this moment, under the old fixed name
    other = out.with_suffix(".part")
    other.write_bytes(b"half written by another master")
    _self_extracting("#!/bin/sh\ntail -c +{offset} \"$0\"\n", payload, out)
    assert other.read_bytes() == b"half written by another master"
    assert out.read_bytes().endswith(b"PAYLOAD") and out.stat().st_mode & 0o111
    assert sorted(p.name for p in tmp_path.iterdir()) == ["payload", "worker.part", "worker.run"]


def test_a_refused_submission_is_retried_then_reported_not_lost(pool: Pool, bundle: Path) -> None:
    iface = CondorInterface(app_path=bundle, submit_options=REFUSED)
    with Master(interface=iface, retries=1) as master:
        one = master.submit_task(pow, input_data=(2, 5))
        many = master.submit_many(pow, [(2, 3), (3, 3)])  # submit_many flushes at once
        for task in [one, *many]:
            with pytest.raises(WorkerLost, match="HTCondor refused the jobs"):
                master.get_result(task, timeout=30)
            assert task.attempts == 2  # the master resubmitted once, then gave up
        assert master.get_progress().failed == 3


def test_waiting_forever_with_nothing_in_flight_sleeps(pool: Pool, bundle: Path) -> None:
    iface = CondorInterface(app_path=bundle, poll_interval=0.3)
    try:
        start = time.monotonic()
        assert iface.wait(None) == []
        assert time.monotonic() - start >= 0.25  # a master looping on wait() does not spin
    finally:
        iface.close()


def test_no_schedd_leaves_no_temporary_state_dir(
    pool: Pool, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    nowhere = tmp_path / "condor_config"
    nowhere.write_text("COLLECTOR_HOST = 127.0.0.1:9\nENABLE_IPV6 = False\n")
    saved = os.environ["CONDOR_CONFIG"]
    os.environ["CONDOR_CONFIG"] = str(nowhere)
    htcondor2.reload_config()
    try:
        with pytest.raises(EngineUnavailable, match="no HTCondor schedd could be located"):
            CondorInterface(app_path=bundle)
    finally:
        os.environ["CONDOR_CONFIG"] = saved
        htcondor2.reload_config()
    assert not list(tmp_path.glob("pymw-condor-*"))


def test_lines_that_are_not_journal_events_are_skipped(
    pool: Pool, bundle: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    lines = ['[1, 2]', '"text"', '{"e": "task"}', '{"id": "t1"}', '{"e": "task", "id": 7}',
             '{"e": "task", "id": "t1", "name": "pow"}', '{"e": "job", "id": "t1"}',
             '{"e": "collected", "id": "t1"}', '{"e": "done", "id": "t1", "torn']
    (state / "journal.jsonl").write_text("\n".join(lines) + "\n")
    iface = CondorInterface(app_path=bundle, state_dir=state)
    try:
        assert iface.resumed_tasks() == []
        assert iface._tasks["t1"].state == "collected"
    finally:
        iface.close()
    events = [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines()[:8]]
    assert events[0] == [1, 2]  # the journal itself is left as it was


def _open_files(path: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    return [str(fd) for fd in fds.iterdir() if os.path.realpath(fd) == str(path)]


def test_resume_refuses_a_schedd_that_does_not_answer(
    pool: Pool, bundle: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "tasks").mkdir()
    (state / "tasks" / "t1.task").write_bytes(b"a task file")
    (state / "journal.jsonl").write_text('{"e": "task", "id": "t1", "name": "pow"}\n'
                                          '{"e": "job", "id": "t1", "job": "1.0"}\n')
    # the real schedd's location, at a port where nothing answers
    location = htcondor2.Collector().locate(htcondor2.DaemonType.Schedd)
    location["MyAddress"] = "<127.0.0.1:9>"
    silent = htcondor2.Schedd(location)
    with pytest.raises(EngineUnavailable, match="cannot resume: the HTCondor schedd does not") \
            as info:
        CondorInterface(app_path=bundle, state_dir=state, schedd=silent)
    assert "\n" not in str(info.value)
    assert _open_files(state / "journal.jsonl") == []  # the failed start closed its journal
    journal = (state / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 2  # and wrote nothing: t1 is still there for a later master


def test_a_second_master_on_the_same_state_dir_is_refused(
    pool: Pool, bundle: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = CondorInterface(app_path=bundle, state_dir=state)
    try:
        with pytest.raises(UsageError, match=rf"in use by a running master \(pid {os.getpid()}\)"
                           ) as info:
            CondorInterface(app_path=bundle, state_dir=state)
        assert "\n" not in str(info.value)
    finally:
        first.close()
    CondorInterface(app_path=bundle, state_dir=state).close()  # free again once it ended


def test_an_exception_in_the_master_keeps_a_persistent_state_for_resume(
    pool: Pool, bundle: Path, tmp_path: Path, schedd: htcondor2.Schedd
) -> None:
    state = tmp_path / "state"
    iface = CondorInterface(app_path=bundle, state_dir=state)
    live = f'PymwTag == "{iface.tag}" && JobStatus != 3'
    with pytest.raises(RuntimeError, match="the script failed"), \
            Master(interface=iface) as master:
        running = master.submit_task(nap, input_data=(300,))
        master.get_status()  # its job is in the queue now
        handed = master.submit_task(nap, input_data=(300,))  # not yet given to the schedd
        raise RuntimeError("the script failed")
    assert len(schedd.query(live, ["ClusterId"])) == 1  # not removed
    with Master(interface=CondorInterface(app_path=bundle, state_dir=state)) as again:
        assert {t.task_id for t in again.resumed} == {running.task_id, handed.task_id}
        again.get_status()  # the journalled, never submitted one is submitted now
        assert len(schedd.query(live, ["ClusterId"])) == 2
    deadline = time.monotonic() + 60  # a clean exit removes the jobs, as before
    while schedd.query(live, ["ClusterId"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not schedd.query(live, ["ClusterId"])


def test_an_exception_with_a_temporary_state_dir_still_cleans_up(pool: Pool, bundle: Path) -> None:
    iface = CondorInterface(app_path=bundle)
    with pytest.raises(KeyboardInterrupt), Master(interface=iface):
        raise KeyboardInterrupt
    assert not iface.state_dir.exists()  # nothing could resume from it


UNCAUGHT = """
import sys
from pymw_admin.interfaces.condor import CondorInterface
from pymw_admin.runtime import Master

def nap(seconds):
    import time
    time.sleep(seconds)
    return seconds

master = Master(interface=CondorInterface(app_path=sys.argv[1], state_dir=sys.argv[2]))
master.submit_task(nap, input_data=(300,))
master.get_status()
raise RuntimeError("the script failed")  # no `with`: the exit hook decides
"""


def test_an_uncaught_exception_without_with_also_keeps_the_jobs(
    pool: Pool, bundle: Path, tmp_path: Path, schedd: htcondor2.Schedd
) -> None:
    import subprocess
    import sys

    state = tmp_path / "state"
    script = tmp_path / "master.py"
    script.write_text(UNCAUGHT)
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, str(script), str(bundle), str(state)],
                         capture_output=True, text=True, timeout=120, check=False,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    assert out.returncode == 1 and "the script failed" in out.stderr
    tag = (state / "tag").read_text().strip()
    live = f'PymwTag == "{tag}" && JobStatus != 3'
    assert len(schedd.query(live, ["ClusterId"])) == 1  # detached, not removed
    with Master(interface=CondorInterface(app_path=bundle, state_dir=state)) as again:
        assert len(again.resumed) == 1
    deadline = time.monotonic() + 60  # that clean exit removes the job
    while schedd.query(live, ["ClusterId"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not schedd.query(live, ["ClusterId"])
