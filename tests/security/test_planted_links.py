"""H1, H2, L3 and the rule behind them, on the real sshd test host: root never writes into, reads
from or follows links in the project owner's tree. The owner plants links and FIFOs; a root-only
canary file must come through unchanged, and no command hangs."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.admin import runs
from pymw_admin.admin.plan import Context, run_plan
from pymw_admin.admin.remote import Host, HostSpec
from pymw_admin.admin.server import ops_password
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.admin.target import ProjectTarget
from pymw_admin.errors import RemoteError
from testbed import ssh_host

pytestmark = pytest.mark.ssh

OWNER = "boincadm"
NAME = "i13sec"
PROJECT = f"/home/{OWNER}/projects/{NAME}"
CANARY_TEXT = "root's secret\n"


@pytest.fixture
def canary() -> Iterator[Path]:
    """A root-only file (0600) the owner would love to read or take over."""
    path = Path.home() / f"pymw-canary-{uuid.uuid4().hex[:8]}"  # root's home: root's alone
    path.write_text(CANARY_TEXT)
    path.chmod(0o600)
    yield path
    path.unlink(missing_ok=True)


def untouched(canary: Path) -> bool:
    info = canary.stat()
    return (canary.read_text() == CANARY_TEXT and info.st_uid == 0 and info.st_gid == 0
            and info.st_mode & 0o777 == 0o600 and not canary.is_symlink())


def as_owner(host: Host, command: str) -> None:
    host.run(command, user=OWNER)


@pytest.fixture
def project(vm_host: Host) -> Iterator[str]:
    """An owner's project tree (just the directories), removed afterwards."""
    ssh_host.forget_project(NAME)
    as_owner(vm_host, f"mkdir -p {PROJECT}/html/ops {PROJECT}/pymw/runs")
    yield PROJECT
    ssh_host.forget_project(NAME)


def test_h2_a_file_for_the_owner_is_written_as_the_owner(vm_host: Host, project: str,
                                                         canary: Path) -> None:
    config = f"{project}/config.xml"
    as_owner(vm_host, f"ln -s {canary} {config}")
    vm_host.write_file(config, "<boinc/>\n", mode=0o640, owner=OWNER)
    assert untouched(canary)
    written = Path(config)
    assert not written.is_symlink() and written.read_text() == "<boinc/>\n"
    assert written.stat().st_uid == Path(project).stat().st_uid
    assert written.stat().st_mode & 0o777 == 0o640


def test_h2_the_temporary_file_race_gains_the_owner_nothing(vm_host: Host, project: str,
                                                            canary: Path) -> None:
    config = f"{project}/config.xml"
    # the owner swaps every temporary file for a link to the canary, as fast as it can
    # (setpriv execs the loop itself, so killing it stops it; it also gives up after a minute)
    racer = subprocess.Popen(
        ["setpriv", f"--reuid={OWNER}", f"--regid={OWNER}", "--init-groups", "sh", "-c",
         "end=$(($(date +%s) + 60)); while [ $(date +%s) -lt $end ]; do "
         f'for f in {config}.*; do ln -sf {canary} "$f" 2>/dev/null; done; done'])
    try:
        for _ in range(20):
            # the owner may spoil its own write; never root's file
            with contextlib.suppress(RemoteError):
                vm_host.write_file(config, "<boinc/>\n", mode=0o640, owner=OWNER)
    finally:
        racer.kill()
        racer.wait()
    assert untouched(canary)


def test_root_refuses_the_owners_tree(vm_host: Host, project: str, canary: Path) -> None:
    target = f"{project}/project.xml"
    as_owner(vm_host, f"ln -s {canary} {target}")
    with pytest.raises(RemoteError, match="writable by others than root"):
        vm_host.write_file(target, "x\n")  # as root
    with pytest.raises(RemoteError, match="writable by others than root"):
        vm_host.read_text(target)  # as root
    assert untouched(canary)


def test_l3_reading_as_the_owner_shows_no_root_file_and_never_hangs(vm_host: Host,
                                                                    project: str,
                                                                    canary: Path) -> None:
    link, fifo = f"{project}/config.xml", f"{project}/fifo.xml"
    as_owner(vm_host, f"ln -s {canary} {link} && mkfifo {fifo}")
    with pytest.raises(RemoteError) as denied:
        vm_host.read_text(link, user=OWNER)
    assert "secret" not in str(denied.value)
    with pytest.raises(RemoteError, match="not a regular file"):
        vm_host.read_text(fifo, user=OWNER)


def test_h1_htpasswd_never_follows_a_planted_link(vm_host: Host, project: str,
                                                  canary: Path) -> None:
    as_owner(vm_host, f"ln -s {canary} {project}/html/ops/.htpasswd")
    spec = ProjectSpec(NAME, url_base=f"http://{ssh_host.VM_ADDR}/", host_name="vm",
                       owner=OWNER, project_dir=project)
    reports = run_plan(Context(vm_host, spec), [ops_password.STEP])
    assert reports[0].status == "changed"
    assert untouched(canary)
    htpasswd = Path(f"{project}/html/ops/.htpasswd")
    assert not htpasswd.is_symlink() and htpasswd.read_text().startswith("admin:")
    assert htpasswd.stat().st_mode & 0o777 == 0o640
    again = run_plan(Context(vm_host, spec), [ops_password.STEP])
    assert again[0].status == "already done"


def test_l3_runs_and_logs_with_planted_links_and_fifos(vm_host: Host, project: str,
                                                       canary: Path) -> None:
    target = ProjectTarget(name=NAME, host=HostSpec("vm"), owner=OWNER, project_dir=project)
    run = f"{project}/pymw/runs/1"
    as_owner(vm_host, f"mkdir -p {run} && echo 'exec true' > {run}/run.sh && mkfifo {run}/pid "
                      f"&& ln -s {canary} {run}/script_name && mkfifo {run}/log "
                      f"&& echo 0 > {run}/exit")
    (info,) = runs.list_runs(vm_host, target)
    assert info.id == "1" and "secret" not in info.script and info.pid is None
    assert runs.read_log(vm_host, target, "1") == ""
    as_owner(vm_host, f"rm {run}/log && ln -s {canary} {run}/log")
    assert "secret" not in runs.read_log(vm_host, target, "1")
    assert untouched(canary)
