"""A remote command that fails, even one that ends before reading its standard input, is named in
one line with its exit status and its own last words, never a transport exception's text; on the
sshd test host."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.admin.remote import Host, HostSpec, connect
from pymw_admin.errors import RemoteError
from testbed import ssh_host
from tests.helpers.cli import one_error_line, pymw_admin

pytestmark = pytest.mark.ssh

BIG = b"x" * (8 << 20)  # more than an SSH channel's window: the sender must wait for a reader


@pytest.fixture
def vm_host(vm: ssh_host.VM) -> Iterator[Host]:
    host = connect(HostSpec("vm", ssh_config=str(vm.ssh_config)))
    yield host
    host.close()


def test_a_command_that_ends_before_reading_its_input(vm_host: Host) -> None:
    with pytest.raises(RemoteError) as info:
        vm_host.run("echo 'first words' >&2; echo 'mkdir: cannot create directory: Permission "
                    "denied' >&2; exit 3", stdin=BIG, what="installing the thing")
    assert str(info.value) == (f"installing the thing failed on {vm_host.name} (exit 3): first "
                               "words | mkdir: cannot create directory: Permission denied")
    # the connection is still good for the next command
    assert vm_host.run("echo still here").stdout == "still here\n"


@pytest.fixture
def homeless_owner(vm: ssh_host.VM, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[str, Path]]:
    """An owner whose home root made (the state an old test left boincadm in), and a project
    directory (only its config.xml is looked at) outside that home."""
    name = f"pmwroot{os.getpid() % 100000}"
    _forget_account(name)
    subprocess.run(["useradd", "-M", "-s", "/bin/bash", name], check=True)
    Path(f"/home/{name}").mkdir(mode=0o755, exist_ok=True)  # root's, not the owner's
    project = tmp_path_factory.mktemp("homeless")
    (project / "config.xml").write_text("<boinc><config/><daemons/></boinc>\n")
    yield name, project
    _forget_account(name)


def _forget_account(name: str) -> None:
    subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
    subprocess.run(["groupdel", name], capture_output=True, check=False)
    shutil.rmtree(f"/home/{name}", ignore_errors=True)


def test_run_says_why_the_server_venv_could_not_be_made(
        vm: ssh_host.VM, homeless_owner: tuple[str, Path], tmp_path: Path) -> None:
    owner, project = homeless_owner
    (tmp_path / "m.py").write_text("print('never runs')\n")
    out = pymw_admin("run", str(tmp_path / "m.py"), "--host", "vm", "--ssh-config",
                     str(vm.ssh_config), "--project", "pmwhomeless", "--owner", owner,
                     "--project-dir", str(project), "--detach", timeout=600)
    line = one_error_line(out)
    assert out.returncode == 4
    assert line.startswith(f"error: installing pymw-admin into /home/{owner}/.pymw-admin/venv "
                           f"failed on vm ({ssh_host.VM_ADDR}) (exit 1): mkdir: cannot create "
                           "directory"), line
    assert "Permission denied" in line
    assert "Socket is closed" not in line and "OSError" not in line

