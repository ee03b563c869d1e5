"""The condor interface's state directory and its failures: what a crash, a refusal or a second
master must not lose or leave behind (review findings A4, A5, A8, A9, A14, A17)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pymw_admin.interfaces.condor import CondorInterface, _self_extracting
from pymw_admin.runtime import Master, WorkerLost
from testbed.condor import Pool

pytestmark = pytest.mark.condor
# a submit description the schedd refuses: every submission of it raises
REFUSED = {"requirements": "((("}


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
