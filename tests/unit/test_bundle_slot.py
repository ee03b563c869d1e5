"""Slot directories and the bundle interface's judgement, with a shell script as the 'bundle'."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from pymw_admin.bundles import manifest as mf
from pymw_admin.bundles import slot
from pymw_admin.errors import ConfigError, UsageError
from pymw_admin.interfaces.base import Completion
from pymw_admin.interfaces.bundle import BundleInterface
from pymw_admin.runtime import Master
from pymw_admin.runtime.errors import TaskError, WorkerLost
from pymw_admin.wire.encoding import python_minor


def script_bundle(root: Path, body: str, python: str = "3.11") -> mf.Bundle:
    d = root / "plat" / "bundle"
    d.mkdir(parents=True)
    (d / "pymw-worker").write_text("#!/bin/sh\n" + body)
    (d / "pymw-worker").chmod(0o755)
    m = mf.Manifest(platform="x86_64-pc-linux-gnu", python=python, python_full=python,
                    main_program="pymw-worker", files=mf.scan(d))
    mf.write(m, d.parent)
    return mf.open_bundle(d.parent)


def test_slot_layout(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    base = tmp_path / "client"
    s = slot.prepare(base, 2, bundle, "t9", b"TASK")
    assert (s / "pymw-worker").is_file()
    link = etree.fromstring((s / "pymw_task").read_bytes())
    assert link.tag == "soft_link"
    target = base / "projects" / slot.PROJECT / "pymw_t9_task"
    assert (s / link.text).resolve() == target.resolve()
    assert (s / link.text).read_bytes() == b"TASK"
    init = etree.parse(str(s / "init_data.xml")).getroot()
    assert init.findtext("slot") == "2" and init.findtext("app_name") == "pymw"


def test_a_small_task_goes_in_the_command_line_as_a_client_passes_it(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", 'printf "%s" "$*" > args\ntouch boinc_finish_called\n')
    assert slot.inline_args(bundle, b"x" * 5000) == []  # too large: a task file
    args = slot.inline_args(bundle, b"TASK")
    assert args == ["--pymw-task=VEFTSw=="]
    base = tmp_path / "client"
    s = slot.prepare(base, 0, bundle, "t1", b"TASK", inline=True)
    assert not (s / "pymw_task").exists()
    assert not (base / "projects" / slot.PROJECT / "pymw_t1_task").exists()
    slot.run(base, s, bundle, "t1", args=args)
    assert (s / "args").read_text() == "--pymw-task=VEFTSw=="
    bundle.manifest.features = []  # a bundle built before: task files only
    assert slot.inline_args(bundle, b"TASK") == []


def test_exit_zero_without_finish_file_is_a_failure(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    s = slot.prepare(tmp_path / "c", 0, bundle, "t", b"x")
    run = slot.run(tmp_path / "c", s, bundle, "t")
    assert "no 'boinc_finish_called' file" in run.failure()


def test_nonzero_exit_names_the_last_stderr_line(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "echo first >&2; echo 'error: it broke' >&2; exit 3\n")
    s = slot.prepare(tmp_path / "c", 0, bundle, "t", b"x")
    assert slot.run(tmp_path / "c", s, bundle, "t").failure() == (
        "the bundle exited with status 3: error: it broke")


def test_interface_reports_failures_as_completions(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "echo boom >&2; exit 1\n")
    interface = BundleInterface(bundle, num_workers=1, api="python")
    try:
        interface.submit("a", b"task")
        done = interface.wait(30)
        assert len(done) == 1 and done[0].task_id == "a"
        assert done[0].record is None and "status 1: boom" in done[0].failure
        assert "boom" in done[0].stderr
    finally:
        interface.close()


def test_interface_refuses_another_python(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n", python="2.7")
    with pytest.raises(ConfigError, match=r"runs Python 2\.7"):
        BundleInterface(bundle)


def test_a_slot_that_raises_fails_its_task_and_keeps_serving(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    (bundle.dir / "pymw-worker").unlink()  # prepare() cannot place the main program
    interface = BundleInterface(bundle, num_workers=1, api="python")
    try:
        interface.submit_many([("a", b"task"), ("b", b"task")])
        done: list[Completion] = []
        deadline = time.monotonic() + 20
        while len(done) < 2 and time.monotonic() < deadline:
            done += interface.wait(1)
        assert sorted(c.task_id for c in done) == ["a", "b"]  # the one slot served both
        assert all(c.record is None and c.failure.startswith("slot 0: ") for c in done)
        assert "pymw-worker" in done[0].failure and "\n" not in done[0].failure
        assert interface.workers()[0].in_flight == 0
    finally:
        interface.close()


def test_close_stops_running_bundles_before_removing_the_slots(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    bundle = script_bundle(tmp_path / "b", f"echo $$ > {pid_file}\nexec sleep 60\n")
    interface = BundleInterface(bundle, num_workers=1, api="python")
    interface.submit("a", b"task")
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the bundle never started"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    started = time.monotonic()
    interface.close()
    assert time.monotonic() - started < 10  # not a wait for the task (60 s) or a 30 s join
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped, not left running over a removed slot tree
    assert not interface.base.exists()
    assert interface.wait(0) == []  # a task cut short by close() is not reported


def test_master_gets_a_failure_not_a_hang_when_a_slot_raises(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    (bundle.dir / "pymw-worker").chmod(0o644)  # not executable: Popen raises PermissionError
    with Master(interface=BundleInterface(bundle, num_workers=1, api="python")) as master:
        task = master.submit_task(abs, input_data=(-1,))
        with pytest.raises(WorkerLost, match=r"slot 0: .*Permission denied"):
            master.get_result(task, timeout=20)


def entry_bundle(root: Path) -> mf.Bundle:
    """A 'bundle' whose main program is the real entry point on this Python: what the frozen
    one runs, without a build."""
    return script_bundle(root, f'exec {sys.executable} -m pymw_admin.bundles.entry "$@"\n',
                         python=python_minor())


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def make_point(x: int) -> Point:
    return Point(x)


def test_results_are_decoded_as_the_boinc_master_decodes_them(tmp_path: Path) -> None:
    bundle = entry_bundle(tmp_path / "b")
    with Master(interface=BundleInterface(bundle, num_workers=1)) as master:
        plain = master.submit_task(divmod, input_data=(7, 2))
        point = master.submit_task(make_point, input_data=(3,))
        assert master.get_result(plain)[1] == (3, 1)
        # what volunteers' results may not be: refused here, not first after deploying
        with pytest.raises(TaskError, match=r"cannot decode the result: untrusted result "
                                            r"refers to .*; refused"):
            master.get_result(point)


def dies_once(marker: str, padding: str) -> int:
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), 9)  # the worker process dies: the master retries the task
    return len(padding)


def says_then_aborts() -> None:
    print("about to abort", file=sys.stderr)
    os.abort()


def test_a_task_that_aborts_is_failed_with_its_last_words(tmp_path: Path) -> None:
    # the bundle writes what the task says to its stderr as it says it: the slot's stderr.txt,
    # which a BOINC client reports, has it though the process died with it unsaid in memory
    bundle = entry_bundle(tmp_path / "b")
    with Master(interface=BundleInterface(bundle, num_workers=1), retries=0) as master:
        task = master.submit_task(says_then_aborts)
        with pytest.raises(WorkerLost) as lost:
            master.get_result(task, timeout=120)
    assert str(lost.value).endswith("the bundle was killed by signal 6: about to abort")
    assert "about to abort" in task.stderr


def test_a_retried_task_finds_its_task_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = entry_bundle(tmp_path / "b")
    cleanup = slot.cleanup

    def late_cleanup(base: Path, slot_dir: Path, task_id: str) -> None:
        # a big slot tree on a busy disk: were the failure reported first, the master's retry
        # would be set up in the other slot by now, and this would remove its task file
        other = base / "slots" / ("1" if slot_dir.name == "0" else "0")
        deadline = time.monotonic() + 1
        while not (other / "init_data.xml").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        cleanup(base, slot_dir, task_id)

    monkeypatch.setattr(slot, "cleanup", late_cleanup)
    marker = tmp_path / "died"
    with Master(interface=BundleInterface(bundle, num_workers=2), retries=1) as master:
        # 10 KB: a task file, not a command line
        task = master.submit_task(dies_once, input_data=(str(marker), "x" * 10_000))
        assert master.get_result(task)[1] == 10_000
    assert marker.exists()  # it did die once


def counts_with_checkpoints(n: int, first_run_step: float) -> dict[str, int]:
    """Counts to n, saving its count in its working directory when BOINC asks; resumes from it."""
    from pymw_admin.bundles import boinc

    saved = Path("count.txt")
    start = int(saved.read_text()) if saved.exists() else 0
    count = start
    while count < n:
        if start == 0:
            time.sleep(first_run_step)  # slow until restarted: the restart comes mid-count
        count += 1
        if boinc.time_to_checkpoint():
            # aside, then renamed: a kill mid-write must not leave half a checkpoint
            Path("count.tmp").write_text(str(count))
            os.replace("count.tmp", saved)
            boinc.checkpoint_completed()
    return {"count": count, "resumed_from": start, "steps_after_restart": count - start}


def test_restart_after_kills_the_task_once_and_it_resumes_from_its_checkpoint(
    tmp_path: Path
) -> None:
    bundle = entry_bundle(tmp_path / "b")
    interface = BundleInterface(bundle, num_workers=1, checkpoint_period=0, restart_after=2,
                                keep_slots=True)
    with Master(interface=interface) as master:
        task = master.submit_task(counts_with_checkpoints, input_data=(50, 0.2))
        got = master.get_result(task, timeout=120)[1]
        log = (interface.base / "slots" / "0" / "stderr.txt").read_text()
    assert got["count"] == 50
    assert 0 < got["resumed_from"] < 50
    assert got["steps_after_restart"] == 50 - got["resumed_from"]
    assert log.count("rehearsal: killed after 2 s and started again in its slot") == 1


def test_the_checkpoint_period_reaches_init_data(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    s = slot.prepare(tmp_path / "c", 0, bundle, "t", b"x", checkpoint_period=2.5)
    init = etree.parse(str(s / "init_data.xml")).getroot()
    assert init.findtext("checkpoint_period") == "2.5"


def test_restart_after_runs_the_program_again_in_the_same_slot(tmp_path: Path) -> None:
    # first start: leaves a file and hangs; second start: sees the file and finishes
    bundle = script_bundle(tmp_path / "b", "if [ -e left ]; then touch boinc_finish_called; "
                                           "exit 0; fi\ntouch left\nexec sleep 60\n")
    s = slot.prepare(tmp_path / "c", 0, bundle, "t", b"x")
    run = slot.run(tmp_path / "c", s, bundle, "t", restart_after=0.5, timeout=30)
    assert run.restarts == 1 and run.exit_code == 0 and run.finished


def test_restart_and_checkpoint_settings_are_checked(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    with pytest.raises(UsageError, match="checkpoint period"):
        BundleInterface(bundle, checkpoint_period=-1)
    with pytest.raises(UsageError, match="restart after"):
        BundleInterface(bundle, restart_after=0)
