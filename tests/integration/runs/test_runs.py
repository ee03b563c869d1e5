"""run / runs / logs / attach / stop on the sshd test host: a real sshd, real sudo to the
project's owner, real detached processes. The run outlives its SSH connection being killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import default_sigint
from tests.helpers.cli import cli_env, one_error_line, pymw_admin

pytestmark = pytest.mark.ssh

SLOW = """\
import os, sys, time
import ticker
print("run dir", os.path.basename(os.getcwd()), flush=True)
for i in range(int(sys.argv[1])):
    ticker.tick(i)
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0.3)
print("done", open("data/word.txt").read().strip(), flush=True)
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("scripts")
    (d / "slow.py").write_text(SLOW)
    (d / "ticker.py").write_text("def tick(i):\n    print('tick', i, flush=True)\n")
    (d / "data").mkdir()
    (d / "data" / "word.txt").write_text("bonjour\n")
    (d / "fails.py").write_text("import sys\nprint('about to fail')\nsys.exit(7)\n")
    return d


def _cli(project_file: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # options before the script: whatever follows "--" belongs to the script
    return pymw_admin(args[0], "--project-file", str(project_file), *args[1:], timeout=timeout)


def _runs(project_file: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    out = _cli(project_file, "runs", "--json")
    assert out.returncode == 0, out.stderr
    return {str(r["id"]): r for r in json.loads(out.stdout)}


def _start(project_file: Path, scripts: Path, *args: str) -> str:
    out = _cli(project_file, "run", "--detach", str(scripts / "slow.py"), "-d",
               str(scripts / "data"), "--", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_run_streams_output_and_exit_status(bare_project: Path, scripts: Path) -> None:
    out = _cli(bare_project, "run", str(scripts / "slow.py"), "-d", str(scripts / "data"),
               "--", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1:] == ["tick 0", "tick 1", "tick 2", "done bonjour"]
    run_id = lines[0].split()[-1]
    assert f"run {run_id}: exited(0)" in out.stderr
    assert _runs(bare_project)[run_id]["state"] == "exited(0)"
    failed = _cli(bare_project, "run", str(scripts / "fails.py"))
    assert failed.returncode == 7
    assert "about to fail" in failed.stdout
    logs = _cli(bare_project, "logs", run_id)
    assert logs.stdout.splitlines()[-1] == "done bonjour"


def test_run_survives_its_connection_being_killed(bare_project: Path, scripts: Path) -> None:
    exe = str(Path(sys.executable).parent / "pymw-admin")
    client = subprocess.Popen([exe, "run", str(scripts / "slow.py"), "-d", str(scripts / "data"),
                               "--project-file", str(bare_project), "--", "12", "0.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=cli_env())
    assert client.stdout is not None
    first = client.stdout.readline()
    assert first.startswith("run dir"), first + client.stderr.read()  # type: ignore[union-attr]
    run_id = first.split()[-1]
    assert client.stdout.readline() == "tick 0\n"
    client.kill()  # the ssh connection dies with the client: no goodbye
    client.wait()
    assert _runs(bare_project)[run_id]["state"] == "running"
    started = time.monotonic()
    attached = _cli(bare_project, "attach", run_id)
    assert attached.returncode == 0, attached.stderr
    ticks = [line for line in attached.stdout.splitlines() if line.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(12)]  # the whole log, from the start
    assert attached.stdout.splitlines()[-1] == "done bonjour"
    assert time.monotonic() - started > 1.0  # it followed the live run, not a finished log
    assert _runs(bare_project)[run_id]["state"] == "exited(0)"


def test_ctrl_c_detaches_and_the_run_goes_on(bare_project: Path, scripts: Path) -> None:
    exe = str(Path(sys.executable).parent / "pymw-admin")
    client = subprocess.Popen([exe, "run", str(scripts / "slow.py"), "-d", str(scripts / "data"),
                               "--project-file", str(bare_project), "--", "10", "0.4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=cli_env(), preexec_fn=default_sigint)
    assert client.stdout is not None
    run_id = client.stdout.readline().split()[-1]
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=30)
    assert client.returncode == 130
    assert f"detached: run {run_id} goes on" in err
    assert "Traceback" not in err
    assert _runs(bare_project)[run_id]["state"] == "running"
    assert _cli(bare_project, "attach", run_id).returncode == 0


def test_runs_side_by_side_and_stop(bare_project: Path, scripts: Path) -> None:
    a = _start(bare_project, scripts, "200", "0.2")
    b = _start(bare_project, scripts, "15", "0.5")
    assert a != b
    states = _runs(bare_project)
    assert states[a]["state"] == "running" and states[b]["state"] == "running"
    pid = states[a]["pgid"]
    assert _cli(bare_project, "attach", b).returncode == 0  # b ends while a goes on
    assert _runs(bare_project)[a]["state"] == "running"
    stopped = _cli(bare_project, "stop", a, "--grace", "5")
    assert stopped.returncode == 0, stopped.stderr
    assert f"run {a} stopped: killed" in stopped.stdout
    final = _runs(bare_project)[a]
    assert final["state"] == "killed" and final["exit_code"] == 143  # TERM was enough, no KILL
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone
    again = _cli(bare_project, "stop", a)
    assert again.returncode == 0 and "was not running" in again.stdout


def test_table_lists_runs(bare_project: Path, scripts: Path) -> None:
    # its own run: the project is shared, and other tests (prune) may have emptied it
    ran = _cli(bare_project, "run", str(scripts / "slow.py"), "-d", str(scripts / "data"),
               "--", "1")
    assert ran.returncode == 0, ran.stderr
    out = _cli(bare_project, "runs")
    assert out.returncode == 0
    assert "slow.py" in out.stdout and "exited(0)" in out.stdout


@pytest.mark.parametrize("command", ["attach", "logs", "stop"])
def test_unknown_run_id(bare_project: Path, command: str) -> None:
    line = one_error_line(_cli(bare_project, command, "99999"))
    assert "no run 99999 in project pymwrun" in line


def test_invalid_run_id(bare_project: Path) -> None:
    out = _cli(bare_project, "logs", "../../etc")
    assert out.returncode == 2
    assert "invalid run id" in one_error_line(out)


def test_missing_script_fails_before_connecting(tmp_path: Path) -> None:
    out = pymw_admin("run", str(tmp_path / "nope.py"), "--host", "10.201.6.99", "--project", "x")
    assert out.returncode == 2
    assert "no such script" in one_error_line(out)


def test_unreachable_host(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("print(1)\n")
    for args in (["runs"], ["status"], ["run", str(tmp_path / "m.py")]):
        started = time.monotonic()
        out = pymw_admin(*args, "--host", "10.201.6.99", "--project", "x",
                         "--connect-timeout", "2", timeout=60)
        assert out.returncode == 4, out.stderr
        assert "cannot reach" in one_error_line(out)
        assert time.monotonic() - started < 20


def test_no_project_file_and_no_flags(tmp_path: Path) -> None:
    out = pymw_admin("runs", "--project-file", str(tmp_path / "none.toml"))
    assert out.returncode == 2
    assert "no project file" in one_error_line(out)


def test_no_project_on_the_host(vm: object, tmp_path: Path) -> None:
    from testbed.ssh_host import SSH_DIR

    (tmp_path / "m.py").write_text("print(1)\n")
    out = pymw_admin("run", str(tmp_path / "m.py"), "--host", "vm", "--ssh-config",
                     str(SSH_DIR / "ssh_config"), "--project", "nosuchproject")
    assert out.returncode == 2
    assert "no project at /home/boincadm/projects/nosuchproject" in one_error_line(out)


def test_bare_project_status_reports_the_database(bare_project: Path) -> None:
    out = _cli(bare_project, "status", "--json")
    assert out.returncode == 1, out.stderr  # unhealthy, and still the whole reading
    data = json.loads(out.stdout)
    assert data["project"] == "pymwrun"
    assert data["daemons"]["up"] is False and data["healthy"] is False
    assert data["database_error"]  # no database behind a bare project: said, not fatal
    assert data["totals"] is None and data["apps"] is None  # unknown, not zero
    assert {str(r["id"]) for r in data["runs"]} == set(_runs(bare_project))


def test_the_server_runs_this_very_code(bare_project: Path, scripts: Path) -> None:
    """The venv on the server holds the pymw-admin these tests run (rebuilt when sources change)."""
    from pymw_admin.admin import runs

    # a run makes (or refreshes) the venv: this test may be the session's first to run one
    assert _cli(bare_project, "run", str(scripts / "fails.py")).returncode == 7
    venv = Path("/home/pymwrun/.pymw-admin/venv")  # the test host shares this file system
    assert (venv / "pymw-admin.stamp").read_text().strip() == runs.source_hash(
        runs.source_root())  # type: ignore[arg-type]
    installed = next(venv.glob("lib/python3*/site-packages/pymw_admin/admin/runs/__init__.py"))
    assert installed.read_bytes() == Path(runs.__file__).read_bytes()
