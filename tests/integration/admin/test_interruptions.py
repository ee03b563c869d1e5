"""Every interruption converges, on the sshd test host: a connection dropped in the middle of a step
names the step and says a re-run converges; a project directory left half-made by an interrupted
make_project is made again by the next run; two projects of one owner keep one cron line each and
a re-run changes nothing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pymw_admin.admin.plan import Action, Context, Step, StepFailed, run_plan
from pymw_admin.admin.remote import Host, HostSpec, connect
from pymw_admin.admin.server import boinc_build, cron, database, os_check, owner, project
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host

pytestmark = pytest.mark.ssh


def _drop_connection_when(host: Host, ready: Path, timeout: float = 1800) -> threading.Thread:
    """Cut the client's TCP connection (as a dropped network would) once ``ready`` exists, and
    only then: cut at any other moment (a cold BOINC build before it) the test proves nothing."""

    def cut() -> None:
        deadline = time.monotonic() + timeout
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not ready.exists():
            return
        transport = host._conn.client.get_transport()  # type: ignore[attr-defined]
        transport.sock.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=cut, daemon=True)
    thread.start()
    return thread


def test_a_dropped_connection_names_the_step_and_a_rerun_converges(vm: ssh_host.VM) -> None:
    where = Path(tempfile.mkdtemp(prefix="pymw-drop-"))  # the login user writes here
    where.chmod(0o777)
    started, done = where / "started", where / "done"
    spec = ProjectSpec("cidrop", "http://h/", "h")

    def gather(ctx: Context) -> bool:
        return ctx.host.exists(str(done), sudo=False)

    def decide(finished: bool, _spec: ProjectSpec) -> list[Action]:
        return [] if finished else [Action("work", str(done))]

    def apply(ctx: Context, _actions: list[Action]) -> None:
        ctx.host.run(f"touch {started}; sleep 20; touch {done}", timeout=60)

    step = Step("slow_step", "a step that takes a while", gather, decide, apply)
    host = connect(HostSpec("vm", ssh_config=str(vm.ssh_config)))
    try:
        cutter = _drop_connection_when(host, started)
        with pytest.raises(StepFailed) as info:
            run_plan(Context(host, spec), [step])
        cutter.join(timeout=10)  # it cut already, or it never will
    finally:
        host.close()
    message = str(info.value)
    assert "\n" not in message
    assert "step 'slow_step'" in message and "connection was lost" in message
    assert "run the same command again" in message and "converges" in message
    again = connect(HostSpec("vm", ssh_config=str(vm.ssh_config)))
    try:
        done.touch()  # the work the cut command would have finished
        [report] = run_plan(Context(again, spec), [step])
    finally:
        again.close()
        shutil.rmtree(where, ignore_errors=True)
    assert report.status == "already done"


CRON_OWNER = "pymwcron"


def test_two_projects_of_one_owner_keep_their_cron_lines(vm: ssh_host.VM, vm_host: Host) -> None:
    if subprocess.run(["id", CRON_OWNER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", CRON_OWNER], check=True)
    subprocess.run(["crontab", "-r", "-u", CRON_OWNER], capture_output=True, check=False)
    first, second = (ProjectSpec(name, "http://h/", "h", owner=CRON_OWNER)
                     for name in ("cronone", "crontwo"))
    try:
        for spec in (first, second):
            run_plan(Context(vm_host, spec), [cron.STEP])
        for spec in (first, second, first):
            vm_host.forget()
            [report] = run_plan(Context(vm_host, spec), [cron.STEP])
            assert report.status == "already done", report
        tab = subprocess.run(["crontab", "-l", "-u", CRON_OWNER], capture_output=True,
                             text=True, check=True).stdout
        for spec in (first, second):
            assert sum(f"{spec.project_dir}/bin/start --cron" in line
                       for line in tab.splitlines()) == 1, tab
    finally:
        subprocess.run(["crontab", "-r", "-u", CRON_OWNER], capture_output=True, check=False)


HALF = "cihalf"


@pytest.mark.boinc
def test_a_half_made_project_directory_is_made_again(vm: ssh_host.VM, boinc_src: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ssh_host.forget_project(HALF)
    spec = ProjectSpec(HALF, f"http://{ssh_host.VM_ADDR}/", "vm", boinc_source=str(boinc_src))
    # the owner step too: on a fresh machine nothing else has made the owner yet
    steps = [os_check.STEP, owner.STEP, database.STEP, boinc_build.STEP, project.STEP]
    half = Path(spec.project_dir)
    keys = half / "keys"

    def interrupted(spec: ProjectSpec, tree: str, hostname: str) -> str:
        # make_project's first moves, then the client goes away in the middle of it
        return f"mkdir -p {keys} && touch {keys}/partial && sleep 30"

    host = connect(HostSpec("vm", ssh_config=str(vm.ssh_config)))
    try:
        with monkeypatch.context() as patch:
            patch.setattr(project, "make_project_command", interrupted)
            cutter = _drop_connection_when(host, keys / "partial")
            with pytest.raises(StepFailed, match=r"step 'project'.*cut short"):
                run_plan(Context(host, spec), steps)
            cutter.join(timeout=10)  # it cut already, or it never will
        host.close()
        assert half.is_dir() and not (half / "config.xml").exists()
        host = connect(HostSpec("vm", ssh_config=str(vm.ssh_config)))
        reports = run_plan(Context(host, spec), steps)
        assert reports[-1].actions[:2] == [f"remove-half-made {half}",
                                           f"make_project {HALF} in {half}"]
        assert (half / "config.xml").is_file() and not (keys / "partial").exists()
        host.forget()
        assert run_plan(Context(host, spec), steps)[-1].status == "already done"
    finally:
        host.close()
        ssh_host.forget_project(HALF)
