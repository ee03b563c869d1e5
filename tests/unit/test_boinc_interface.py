"""The BOINC interface against a fake project directory: layout, bulk create_work, journal,
resume, collecting results and errors filed by the real assimilator script.

The fake ``bin/create_work`` records its command line and stdin and, like a quick volunteer, runs
each task with the worker entry point and hands the output to ``pymw_assimilator`` the way
script_assimilator does (from PROJECT/tmp_HOST, ``WU_ID FILE``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from pymw_admin.admin import boincxml
from pymw_admin.admin.project_scripts import ASSIMILATOR, script_source
from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces import boinc
from pymw_admin.runtime import Master
from pymw_admin.runtime.errors import TaskError, WorkerLost
from pymw_admin.wire import boinc_contract, signature
from pymw_admin.wire.encoding import ResultRecord, encode_result, encode_task, python_minor
from tests import fake_mysql
from tests.doubles import install_task_key

FAKE_CREATE_WORK = '''#!{python}
import hashlib, json, os, subprocess, sys
from pymw_admin.wire.signature import unpack_command_line
root = os.getcwd()
lines = sys.stdin.read().splitlines()
with open(os.path.join(root, "create_work.log"), "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "lines": lines}}) + "\\n")
if os.environ.get("FAKE_CREATE_WORK_FAIL"):
    print("can't create job: database is gone", file=sys.stderr)
    sys.exit(1)
if os.environ.get("FAKE_CREATE_WORK_QUEUE"):
    sys.exit(0)  # work units exist; nobody runs them yet
for n, line in enumerate(lines, 1):
    words = line.split()
    wu = words[1]
    if "--command_line" in words:  # the task in the command line, as the bundle reads it
        option = words[words.index("--command_line") + 1]
        assert option.startswith("--pymw-task="), line
        task = os.path.join(root, "tmp_vm", wu + ".inline")
        with open(task, "wb") as f:
            f.write(unpack_command_line(option.split("=", 1)[1]))
    else:
        # the task file by URL (BOINC's remote-file form), checked as the client checks it
        at = words.index("--remote_file")
        url, size, md5 = words[at + 1:at + 4]
        task = os.path.join(root, "download", url.split("/download/", 1)[1])
        data = open(task, "rb").read()
        assert (len(data), hashlib.md5(data).hexdigest()) == (int(size), md5), line
    out = os.path.join(root, "upload", wu + "_0_r12345_0")
    subprocess.run([{python!r}, "-m", "pymw_admin.worker.run", task, out], check=True)
    # as script_assimilator runs it: system() from PROJECT/tmp_HOST
    subprocess.run("../bin/pymw_assimilator %d %s" % (n, out), shell=True,
                   cwd=os.path.join(root, "tmp_vm"), check=True)
'''


def make_project(tmp_path: Path, *, templates: bool = True) -> Path:
    root = tmp_path / "proj"
    for d in ("bin", "templates", "download", "upload", "tmp_vm"):
        (root / d).mkdir(parents=True)
    (root / "config.xml").write_text(
        f"<boinc><config><download_dir>{root}/download</download_dir>"
        "<uldl_dir_fanout>1024</uldl_dir_fanout><host>vm</host>"
        "<master_url>http://example.org/p/</master_url></config></boinc>\n")
    create = root / "bin" / "create_work"
    create.write_text(FAKE_CREATE_WORK.format(python=sys.executable))
    create.chmod(0o755)
    script = root / "bin" / ASSIMILATOR
    script.write_text(script_source(ASSIMILATOR))
    script.chmod(0o755)
    # installed beside them, as deploy-app does
    shutil.copy(boinc_contract.__file__, root / "bin" / "pymw_boinc_contract.py")
    cancel = root / "bin" / "cancel_jobs"  # records the work units it was asked to cancel
    cancel.write_text('#!/bin/sh\necho "$2" >> "$(pwd)/cancelled.log"\n')
    cancel.chmod(0o755)
    install_task_key(root)
    if templates:
        (root / "templates" / "pymw_in").write_text("<input_template/>")
        (root / "templates" / "pymw_out").write_text("<output_template/>")
    return root


def square(x: int) -> int:
    return x * x


TASK = encode_task("t", square, (1,))


def fail(x: int) -> int:
    raise ValueError(f"bad {x}")


def calls(root: Path) -> list[dict[str, list[str]]]:
    log = root / "create_work.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_layout_follows_dir_hier_path(tmp_path: Path) -> None:
    layout = boinc.ProjectLayout.read(make_project(tmp_path))
    digest = hashlib.md5(b"pymw_x_1.task").hexdigest()
    assert layout.download_path("pymw_x_1.task") == (
        layout.download_dir / f"{int(digest[1:8], 16) % 1024:x}" / "pymw_x_1.task")
    assert layout.master_url == "http://example.org/p/"


def test_missing_project_or_app_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="not a BOINC project directory"):
        boinc.BoincInterface(tmp_path)
    root = make_project(tmp_path, templates=False)
    with pytest.raises(EngineUnavailable, match="deploy-app pymw"):
        boinc.BoincInterface(root)


def test_build_options() -> None:
    with pytest.raises(UsageError, match="-p PROJECT_HOME"):
        boinc.build()
    assert boinc._parse_app_args("min_quorum=2 target_nresults=3 tag=run1") == {
        "min_quorum": 2, "target_nresults": 3, "tag": "run1"}
    with pytest.raises(UsageError, match="bad -a setting"):
        boinc._parse_app_args("quorum=2")
    with pytest.raises(UsageError, match="bad value"):
        boinc._parse_app_args("min_quorum=two")


def test_one_create_work_for_a_batch_and_results_come_back(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    with Master(boinc.BoincInterface(root, tag="t1", poll_seconds=0.01)) as master:
        assert master.map(square, range(5)) == [0, 1, 4, 9, 16]
    [call] = calls(root)
    assert len(call["lines"]) == 5
    assert call["lines"][0].startswith("--wu_name pymw_t1_")
    argv = call["argv"]
    assert argv[argv.index("--min_quorum") + 1] == "1"
    # the app's template with the task file kept from the file deleter (the master deletes it)
    template = argv[argv.index("--wu_template") + 1]
    assert template == "pymw/templates/pymw_in_task"
    assert (root / template).exists()
    # each task file by URL, size and md5, in the tag's own directory; collected: deleted
    assert "--remote_file http://example.org/p/download/pymw_tasks/t1/pymw_t1_" \
        in call["lines"][0]
    assert not (root / "download" / "pymw_tasks" / "t1").exists()
    assert "--stdin" in argv
    # collected results are cleaned up; the journal remembers them
    assert list((root / "pymw" / "results").iterdir()) == []
    state = root / "pymw" / "masters" / "t1"
    assert len((state / "submitted.jsonl").read_text().splitlines()) == 5
    assert len((state / "collected.jsonl").read_text().splitlines()) == 5


def test_replication_settings_reach_create_work(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    iface = boinc.build(project_home=str(root),
                        app_args="min_quorum=2 target_nresults=3 tag=rep")
    iface.submit("a", encode_task("a", square, (1,)))
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"
    try:
        iface.flush()
    finally:
        del os.environ["FAKE_CREATE_WORK_QUEUE"]
    argv = calls(root)[0]["argv"]
    assert argv[argv.index("--min_quorum") + 1] == "2"
    assert argv[argv.index("--target_nresults") + 1] == "3"
    assert int(argv[argv.index("--max_success_results") + 1]) >= 3
    # a quorum of replicas from one volunteer would be no quorum: the project sends each
    # work unit's replicas to different users
    config = (root / "config.xml").read_text()
    assert "<one_result_per_user_per_wu>1</one_result_per_user_per_wu>" in config
    assert "<master_url>http://example.org/p/</master_url>" in config  # the rest kept


def test_one_result_per_user_is_left_alone_without_a_quorum(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    before = (root / "config.xml").read_text()
    boinc.build(project_home=str(root), app_args="tag=single").close()
    assert "<one_result_per_user" not in (root / "config.xml").read_text()
    # an admin's own "on" is kept as it is
    on = before.replace("</config>", "<one_result_per_user_per_wu>5"
                        "</one_result_per_user_per_wu></config>")
    (root / "config.xml").write_text(on)
    boinc.build(project_home=str(root), app_args="min_quorum=2 tag=q").close()
    after = (root / "config.xml").read_text()
    assert after.count("<one_result_per_user_per_wu>") == 1
    assert "<one_result_per_user_per_wu>5<" in after


def test_task_files_are_staged_signed_with_the_project_key(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    iface = boinc.build(project_home=str(root), app_args="tag=signed")
    plain = encode_task("t", square, (3,))
    iface.submit("t", plain)
    iface.flush()  # a batch is signed and staged as it goes to create_work
    task_file = Path(iface.layout.task_dir(iface.tag), iface.wu_name("t") + ".task")
    staged = task_file.read_bytes()
    key = signature.load_public_pem((root / "keys" / "pymw_task_public.pem").read_bytes())
    assert signature.open_task(staged, key) == plain
    assert oct(task_file.stat().st_mode)[-3:] == "644"
    iface.close()


def test_no_task_key_is_one_line_naming_deploy_app(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "keys" / "pymw_task_private.pem").unlink()
    with pytest.raises(EngineUnavailable, match=r"no task-signing key .*deploy-app"):
        boinc.build(project_home=str(root))
    install_task_key(root)
    (root / "keys" / "pymw_task_private.pem").chmod(0o640)  # readable by the group: refused
    with pytest.raises(EngineUnavailable, match="mode 0600"):
        boinc.build(project_home=str(root))


def test_a_task_that_raises_is_that_error(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    with Master(boinc.BoincInterface(root, tag="t2", poll_seconds=0.01)) as master:
        task = master.submit_task(fail, (7,))
        with pytest.raises(TaskError) as info:
            master.get_result(task)
    assert info.value.remote_type == "ValueError"
    assert info.value.remote_message == "bad 7"
    assert info.value.exception is None  # untrusted: never rebuilt from the volunteer's pickle


def test_errored_work_unit_carries_boinc_error_and_stderr(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    iface = boinc.BoincInterface(root, tag="t3", poll_seconds=0.01)
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"
    try:
        iface.submit("a", encode_task("a", square, (1,)))
        iface.flush()
    finally:
        del os.environ["FAKE_CREATE_WORK_QUEUE"]
    record = {"wu_name": iface.wu_name("a"), "wu_id": 1, "error_mask": 2,
              "error": "too many error results",
              "stderr": "[replica outcome 3, exit status 1]\nTraceback...\nMemoryError"}
    (root / "pymw" / "results" / f"{iface.wu_name('a')}.error").write_text(json.dumps(record))
    [done] = iface.wait(1)
    assert done.record is None and not done.retryable
    assert "too many error results" in done.failure
    assert done.failure.endswith("stderr: MemoryError")
    assert "Traceback" in done.stderr


@pytest.mark.parametrize(("retries", "max_errors"), [(None, 1), (0, 1), (1, 1), (3, 3)])
def test_the_masters_retries_bound_a_work_units_failed_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retries: int | None, max_errors: int
) -> None:
    # BOINC gives a work unit up at more failed replicas than max_error_results (and create_work
    # refuses 0): retries=N means N + 1 hosts at most for a task that crashes on each
    root = make_project(tmp_path)
    monkeypatch.setenv("FAKE_CREATE_WORK_QUEUE", "1")
    iface = boinc.BoincInterface(root, tag="budget", poll_seconds=0.01)
    master = Master(iface) if retries is None else Master(iface, retries=retries)
    with master:
        master.submit_task(square, (1,))
        iface.flush()
        argv = calls(root)[0]["argv"]
    assert argv[argv.index("--max_error_results") + 1] == str(max_errors)
    # as many successes as before, and room for the failures besides
    assert argv[argv.index("--max_success_results") + 1] == "3"
    assert argv[argv.index("--max_total_results") + 1] == str(2 + max_errors)


# what a client reports for a replica that printed a line and aborted (mysql -B escapes its
# newlines): BOINC's message, and the slot's stderr.txt the bundle wrote the line to
ABORTED_REPLICA = (b"<core_client_version>8.0.2</core_client_version>\\n<![CDATA[\\n"
                   b"<message>\\nprocess got signal 6</message>\\n<stderr_txt>\\n"
                   b"about to abort\\n</stderr_txt>\\n]]>\\n")


def test_a_crashed_tasks_last_words_and_replicas_reach_the_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path)
    monkeypatch.setenv("FAKE_CREATE_WORK_QUEUE", "1")
    iface = boinc.BoincInterface(root, tag="crash", poll_seconds=0.01)
    with Master(iface) as master:
        task = master.submit_task(square, (1,))
        iface.flush()
        wu = iface.wu_name(task.task_id)
        # the work unit as BOINC gives it up: two replicas aborted, a third never ran
        fake = fake_mysql.install(tmp_path / "fake", [
            ("from app", b"7\n"),
            ("from workunit", f"1\t{wu}\t0\t2\n".encode()),
            ("select workunitid", b"1\t3\t193\t" + ABORTED_REPLICA + b"\n1\t3\t193\t"
             + ABORTED_REPLICA + b"\n1\t5\t0\t\n"),
        ])
        assimilated = subprocess.run(
            [sys.executable, "-I", str(root / "bin" / ASSIMILATOR), "--app", "pymw",
             "--one_pass"], cwd=root / "tmp_vm", env=fake_mysql.path_with(fake),
            capture_output=True, text=True, timeout=60, check=False)
        assert assimilated.returncode == 0, assimilated.stdout + assimilated.stderr
        filed = json.loads((root / "pymw" / "results" / f"{wu}.error").read_text())
        assert filed["failed_results"] == 2  # the one that never ran is no attempt
        with pytest.raises(WorkerLost) as lost:
            master.get_result(task, timeout=30)
    assert str(lost.value).endswith(
        "too many error results (2 failed replicas); stderr: about to abort")
    assert lost.value.remote_type == "BoincWorkunitError"
    assert task.attempts == 2
    assert task.stderr.count("  about to abort") == 2
    assert "process got signal 6" in task.stderr


def test_a_failed_create_work_fails_its_tasks_and_is_not_resumed(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    os.environ["FAKE_CREATE_WORK_FAIL"] = "1"
    try:
        with Master(boinc.BoincInterface(root, tag="t4", poll_seconds=0.01)) as master:
            task = master.submit_task(square, (3,))
            with pytest.raises(WorkerLost, match="create_work failed: can't create job"):
                master.get_result(task, timeout=10)  # retried once, then reported; no hang
            assert task.attempts == 2
    finally:
        del os.environ["FAKE_CREATE_WORK_FAIL"]
    again = boinc.BoincInterface(root, tag="t4")
    assert again.resumed_tasks() == []
    again.close()


def test_a_failed_create_work_leaves_no_task_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # before the master hands the failure back (it may never: a map that raised first)
    root = make_project(tmp_path)
    iface = boinc.BoincInterface(root, tag="t7", poll_seconds=0.01)
    monkeypatch.setenv("FAKE_CREATE_WORK_FAIL", "1")
    iface.submit("a", encode_task("a", square, (1,)))
    iface.flush()
    [failed] = iface.wait(1)
    assert failed.failure.startswith("create_work failed")
    assert list(Path(iface.layout.task_dir("t7")).iterdir()) == []
    iface.close()


def test_one_live_master_per_tag(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    first = boinc.BoincInterface(root, tag="t6")
    in_use = f"tag 't6' is in use by a running master .pid {os.getpid()}"
    with pytest.raises(UsageError, match=in_use):
        boinc.BoincInterface(root, tag="t6")
    first.close()
    boinc.BoincInterface(root, tag="t6").close()  # free again once the first one ended


def test_resume_collects_each_result_once(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"
    try:
        first = Master(boinc.BoincInterface(root, tag="t5", poll_seconds=0.01))
        tasks = [first.submit_task(square, (i,)) for i in range(3)]
        first.interface.flush()  # type: ignore[attr-defined]
        first.interface.detach()  # type: ignore[attr-defined]  # the master dies: tag free
    finally:
        del os.environ["FAKE_CREATE_WORK_QUEUE"]
    # the master dies; its work units run and are assimilated meanwhile
    for n, task in enumerate(tasks, 1):
        name = f"pymw_t5_{task.task_id.replace('-', '_')}"
        layout = boinc.ProjectLayout.read(root)
        out = root / "upload" / f"{name}_0_r1_0"
        subprocess.run([sys.executable, "-m", "pymw_admin.worker.run",
                        str(Path(layout.task_dir("t5"), f"{name}.task")), str(out)], check=True)
        subprocess.run(f"../bin/pymw_assimilator {n} {out}", shell=True, cwd=root / "tmp_vm",
                       check=True)
    with pytest.raises(UsageError, match=r"tag t5 holds 3 uncollected task.s. of an earlier"):
        Master(boinc.BoincInterface(root, tag="t5", poll_seconds=0.01))  # not asked to resume
    second = Master(boinc.BoincInterface(root, tag="t5", poll_seconds=0.01), resume=True)
    assert len(second.resumed) == 3
    values = sorted(second.get_result()[1] for _ in range(3))
    assert values == [0, 1, 4]
    second.cleanup()
    third = Master(boinc.BoincInterface(root, tag="t5", poll_seconds=0.01, resume=True))
    assert third.resumed == []
    third.cleanup()
    assert not (root / "cancelled.log").exists()  # everything was collected: nothing cancelled


def test_task_files_an_earlier_version_staged_in_the_fan_out_are_deleted(tmp_path: Path) -> None:
    """Work units journalled before task files had their tag's directory: their files are where
    BOINC's dir_hier_path puts them, and go from there when collected or dropped."""
    root = make_project(tmp_path)
    layout = boinc.ProjectLayout.read(root)
    first = boinc.BoincInterface(root, tag="old")
    names = {task_id: first.wu_name(task_id) for task_id in ("a", "b")}
    for name in names.values():
        layout.stage(f"{name}.task", TASK)
    first._append_log(first._submitted_log, [{"task_id": t, "wu": n} for t, n in names.items()])
    first.detach()
    second = boinc.BoincInterface(root, tag="old")
    assert sorted(second.resumed_tasks()) == sorted(names.items())
    second.acknowledge("a")
    assert not layout.download_path(f"{names['a']}.task").exists()
    assert layout.download_path(f"{names['b']}.task").exists()
    second.detach()
    assert boinc.drop_tag(root, "old").cancelled == [names["b"]]
    assert not layout.download_path(f"{names['b']}.task").exists()


def test_a_clean_end_cancels_open_work_units_unless_kept(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path)
    tasks = root / "download" / "pymw_tasks"
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"
    try:
        with Master(boinc.BoincInterface(root, tag="c1", poll_seconds=0.01)) as master:
            task = master.submit_task(square, (2,))
        cancelled = (root / "cancelled.log").read_text().split()
        assert cancelled == [f"pymw_c1_{task.task_id.replace('-', '_')}"]
        # the project's config.xml names no database: cancel_jobs, and the log says why
        err = capfd.readouterr().err
        assert "cancel_jobs, one at a time: the database refused them in bulk (config.xml " \
            "names no database)" in err
        assert "pymw: cancelled 1 work unit(s)\n" in err  # what a stopped run's log ends with
        assert not (tasks / "c1").exists()  # its task file, then its directory, deleted
        assert Master(boinc.BoincInterface(root, tag="c1")).resumed == []  # nothing left over
        with Master(boinc.BoincInterface(root, tag="c2", keep=True)) as master:
            master.submit_task(square, (2,))
        assert len(list((tasks / "c2").iterdir())) == 1  # kept: a client may still fetch it
        again = Master(boinc.BoincInterface(root, tag="c2"), resume=True)
        assert len(again.resumed) == 1
        again.interface.detach()  # type: ignore[attr-defined]
        assert len(boinc.drop_tag(root, "c2").cancelled) == 1
        assert not (tasks / "c2").exists()
        assert Master(boinc.BoincInterface(root, tag="c2")).resumed == []
    finally:
        del os.environ["FAKE_CREATE_WORK_QUEUE"]


def _left_behind(root: Path, tag: str, task_ids: list[str]) -> dict[str, str]:
    """Work units an earlier master of ``tag`` submitted and never collected."""
    first = boinc.BoincInterface(root, tag=tag)
    names = {task_id: first.wu_name(task_id) for task_id in task_ids}
    first._append_log(first._submitted_log, [{"task_id": t, "wu": n} for t, n in names.items()])
    first.detach()
    return names


def test_dropping_leaves_what_boinc_finished_without_the_database(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Without the database, a result the assimilator filed says the work unit is done:
    cancel_jobs would mark it errored after the fact."""
    root = make_project(tmp_path)
    names = _left_behind(root, "fb", ["a", "b"])
    results = root.joinpath(*boinc.RESULTS_DIR)
    (results / f"{names['a']}.result").write_bytes(b"filed")
    outcome = boinc.drop_tag(root, "fb")
    assert outcome == boinc.Cancelled(cancelled=[names["b"]], finished=[names["a"]])
    assert (root / "cancelled.log").read_text().split() == [names["b"]]
    err = capfd.readouterr().err
    assert "cancelling 1 work unit(s) with bin/cancel_jobs" in err
    assert "cancelled 1 work unit(s), kept 1 BOINC had finished" in err
    assert not (results / f"{names['a']}.result").exists()  # dropped: nobody collects it
    assert boinc.drop_tag(root, "fb") == boinc.Cancelled([], [])  # journalled as collected


def test_dropping_in_bulk_says_what_it_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path)
    names = _left_behind(root, "bulk", ["a", "b", "c"])
    asked: list[list[str]] = []

    def cancel(_root: Path, given: list[str]) -> boinc.Cancelled:
        asked.append(list(given))
        return boinc.Cancelled([n for n in given if n != names["c"]], [names["c"]])

    monkeypatch.setattr(boinc, "cancel_work_units", cancel)
    assert boinc.main(["drop", str(root), "bulk"]) == 0
    out, err = capfd.readouterr()
    assert out == "@dropped 2 1\n"
    assert "kept 1 BOINC had finished" in err
    assert sorted(asked[0]) == sorted(names.values())
    assert not (root / "cancelled.log").exists()  # no cancel_jobs: the database answered


def test_other_tags_are_not_adopted(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"
    try:
        iface = boinc.BoincInterface(root, tag="mine")
        iface.submit("a", encode_task("x", square, (1,)))
        iface.detach()
    finally:
        del os.environ["FAKE_CREATE_WORK_QUEUE"]
    theirs = boinc.BoincInterface(root, tag="theirs")
    assert theirs.resumed_tasks() == []
    mine = boinc.BoincInterface(root, tag="mine")
    assert [t for t, _ in mine.resumed_tasks()] == ["a"]
    theirs.close()
    mine.close()


@pytest.fixture
def no_runs() -> object:
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"  # work units exist; nobody runs them
    yield None
    del os.environ["FAKE_CREATE_WORK_QUEUE"]


def test_full_batches_are_created_while_later_tasks_are_staged(
        tmp_path: Path, no_runs: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boinc, "BATCH_SIZE", 10)
    root = make_project(tmp_path)
    iface = boinc.BoincInterface(root, tag="stream")
    iface.submit_many((f"t{i}", TASK) for i in range(25))
    # two full batches went to create_work before submit_many returned; the rest waits
    assert iface._creating
    iface.flush()
    # two create_work run at once, so the fake records them in the order they end
    sizes = sorted(len(call["lines"]) for call in calls(root))
    assert sizes == [5, 10, 10]
    assert len(iface._open) == 25
    iface.close()


def test_master_streams_chunks_to_the_interface(
        tmp_path: Path, no_runs: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pymw_admin.runtime import master as master_module

    monkeypatch.setattr(master_module, "SUBMIT_CHUNK", 4)
    root = make_project(tmp_path)
    iface = boinc.BoincInterface(root, tag="chunks")
    seen: list[int] = []
    submit_many = iface.submit_many
    monkeypatch.setattr(iface, "submit_many",
                        lambda batch: (seen.append(len(batch)), submit_many(batch)))
    master = Master(iface)
    master.submit_many(square, range(10))
    assert seen == [4, 4, 2]
    master.interface.flush()
    iface.close()


def test_shared_blob_is_staged_once_and_named_by_every_work_unit(
        tmp_path: Path, no_runs: object) -> None:
    root = make_project(tmp_path)
    (root / "templates" / "pymw_in").write_text(
        "<input_template><file_info><number>0</number></file_info><workunit><file_ref>"
        "<file_number>0</file_number><open_name>pymw_task</open_name><copy_file/></file_ref>"
        "</workunit></input_template>")
    iface = boinc.BoincInterface(root, tag="blob")
    blob = b"a large argument" * 1000
    digest = hashlib.sha256(blob).hexdigest()
    iface.put_shared(digest, blob)
    iface.put_shared(digest, blob)  # again: nothing new
    task = (b"PYMW-TASK 1\n" + json.dumps({"task_id": "a", "python": "3.11", "kind": "function",
                                                   "shared": [digest]}).encode()
            + b"\npayload")
    iface.submit_many([("a", task), ("b", task), ("c", b"PYMW-TASK 1\n{}\nplain")])
    iface.flush()
    layout = iface.layout
    staged = layout.download_path(f"pymw_shared_{digest}")
    assert staged.read_bytes() == blob
    md5, size = staged.with_name(staged.name + ".md5").read_text().split()
    assert md5 == hashlib.md5(blob).hexdigest() and float(size) == len(blob)
    assert len(list(layout.download_dir.rglob("pymw_shared_*"))) == 2  # the blob and its .md5
    lines = calls(root)[0]["lines"]
    template = lines[0].split()[3]
    assert lines[1].split()[3] == template and "--wu_template" not in lines[2]
    text = (root / template).read_text()
    assert f"<physical_name>pymw_shared_{digest}</physical_name>" in text
    assert "<no_delete/>" in text and f"<open_name>pymw_shared_{digest}</open_name>" in text
    # kept by the client between work units, for a day after the last one naming it
    assert "<sticky/>" in text and "<sticky_lifetime>86400</sticky_lifetime>" in text
    assert "<open_name>pymw_task</open_name>" in text
    with pytest.raises(UsageError, match="sha256 digest"):
        iface.put_shared("../../etc/passwd", b"x")
    iface.close()


def test_a_poll_looks_up_results_by_name_and_ignores_others(
        tmp_path: Path, no_runs: object) -> None:
    root = make_project(tmp_path)
    iface = boinc.BoincInterface(root, tag="poll", poll_seconds=0.01)
    iface.submit_many((f"t{i}", TASK) for i in range(3))
    iface.flush()
    results = root / "pymw" / "results"
    (results / "pymw_other_t1.result").write_bytes(b"not ours")
    (results / f"{iface.wu_name('t1')}.part-x").write_bytes(b"half")
    assert iface.wait(0) == []
    (results / f"{iface.wu_name('t1')}.result").write_bytes(b"record")
    [done] = iface.wait(1)
    assert (done.task_id, done.record) == ("t1", b"record")
    assert sorted(iface._open) == ["t0", "t2"]
    iface.close()
def _record(task_id: str, ok: bool = True) -> bytes:
    return encode_result(ResultRecord(task_id=task_id, ok=ok, python=python_minor(),
                                      payload=pickle.dumps(1)))


def test_a_result_must_name_its_work_units_task(tmp_path: Path, no_runs: object,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CREATE_WORK_QUEUE", "1")
    root = make_project(tmp_path)
    iface = boinc.BoincInterface(root, tag="own", poll_seconds=0.01)
    iface.submit_many((t, encode_task(t, square, (1,))) for t in ("a", "b", "c", "d", "e"))
    iface.flush()
    results = root / "pymw" / "results"
    for wu_task, record in (("a", _record("b")), ("b", _record("b")),
                            ("c", _record("?", ok=False)), ("d", _record("?")),
                            ("e", b"not a record")):
        (results / f"{iface.wu_name(wu_task)}.result").write_bytes(record)
    done = {c.task_id: c for c in iface.wait(1)}
    assert sorted(done) == ["a", "b", "c", "d", "e"]
    assert done["a"].record is None and not done["a"].retryable
    assert done["a"].failure == ("the result names task 'b', not this work unit's task 'a': "
                                 "refused")
    assert done["d"].record is None and "names task '?'" in done["d"].failure
    # its own task's result; a worker's refusal that believed no task id; one the master reports
    assert [done[t].record for t in "bce"] == [_record("b"), _record("?", ok=False),
                                               b"not a record"]
    iface.close()


def test_a_signed_task_file_moved_to_another_work_unit_is_not_its_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both task files are the project's, signed: swapped in the download tree, each runs,
    and each result names the other task, so neither is taken as its work unit's."""
    root = make_project(tmp_path)
    monkeypatch.setenv("FAKE_CREATE_WORK_QUEUE", "1")
    master = Master(boinc.BoincInterface(root, tag="swap", poll_seconds=0.01))
    two, three = master.submit_task(square, (2,)), master.submit_task(square, (3,))
    master.interface.flush()  # type: ignore[attr-defined]
    iface = master.interface
    assert isinstance(iface, boinc.BoincInterface)
    files = [Path(iface.layout.task_dir("swap"), iface.wu_name(t.task_id) + ".task")
             for t in (two, three)]
    blobs = [f.read_bytes() for f in files]
    files[0].write_bytes(blobs[1])
    files[1].write_bytes(blobs[0])
    for n, (task, task_file) in enumerate(zip((two, three), files, strict=True), 1):
        out = root / "upload" / f"{iface.wu_name(task.task_id)}_0_r1_0"
        subprocess.run([sys.executable, "-m", "pymw_admin.worker.run", str(task_file),
                        str(out)], check=True)
        subprocess.run(f"../bin/pymw_assimilator {n} {out}", shell=True, cwd=root / "tmp_vm",
                       check=True)
    for task, other in ((two, three), (three, two)):
        with pytest.raises(WorkerLost, match=f"the result names task '{other.task_id}', not "
                                             f"this work unit's task '{task.task_id}'"):
            master.get_result(task, timeout=10)
    master.cleanup()


def test_clients_are_asked_back_soon_while_work_is_out(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"
    try:
        first = boinc.BoincInterface(root, tag="r1", keep=True)
        second = boinc.BoincInterface(root, tag="r2", keep=True)
        first.submit("a", encode_task("x", square, (1,)))
        first.flush()
        assert "<next_rpc_delay>10</next_rpc_delay>" in (root / "config.xml").read_text()
        second.submit("b", encode_task("x", square, (1,)))
        second.flush()
        second.close()  # the first master still has work out
        assert "<next_rpc_delay>10</next_rpc_delay>" in (root / "config.xml").read_text()
        first.close()
        assert "<next_rpc_delay>60</next_rpc_delay>" in (root / "config.xml").read_text()
        argv = calls(root)[0]["argv"]
        assert argv[argv.index("--rsc_fpops_est") + 1] == f"{boinc.DEFAULT_FPOPS:.0f}"
    finally:
        del os.environ["FAKE_CREATE_WORK_QUEUE"]


def test_fpops_estimate_follows_measured_task_times(tmp_path: Path) -> None:
    iface = boinc.BoincInterface(make_project(tmp_path), tag="f1")
    assert iface.estimated_fpops() == boinc.DEFAULT_FPOPS
    iface._task_seconds += [3.0, 4.0, 100.0]
    assert iface.estimated_fpops() == 2 * 4.0 * boinc.FLOPS_GUESS
    iface.close()
    assert boinc.BoincInterface(make_project(tmp_path / "o"), tag="f2",
                                fpops_est=5e12).estimated_fpops() == 5e12


# --- small tasks in the command line -------------------------------------------------------------

def deploy_versions(root: Path, versions: dict[tuple[int, str], str | None]) -> None:
    """App version directories as deploy-app leaves them: (N, platform) -> features (None: no
    features file, as deployed before it existed)."""
    (root / "templates" / "pymw_in").write_text(boincxml.input_template())
    for (number, platform), features in versions.items():
        where = root / "apps" / "pymw" / str(number) / platform
        where.mkdir(parents=True)
        if features is not None:
            (where / boinc_contract.FEATURES_FILE).write_text(features)


LINUX, WINDOWS = "x86_64-pc-linux-gnu", "windows_x86_64"


@pytest.mark.parametrize(("versions", "inline"), [
    ({(1, LINUX): "inline-task\n", (2, WINDOWS): "inline-task\n"}, True),
    ({(1, LINUX): "inline-task\n", (2, WINDOWS): None}, False),  # one platform's is older
    ({(1, LINUX): None, (2, LINUX): "inline-task\n"}, True),  # only the newest counts
    ({(1, LINUX): "inline-task\n", (2, LINUX): ""}, False),
    ({}, False),  # no version at all: nothing known
])
def test_tasks_go_inline_only_when_every_newest_version_understands(
        tmp_path: Path, versions: dict[tuple[int, str], str | None], inline: bool) -> None:
    root = make_project(tmp_path)
    deploy_versions(root, versions)
    iface = boinc.BoincInterface(root, tag="gate")
    assert iface.inline_tasks is inline
    iface.close()


@pytest.mark.parametrize("features", ["inline-task shared-data-files\n", "inline-task\n"])
def test_a_data_file_is_staged_once_only_where_every_newest_version_reads_it_so(
        tmp_path: Path, no_runs: object, features: str) -> None:
    root = make_project(tmp_path)
    deploy_versions(root, {(1, LINUX): features, (2, WINDOWS): features})
    table = tmp_path / "table.bin"
    table.write_bytes(bytes(range(256)) * 2048)  # 512 KiB
    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    iface = boinc.BoincInterface(root, tag="files")
    shares = "shared-data-files" in features
    assert iface.shared_data_files is shares
    Master(iface).submit_many(square, range(20), data_files=(table,))
    iface.flush()
    lines = calls(root)[0]["lines"]
    staged = sorted(p.name for p in iface.layout.download_dir.rglob("pymw_shared_*"))
    if shares:
        # one staged file (and BOINC's .md5 beside it) that every work unit names; each task
        # is small enough for its command line
        assert staged == [f"pymw_shared_{digest}", f"pymw_shared_{digest}.md5"]
        templates = {line.split()[3] for line in lines}
        assert len(templates) == 1
        assert f"<physical_name>pymw_shared_{digest}</physical_name>" in (
            root / templates.pop()).read_text()
        assert all("--command_line --pymw-task=" in line for line in lines)
    else:  # the old form: the file inside every task file
        assert staged == []
        task_files = list(Path(iface.layout.task_dir("files")).iterdir())
        assert len(task_files) == 20 and all(
            f.stat().st_size > table.stat().st_size for f in task_files)
    iface.close()


def test_small_tasks_travel_in_the_command_line_and_large_ones_as_files(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    deploy_versions(root, {(1, LINUX): "inline-task\n"})
    big = "x" * 4000  # signed, over INLINE_TASK_MAX: a task file
    with Master(boinc.BoincInterface(root, tag="w", poll_seconds=0.01)) as master:
        assert master.map(len, ["abc", big]) == [3, 4000]
        task_dir = Path(master.interface.layout.task_dir("w"))  # type: ignore[attr-defined]
    [call] = calls(root)
    small_line, big_line = call["lines"]
    assert "--remote_file" not in small_line and "--command_line --pymw-task=" in small_line
    assert "--command_line" not in big_line and "--remote_file" in big_line
    assert len(small_line) < 4095  # what create_work reads of a stdin line
    template = small_line.split()[3]
    assert template == "pymw/templates/pymw_in_task-inline"
    text = (root / template).read_text()
    assert "<file_info>" not in text and "<file_ref>" not in text  # no input file at all
    assert not task_dir.exists()  # collected: the big one's file is gone, and its directory


def test_the_inline_template_keeps_shared_blobs_renumbered(tmp_path: Path, no_runs: object
                                                          ) -> None:
    root = make_project(tmp_path)
    deploy_versions(root, {(1, LINUX): "inline-task\n"})
    iface = boinc.BoincInterface(root, tag="sh")
    blob = b"a large argument" * 1000
    digest = hashlib.sha256(blob).hexdigest()
    iface.put_shared(digest, blob)
    task = (b"PYMW-TASK 1\n" + json.dumps({"task_id": "a", "python": "3.11", "kind": "function",
                                           "shared": [digest]}).encode() + b"\npayload")
    iface.submit_many([("a", task)])
    iface.flush()
    line = calls(root)[0]["lines"][0]
    template = etree.parse(str(root / line.split()[3])).getroot()
    [info] = template.findall("file_info")
    assert info.findtext("number") == "0"
    assert info.findtext("physical_name") == f"pymw_shared_{digest}"
    [ref] = template.findall("workunit/file_ref")
    assert (ref.findtext("file_number"), ref.findtext("open_name")) == (
        "0", f"pymw_shared_{digest}")
    iface.close()


def test_an_admins_template_with_other_inputs_keeps_task_files(tmp_path: Path, no_runs: object
                                                              ) -> None:
    root = make_project(tmp_path)
    deploy_versions(root, {(1, LINUX): "inline-task\n"})
    (root / "templates" / "pymw_in").write_text(
        "<input_template><file_info><number>0</number></file_info><file_info><number>1</number>"
        "</file_info><workunit><file_ref><file_number>0</file_number><open_name>pymw_task"
        "</open_name></file_ref><file_ref><file_number>1</file_number><open_name>extra"
        "</open_name></file_ref></workunit></input_template>")
    iface = boinc.BoincInterface(root, tag="adm")
    iface.submit_many([("a", TASK)])
    iface.flush()
    assert "--remote_file" in calls(root)[0]["lines"][0]
    iface.close()
