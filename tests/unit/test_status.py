"""Status: BOINC's numeric states mapped to ours, the SQL output parsed, failure reasons, cancelled
work apart, and what the tasks did per app and run tag (the database's counts and the
assimilator's tallies together)."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3

import pytest

from pymw_admin.admin import status as ps
from pymw_admin.wire import boinc_contract as contract


@pytest.mark.parametrize(
    ("server_state", "outcome", "state"),
    [(1, 0, "unsent"), (2, 0, "unsent"), (4, 0, "in_progress"), (5, 1, "done"),
     (5, 2, "errored"), (5, 3, "errored"), (5, 4, "errored"), (5, 5, "not_needed"),
     (5, 6, "errored"), (5, 7, "errored")],
)
def test_result_states(server_state: int, outcome: int, state: str) -> None:
    assert ps.result_state(server_state, outcome) == state


@pytest.mark.parametrize(
    ("mask", "canonical", "sent", "state"),
    [(0, False, False, "unsent"), (0, False, True, "in_progress"), (0, True, True, "done"),
     (2, False, True, "errored"), (16, True, True, "cancelled"), (2 | 16, False, True, "cancelled"),
     (32, False, True, "errored")],
)
def test_wu_states(mask: int, canonical: bool, sent: bool, state: str) -> None:
    assert ps.wu_state(mask, canonical, sent) == state


def test_wu_error_text() -> None:
    assert ps.wu_error_text(2 | 16) == "too many error results, cancelled"
    assert ps.wu_error_text(64) == "error mask 64"


STDERR = """<core_client_version>7.20.5</core_client_version>
<![CDATA[
<message>
process exited with code 1 (0x1, -255)</message>
<stderr_txt>
12:00:01 (4242): called boinc_init
Traceback (most recent call last):
  File "task.py", line 3, in f
ValueError: bad input &lt;x&gt;
</stderr_txt>
]]>
"""


def test_stderr_reason() -> None:
    assert ps.stderr_reason(STDERR) == (
        "process exited with code 1 (0x1, -255); ValueError: bad input <x>")
    assert ps.stderr_reason("") == ""
    assert ps.stderr_reason("2024-05-01 12:00:01 (42): called boinc_finish(0)\n") == ""


def _hex(text: str) -> str:
    return text.encode().hex().upper()


def test_parse_counts() -> None:
    rows = [
        "@apps", "pymw", "idle",
        "@results",
        "pymw\t2\t0\t3", "pymw\t4\t0\t2", "pymw\t5\t1\t5", "other\t1\t0\t1",
        "@result_outcomes",  # app, tag, outcome, client state, exit status, wu cancelled, ...
        "pymw\tmc\t3\t3\t1\t0\t1\t1700000010", "pymw\tmc\t5\t0\t0\t0\t1\t1700000011",
        "pymw\tmc\t5\t0\t0\t1\t2\t1700000012", "pymw\tmc\t3\t6\t202\t0\t1\t1700000013",
        "@workunits",  # app, tag, mask, canonical, sent, count, newest
        "pymw\tmc\t0\t0\t0\t3\t1", "pymw\tmc\t0\t0\t1\t2\t1", "pymw\tmc\t0\t1\t1\t4\t1",
        "pymw\t\t2\t0\t1\t1\t1", "pymw\tmc\t16\t0\t1\t2\t1",
        "pymw\tmc\tnot a number\t0\t1\t1",  # not a row of the query: passed over
        "@failed_results",
        f"r_1\twu_1\tpymw\t3\t3\t1\t1700000010\t{_hex(STDERR)}",
        "r_2\twu_2\tpymw\t4\t0\t0\t1700000005\t",
        "@failed_workunits",
        "wu_1\tpymw\t2\t1700000020",
    ]
    apps, failures = ps.parse_counts("\n".join(rows) + "\n")
    by_name = {a.name: a for a in apps}
    assert sorted(by_name) == ["idle", "other", "pymw"]
    assert by_name["pymw"].results == {"unsent": 3, "in_progress": 2, "done": 5, "errored": 1,
                                       "not_needed": 1, "cancelled": 3}
    assert by_name["pymw"].workunits == {"unsent": 3, "in_progress": 2, "done": 4, "errored": 1,
                                         "cancelled": 2}
    assert by_name["idle"].results["unsent"] == 0
    assert by_name["other"].results["unsent"] == 1
    assert [f.name for f in failures] == ["wu_1", "r_1", "r_2"]
    assert failures[0].reason == "too many error results"
    assert failures[1].reason.startswith("client error (compute error, exit status 1): process "
                                         "exited with code 1")
    assert failures[1].reason.endswith("ValueError: bad input <x>")
    assert failures[2].reason == "no reply"
    _, limited = ps.parse_counts("\n".join(rows) + "\n", limit=1)
    assert len(limited) == 1


def test_status_dict_totals_and_daemons() -> None:
    apps, failures = ps.parse_counts("@results\na\t2\t0\t2\nb\t2\t0\t3\n")
    status = ps.Status("p", "h", 1.0, {"feeder": True, "transitioner": False}, False, apps,
                       failures, [])
    data = status.as_dict()
    assert data["totals"]["results"]["unsent"] == 5  # type: ignore[index]
    assert data["daemons"]["up"] is False  # type: ignore[index]
    assert data["database_error"] is None


def test_sql_never_names_a_password() -> None:
    from pymw_admin.admin.target import HostSpec, ProjectTarget

    target = ProjectTarget(name="proj", owner="o", project_dir="/p", host=HostSpec("h"))
    command = ps.mysql_command(target)
    assert command == "mysql --defaults-extra-file=/etc/pymw-admin/proj/client.cnf -N -B proj"
    assert "-p" not in command.split()


# -- cancelled work is not a failure --------------------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "client_state", "exit_status", "wu_cancelled", "state"),
    [(5, 0, 0, True, "cancelled"),  # not sent: the work unit was cancelled
     (4, 0, 0, True, "cancelled"),  # never heard of again, and no longer wanted
     (3, 6, 0, True, "cancelled"),  # aborted on its host because the work unit was cancelled
     (3, 6, 202, False, "cancelled"),  # the project told its host to abort it
     (3, 6, 203, False, "errored"),  # the volunteer aborted it
     (3, 3, 1, True, "errored"),  # it really failed, before the cancel
     (6, 0, 0, True, "errored"), (5, 0, 0, False, "not_needed"), (4, 0, 0, False, "errored"),
     (1, 5, 0, True, "done")],
)
def test_finished_results(outcome: int, client_state: int, exit_status: int, wu_cancelled: bool,
                          state: str) -> None:
    assert ps.result_state(5, outcome, client_state, exit_status, wu_cancelled) == state


def _sqlite() -> sqlite3.Connection:
    """MySQL's functions status uses, in sqlite (the same meaning for the values used here)."""
    db = sqlite3.connect(":memory:")
    db.create_function("IF", 3, lambda c, a, b: a if c else b)
    db.create_function("REGEXP", 2, lambda pattern, value: re.search(pattern, value) is not None)
    db.create_function("CHAR_LENGTH", 1, len)
    db.create_function("SUBSTRING_INDEX", 3, lambda text, sep, n: sep.join(text.split(sep)[n:])
                       if n < 0 else sep.join(text.split(sep)[:n]))
    return db


def test_the_sql_and_python_agree_on_cancelled_results() -> None:
    db = _sqlite()
    db.execute("CREATE TABLE w (error_mask INT)")
    db.execute("CREATE TABLE r (outcome INT, client_state INT, exit_status INT)")
    for mask, outcome, client_state, exit_status in itertools.product(
            (0, 2, 16, 18), range(8), range(8), (0, 1, 193, 202, 203, -187)):
        db.execute("DELETE FROM w")
        db.execute("DELETE FROM r")
        db.execute("INSERT INTO w VALUES (?)", (mask,))
        db.execute("INSERT INTO r VALUES (?, ?, ?)", (outcome, client_state, exit_status))
        (sql_says,) = db.execute(f"SELECT {ps.CANCELLED_RESULT_SQL} FROM w, r").fetchone()
        python_says = ps.result_state(5, outcome, client_state, exit_status, bool(mask & 16))
        assert bool(sql_says) == (python_says == "cancelled"), (mask, outcome, client_state,
                                                               exit_status)


@pytest.mark.parametrize("name", ["pymw_monte_pi_deadbeef_12", "pymw_m_0123abcd_0",
                                  "pymw_a_b_c_deadbeef_3_deadbeef_4", "pymw_t_ok", "other_wu_1",
                                  "pymw__deadbeef_1", ""])
def test_the_sql_finds_the_run_tag_as_the_contract_does(name: str) -> None:
    db = _sqlite()
    db.execute("CREATE TABLE w (name TEXT)")
    db.execute("INSERT INTO w VALUES (?)", (name,))
    (tag,) = db.execute(f"SELECT {ps.TAG_SQL} FROM w").fetchone()
    assert tag == contract.run_tag(name)


def test_failure_reasons_say_what_boinc_means() -> None:
    assert ps.failure_reason(3, 3, 197) == ("client error (compute error, exit status 197: time "
                                            "limit exceeded)")
    assert ps.failure_reason(3, 1, -186) == ("client error (downloading, exit status -186: "
                                             "download failed)")
    assert ps.failure_reason(3, 3, 1) == "client error (compute error, exit status 1)"
    assert ps.failure_reason(4, 0, 0) == "no reply"
    assert ps.failure_reason(6, 5, 0) == "validate error"
    assert ps.failure_reason(9, 0, 0) == "outcome 9"


def test_the_sql_keeps_cancelled_work_out_of_the_failures() -> None:
    sql = ps.status_sql()
    failed_results = sql.split("SELECT '@failed_results';")[1].split("SELECT '@")[0]
    assert f"AND NOT {ps.CANCELLED_RESULT_SQL}" in failed_results
    failed_workunits = sql.split("SELECT '@failed_workunits';")[1].split("SELECT '@")[0]
    assert "(w.error_mask & 16) = 0" in failed_workunits


# -- what the tasks did, per app and run tag ------------------------------------------------------
DB_ROWS = "\n".join([
    "@result_outcomes",
    "pymw\tmc\t3\t3\t197\t0\t2\t1700000100", "pymw\tmc\t3\t3\t1\t0\t1\t1700000120",
    "pymw\tmc\t3\t6\t0\t1\t3\t1700000130",  # aborted: its work unit cancelled
    "pymw\tmc\t5\t0\t0\t1\t4\t1700000140", "pymw\tmc\t5\t0\t0\t0\t9\t1700000150",  # not needed
    "pymw\t\t4\t0\t0\t0\t1\t1700000000",
    "@workunits",
    "pymw\tmc\t0\t1\t1\t5\t1700000100", "pymw\tmc\t16\t0\t1\t4\t1700000160",
    "pymw\tmc\t2\t0\t1\t1\t1700000170", "pymw\tmc\t0\t0\t0\t3\t1700000000",
]) + "\n"


def tally(**tags: object) -> str:
    return json.dumps({"format": 1, "app": "pymw", "updated": 1.0, "tags": tags})


MC_TALLY = {"ok": 2, "unreadable": 1, "raised": {"ValueError": 4, "KeyError": 1},
            "examples": {"ValueError": [
                {"wu": f"pymw_mc_deadbeef_{n}", "message": f"bad {n}", "time": 1700000200.0 + n}
                for n in (4, 3, 2)], "KeyError": [
                {"wu": "pymw_mc_deadbeef_1", "message": "'k'", "time": 1700000100.0}]},
            "first": 1700000000.0, "last": 1700000204.0}


def test_the_database_says_failures_by_reason_and_cancelled_work_apart() -> None:
    tasks = ps.parse_tasks(DB_ROWS)
    mc = tasks[("pymw", "mc")]
    assert mc.workunits == {"unsent": 3, "in_progress": 0, "done": 5, "errored": 1,
                            "cancelled": 4}
    assert {(f.kind, f.reason): f.count for f in mc.failed} == {
        ("result", "client error (compute error, exit status 197: time limit exceeded)"): 2,
        ("result", "client error (compute error, exit status 1)"): 1,
        ("workunit", "too many error results"): 1}
    assert mc.cancelled_results == 7
    assert [f.reason for f in tasks[("pymw", "")].failed] == ["no reply"]


def test_the_tallies_say_what_the_tasks_did() -> None:
    text = f"@pymw.json\n{tally(mc=MC_TALLY)}\n@other.json\n{tally()}\n"
    tasks, unreadable = ps.parse_outcomes(text)
    assert unreadable == []
    mc = tasks[("pymw", "mc")]
    assert (mc.ok, mc.unreadable, mc.raised) == (2, 1, {"ValueError": 4, "KeyError": 1})
    assert [e.message for e in mc.examples] == ["bad 4", "bad 3", "bad 2", "'k'"]
    assert mc.examples[0] == ps.RaisedExample("ValueError", "bad 4", "pymw_mc_deadbeef_4",
                                              1700000204.0)


@pytest.mark.parametrize("junk", ["not json", "[" * 100_000, "[]", '{"tags": []}', ""])
def test_a_tally_that_is_not_one_is_said_not_counted(junk: str) -> None:
    tasks, unreadable = ps.parse_outcomes(f"@pymw.json\n{junk}\n@ok.json\n{tally(t={'ok': 1})}\n")
    assert unreadable == ["pymw"] and tasks[("ok", "t")].ok == 1


def test_a_tallys_fields_of_the_wrong_type_count_nothing() -> None:
    hostile = ('{"tags": {"t": {"ok": "many", "unreadable": -4, "raised": {"E": NaN, "F": 2, '
               '"G": true}, "examples": {"E": [1, {"wu": ["x"], "message": 2, "time": '
               'Infinity}], "F": "x"}, "last": -1}, "u": 7}}')
    tasks, unreadable = ps.parse_outcomes(f"@pymw.json\n{hostile}\n@../../x.json\n{tally()}\n")
    assert unreadable == [] and set(tasks) == {("pymw", "t"), ("pymw", "u")}
    t = tasks[("pymw", "t")]
    assert (t.ok, t.unreadable, t.raised, t.last) == (0, 0, {"F": 2}, 0.0)
    assert t.examples == [ps.RaisedExample("E", "", "", 0.0)]
    assert not tasks[("pymw", "u")].active


def test_each_app_and_run_tag_together_with_its_runs() -> None:
    from pymw_admin.admin.runs import RunInfo

    def run(run_id: str, tag: str | None) -> RunInfo:
        return RunInfo(id=run_id, script="mc.py", pid=None, alive=False, exit_code=0,
                       started=None, ended=None, stopped=False, tag=tag)

    tallies, _ = ps.parse_outcomes(
        f"@pymw.json\n{tally(mc=MC_TALLY, old={'ok': 3, 'last': 5.0})}\n")
    apps = ps.task_outcomes(ps.parse_tasks(DB_ROWS), tallies,
                            [run("3", "mc"), run("4", "mc"), run("5", None)])
    (pymw,) = apps
    assert [t.tag for t in pymw.tags] == ["mc", "", "old"]  # the newest active first
    mc = pymw.tags[0]
    assert mc.runs == ["3", "4"] and mc.workunits["done"] == 5 and mc.ok == 2
    assert (pymw.ok, pymw.workunits["cancelled"], pymw.cancelled_results) == (5, 4, 7)
    assert sum(f.count for f in pymw.failed if f.reason == "no reply") == 1
    data = pymw.as_dict()
    assert data["raised"] == {"ValueError": 4, "KeyError": 1}
    assert data["cancelled"] == {"workunits": 4, "results": 7}
    assert "tag" not in data and [t["tag"] for t in data["tags"]] == ["mc", "", "old"]
    assert data["tags"][0]["runs"] == ["3", "4"]
    assert data["tags"][0]["raised_examples"][0] == {
        "error_type": "ValueError", "message": "bad 4", "workunit": "pymw_mc_deadbeef_4",
        "when": 1700000204.0}


def test_newest_examples_keep_a_few_of_each_type() -> None:
    examples = [ps.RaisedExample("E", str(n), "wu", float(n)) for n in range(10)]
    examples.append(ps.RaisedExample("F", "f", "wu", 0.0))
    kept = ps.newest_examples(examples)
    assert [e.message for e in kept] == ["9", "8", "7", "f"]


def test_the_tallies_are_read_as_the_owner() -> None:
    from pymw_admin.admin.target import HostSpec, ProjectTarget
    from tests.doubles import RecordingHost

    target = ProjectTarget(name="proj", owner="boincadm", project_dir="/p d", host=HostSpec("h"))
    host = RecordingHost([("head -c", f"@pymw.json\n{tally(mc=MC_TALLY)}\n")])
    tasks, error = ps.read_outcomes(host, target)
    assert error == "" and tasks[("pymw", "mc")].ok == 2
    command = host.commands[-1]
    # as the owner: root never reads or follows links in a tree the owner can write
    assert command.startswith("sudo -n -H -u boincadm -- sh -c ")
    assert "'/p d/pymw/outcomes'" in ps.outcomes_command(target)
    assert '[ -f "$f" ]' in command and "timeout 5 head -c" in command
    failing = RecordingHost([("head -c", (1, ""))])
    tasks, error = ps.read_outcomes(failing, target)
    assert tasks == {} and "reading what the tasks did failed" in error


def test_status_json_has_tasks_only_when_the_database_answered() -> None:
    tallies, _ = ps.parse_outcomes(f"@pymw.json\n{tally(mc=MC_TALLY)}\n")
    tasks = ps.task_outcomes(ps.parse_tasks(DB_ROWS), tallies)
    status = ps.Status("p", "h", 1.0, {"feeder": True}, False, [], [], [], tasks=tasks)
    data = status.as_dict()
    assert data["tasks"][0]["app"] == "pymw" and data["tasks_error"] is None  # type: ignore[index]
    status.database_error = "no answer"
    assert status.as_dict()["tasks"] is None
