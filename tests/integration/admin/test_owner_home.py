"""The owner step converges the owner's home on the sshd test host: a home root made before the
account (as an old test once did to boincadm) is given back, a missing one is made, the plan and
--dry-run say so, and a re-run changes nothing. Each test uses an account of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.admin.plan import Context, run_plan
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import owner
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host
from tests.helpers.cli import json_out, pymw_admin

pytestmark = pytest.mark.ssh


@pytest.fixture
def fresh_owner(vm: ssh_host.VM) -> Iterator[str]:
    """A login name no account has yet; the account and its home go afterwards."""
    name = f"pmwhome{os.getpid() % 100000}"
    _forget_account(name)
    yield name
    _forget_account(name)


def _forget_account(name: str) -> None:
    subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
    # www-data joined the owner's group, so userdel keeps the group: it goes too
    subprocess.run(["groupdel", name], capture_output=True, check=False)
    shutil.rmtree(f"/home/{name}", ignore_errors=True)


def _spec(name: str) -> ProjectSpec:
    return ProjectSpec("cownhome", url_base=f"http://{ssh_host.VM_ADDR}/", host_name="vm",
                       owner=name)


def _owned_by(path: Path) -> str:
    stat = path.stat()
    return f"{path.owner()}:{path.group()} {stat.st_mode & 0o777:o}"


def test_a_home_root_made_first_is_given_back(vm: ssh_host.VM, vm_host: Host,
                                              fresh_owner: str) -> None:
    home = Path(f"/home/{fresh_owner}")
    home.mkdir(mode=0o755)  # root made it before the account existed

    dry = json_out(pymw_admin("init-project", "cownhome", "--host", "vm", "--ssh-config",
                              str(vm.ssh_config), "--owner", fresh_owner, "--dry-run",
                              "--json", timeout=120))
    step = next(s for s in dry["steps"] if s["step"] == "owner")
    assert step["status"] == "would change"
    assert f"chown-home {fresh_owner}:{fresh_owner} {home} (owned by root:root)" in step["actions"]
    assert _owned_by(home) == "root:root 755"  # a dry run changes nothing

    [report] = run_plan(Context(vm_host, _spec(fresh_owner)), [owner.STEP])
    assert report.status == "changed"
    assert report.actions[:2] == [f"create-user {fresh_owner}",
                                  f"chown-home {fresh_owner}:{fresh_owner} {home} "
                                  "(owned by root:root)"]
    assert _owned_by(home) == f"{fresh_owner}:{fresh_owner} 755"
    # what `pymw-admin run` does first in the owner's home now works
    ssh_host.as_user(fresh_owner, "mkdir -p ~/.pymw-admin/venv.d")

    [again] = run_plan(Context(vm_host, _spec(fresh_owner)), [owner.STEP])
    assert again.status == "already done"


def test_a_missing_home_is_made(vm: ssh_host.VM, vm_host: Host, fresh_owner: str) -> None:
    run_plan(Context(vm_host, _spec(fresh_owner)), [owner.STEP])
    home = Path(f"/home/{fresh_owner}")
    shutil.rmtree(home)  # the account stays, its home is gone

    [dry] = run_plan(Context(vm_host, _spec(fresh_owner)), [owner.STEP], dry_run=True)
    assert dry.status == "would change"
    assert dry.actions == [f"create-home {home} ({fresh_owner}:{fresh_owner}, 0750)"]
    assert not home.exists()

    [report] = run_plan(Context(vm_host, _spec(fresh_owner)), [owner.STEP])
    assert report.status == "changed"
    assert _owned_by(home) == f"{fresh_owner}:{fresh_owner} 750"
    [again] = run_plan(Context(vm_host, _spec(fresh_owner)), [owner.STEP])
    assert again.status == "already done"
