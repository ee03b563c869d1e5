"""The admin tests' fixtures: the sshd test host "vm", the default project owner made by
init-project's own owner step, and, when present, a BOINC source tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.admin.plan import Context, run_plan
from pymw_admin.admin.remote import Host, HostSpec, connect
from pymw_admin.admin.server import owner
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import boinc_tree, ssh_host


@pytest.fixture(scope="session")
def vm() -> ssh_host.VM:
    return ssh_host.up()


@pytest.fixture
def vm_host(vm: ssh_host.VM) -> Iterator[Host]:
    host = connect(HostSpec("vm", ssh_config=str(vm.ssh_config)))
    yield host
    host.close()


def make_owner(vm: ssh_host.VM, name: str = "boincadm") -> str:
    """A project owner account with its home, made as init-project makes them: by its owner
    step, which changes nothing when they are right already. Tests that put files in the owner's
    home create them as the owner (:func:`testbed.ssh_host.as_user`), never as root."""
    spec = ProjectSpec("ownerfixture", url_base=f"http://{vm.address}/", host_name="vm",
                       owner=name)
    host = connect(HostSpec("vm", ssh_config=str(vm.ssh_config)))
    try:
        run_plan(Context(host, spec), [owner.STEP])
    finally:
        host.close()
    return spec.owner


@pytest.fixture(scope="session")
def project_owner(vm: ssh_host.VM) -> str:
    """The default owner account (boincadm), made by init-project's own owner step."""
    return make_owner(vm)


@pytest.fixture(scope="session")
def boinc_src() -> Path:
    tree = boinc_tree.find()
    if tree is None:
        pytest.skip(boinc_tree.missing_reason())
    return tree

