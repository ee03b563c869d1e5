"""config.xml is the project owner's file: a daemon name in it must never run as a command, and
reading the daemons' state never runs as root."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import daemons
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host

pytestmark = pytest.mark.ssh


def test_a_pid_file_name_is_never_run(vm: ssh_host.VM, vm_host: Host) -> None:
    spec = ProjectSpec("cinject", url_base=f"http://{ssh_host.VM_ADDR}/", host_name="vm")
    project = Path(spec.project_dir)
    proof = Path(f"/tmp/pymw-injected-{uuid.uuid4().hex}")
    project.mkdir(parents=True, exist_ok=True)
    shutil.chown(project.parent, "boincadm", "boincadm")
    shutil.chown(project, "boincadm", "boincadm")
    (project / "config.xml").write_text(
        "<boinc><config><host>vm</host></config><daemons>"
        f"<daemon><cmd>feeder</cmd><pid_file>$(touch {proof})</pid_file></daemon>"
        f"<daemon><cmd>transitioner</cmd><pid_file>`touch {proof}.2`</pid_file></daemon>"
        "<daemon><cmd>file_deleter</cmd></daemon>"
        "</daemons></boinc>\n")
    (project / "pid_vm").mkdir(exist_ok=True)
    (project / "pid_vm" / "file_deleter.pid").write_text("1\n")  # init: alive, not the owner's
    try:
        facts = daemons.status(vm_host, spec)
        assert not proof.exists() and not Path(f"{proof}.2").exists()
        assert facts.configured == ("file_deleter",)
        # run as the owner, kill -0 on a root process fails: a pid file cannot vouch for it
        assert facts.running == frozenset()
    finally:
        proof.unlink(missing_ok=True)
        Path(f"{proof}.2").unlink(missing_ok=True)
        shutil.rmtree(project, ignore_errors=True)
