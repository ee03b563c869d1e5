"""Status: BOINC's numeric states mapped to ours, the SQL output parsed, failure reasons."""

from __future__ import annotations

import pytest

from pymw_admin.admin import status as ps


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
     (2, False, True, "errored"), (16, True, True, "errored")],
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
        "pymw\t2\t0\t3", "pymw\t4\t0\t2", "pymw\t5\t1\t5", "pymw\t5\t3\t1", "pymw\t5\t5\t1",
        "other\t1\t0\t1",
        "@workunits",
        "pymw\t0\t0\t0\t3", "pymw\t0\t0\t1\t2", "pymw\t0\t1\t1\t4", "pymw\t2\t0\t1\t1",
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
                                       "not_needed": 1}
    assert by_name["pymw"].workunits == {"unsent": 3, "in_progress": 2, "done": 4, "errored": 1}
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
