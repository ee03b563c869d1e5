"""The Master API on the real personal pool: results, errors, holds, retries, cleanup."""

from __future__ import annotations

import re
import time
from pathlib import Path

import htcondor2
import pytest

from pymw_admin.errors import ConfigError
from pymw_admin.interfaces.condor import CondorInterface
from pymw_admin.runtime import Master, PythonVersionMismatch, TaskError, WorkerLost
from testbed.condor import USER_UID, Pool

pytestmark = pytest.mark.condor


def square_on_node(x: int) -> tuple[int, int, str]:
    import os
    import socket

    # the data file travelled with the task and sits in the task's working directory
    with open("offset.txt") as f:
        offset = int(f.read())
    return x, x * x + offset, f"{socket.gethostname()}:{os.getcwd()}"


def crash(code: int) -> None:
    import os

    os._exit(code)  # the worker dies without writing a result


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def where_the_bundle_runs(_: int) -> str:
    import sys

    return sys.executable


def test_map_and_get_result_through_one_cluster(
    pool: Pool, bundle: Path, tmp_path: Path, schedd: htcondor2.Schedd
) -> None:
    (tmp_path / "offset.txt").write_text("1000")
    iface = CondorInterface(app_path=bundle)
    with Master(interface=iface, retries=0) as master:
        tasks = master.submit_many(square_on_node, range(6), data_files=[tmp_path / "offset.txt"])
        jobs = {iface.jobs[t.task_id] for t in tasks}
        clusters = {job.split(".")[0] for job in jobs}
        assert len(jobs) == 6 and len(clusters) == 1  # many tasks, one cluster
        results = master.map(square_on_node, [7], data_files=[tmp_path / "offset.txt"])
        assert results[0][:2] == (7, 1049)
        seen = set()
        for task in tasks:
            got_task, (x, value, where) = master.get_result(task, timeout=300)
            assert got_task is task and value == x * x + 1000
            assert "/var/lib/condor/execute" in where  # ran in an HTCondor sandbox
            assert task.worker  # the slot that ran it
            seen.add(x)
        assert seen == set(range(6))
        status = master.get_status()
        assert status.counts["done"] == 7
    # cleanup left nothing of ours in the queue, and the temporary state directory went
    assert not iface.state_dir.exists()
    assert not schedd.query(f'PymwTag == "{iface.tag}" && JobStatus != 3', ["ClusterId"])


def test_task_exception_reaches_the_master(pool: Pool, bundle: Path) -> None:
    with Master(interface=CondorInterface(app_path=bundle), retries=0) as master:
        task = master.submit_task(int, input_data=("not a number",))
        with pytest.raises(TaskError) as info:
            master.get_result(task, timeout=300)
    assert info.value.remote_type == "ValueError"
    assert "not a number" in str(info.value)


def test_a_held_job_becomes_an_error_with_the_hold_reason(pool: Pool, bundle: Path) -> None:
    iface = CondorInterface(
        app_path=bundle,
        submit_options={"periodic_hold": "JobStatus == 2",
                        "periodic_hold_reason": '"held on purpose by the test"'},
    )
    with Master(interface=iface, retries=0) as master:
        task = master.submit_task(pow, input_data=(2, 5))
        with pytest.raises(WorkerLost) as info:
            master.get_result(task, timeout=300)
    assert "held on purpose by the test" in str(info.value)
    assert task.attempts == 1


def test_a_crashing_worker_is_retried_then_reported(pool: Pool, bundle: Path) -> None:
    with Master(interface=CondorInterface(app_path=bundle), retries=1) as master:
        task = master.submit_task(crash, input_data=(3,))
        with pytest.raises(WorkerLost) as info:
            master.get_result(task, timeout=300)
    assert task.attempts == 2  # the master resubmitted once
    message = str(info.value)
    assert "HTCondor held job" in message and "exited with status 3" in message


def test_cleanup_removes_the_masters_jobs(
    pool: Pool, bundle: Path, schedd: htcondor2.Schedd
) -> None:
    iface = CondorInterface(app_path=bundle)
    master = Master(interface=iface)
    master.submit_many(nap, [300, 300])
    master.get_status()  # hands the jobs to the schedd
    constraint = f'PymwTag == "{iface.tag}"'
    assert len(schedd.query(constraint, ["JobStatus"])) == 2
    master.cleanup()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = schedd.query(f"{constraint} && JobStatus != 3", ["JobStatus"])
        if not left:
            break
        time.sleep(0.5)
    assert not left


def test_python_on_the_nodes(pool: Pool) -> None:
    """-c python3: pymw-admin travels as a zip; the chroot's Python 3.13 refuses a 3.11 task."""
    with Master(interface=CondorInterface(app_path="/usr/bin/python3"), retries=0) as master:
        task = master.submit_task(pow, input_data=(2, 5))
        with pytest.raises(PythonVersionMismatch) as info:
            master.get_result(task, timeout=300)
    assert "3.13" in str(info.value)


def test_a_missing_worker_is_one_clear_error(pool: Pool, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        CondorInterface(app_path=tmp_path / "no-such-bundle")


def test_jobs_on_a_node_run_the_bundle_from_its_cache(pool: Pool, bundle: Path) -> None:
    iface = CondorInterface(app_path=bundle)
    found = re.search(rb"digest=([0-9a-f]+)", iface.program.path.read_bytes()[:4096])
    assert found, "the packed bundle's header names no digest"
    digest = found.group(1).decode()
    with Master(interface=iface, retries=0) as master:
        ran = master.map(where_the_bundle_runs, range(8))
    # the testbed's jobs run as their owner and share /tmp (its MOUNT_UNDER_SCRATCH is empty)
    cached = f"/tmp/pymw-bundles-{USER_UID}/{digest}/pymw-bundle/"
    assert all(path.startswith(cached) for path in ran), ran
    cache = pool.root / "tmp" / f"pymw-bundles-{USER_UID}"
    assert (cache / digest / "complete").is_file()
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".unpack.")]
