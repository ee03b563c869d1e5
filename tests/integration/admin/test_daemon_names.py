"""config.xml is the project owner's file: a daemon name in it must never run as a command, and
reading the daemons' state never runs as root."""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

import pytest

from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import daemons
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host

pytestmark = pytest.mark.ssh


def test_a_pid_file_name_is_never_run(vm: ssh_host.VM, vm_host: Host,
                                      project_owner: str) -> None:
    spec = ProjectSpec("cinject", url_base=f"http://{ssh_host.VM_ADDR}/", host_name="vm",
                       owner=project_owner)
    ssh_host.forget_project(spec.name, project_owner)  # what an interrupted earlier run left
    project = Path(spec.project_dir)
    proof = Path(f"/tmp/pymw-injected-{uuid.uuid4().hex}")
    config_xml = (
        "<boinc><config><host>vm</host></config><daemons>"
        f"<daemon><cmd>feeder</cmd><pid_file>$(touch {proof})</pid_file></daemon>"
        f"<daemon><cmd>transitioner</cmd><pid_file>`touch {proof}.2`</pid_file></daemon>"
        "<daemon><cmd>file_deleter</cmd></daemon>"
        "</daemons></boinc>")
    # pid 1 (init): alive, but not the owner's
    ssh_host.as_user(project_owner, f"mkdir -p {project}/pid_vm && cd {project} && "
                     f"echo {shlex.quote(config_xml)} > config.xml && "
                     "echo 1 > pid_vm/file_deleter.pid")
    try:
        facts = daemons.status(vm_host, spec)
        assert not proof.exists() and not Path(f"{proof}.2").exists()
        assert facts.configured == ("file_deleter",)
        # run as the owner, kill -0 on a root process fails: a pid file cannot vouch for it
        assert facts.running == frozenset()
    finally:
        proof.unlink(missing_ok=True)
        Path(f"{proof}.2").unlink(missing_ok=True)
        ssh_host.as_user(project_owner, f"rm -rf {project}")
