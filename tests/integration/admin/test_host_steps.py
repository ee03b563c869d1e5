"""Provisioning the host-level steps on the real sshd test host (no BOINC tree needed):
packages, owner, database, Apache, cron; a re-run changes nothing; a dry run changes nothing."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from pymw_admin.admin.plan import Context, run_plan
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import provision
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host

pytestmark = pytest.mark.ssh

NAME = "cibase"


def spec(name: str = NAME) -> ProjectSpec:
    return ProjectSpec(name, url_base=f"http://{ssh_host.VM_ADDR}/", host_name="vm",
                       boinc_source="https://example.invalid/boinc.git@v1")


def test_host_steps_converge_then_rerun_changes_nothing(vm: ssh_host.VM, vm_host: Host) -> None:
    ssh_host.forget_project(NAME)
    first = run_plan(Context(vm_host, spec()), provision.BASE_STEPS)
    assert [r.name for r in first] == [s.name for s in provision.BASE_STEPS]
    assert first[0].status == "changed"  # the claim, at least

    # what the steps promise, read back independently
    secrets = Path(f"/etc/pymw-admin/{NAME}")
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    for name in ("db_password", "client.cnf"):
        assert oct((secrets / name).stat().st_mode & 0o777) == "0o600"
    login = ssh_host.run_in_vm("mysql", f"--defaults-extra-file={secrets / 'client.cnf'}",
                               "-N", "-e", "SELECT DATABASE()", NAME)
    assert login.stdout.strip() == NAME, login.stderr
    with urllib.request.urlopen(f"http://{ssh_host.VM_ADDR}/", timeout=10) as answer:
        assert answer.status == 200
    tab = ssh_host.run_in_vm("crontab", "-l", "-u", "boincadm").stdout
    assert f"/home/boincadm/projects/{NAME}/bin/start --cron" in tab

    started = time.monotonic()
    again = run_plan(Context(vm_host, spec()), provision.BASE_STEPS)
    seconds = time.monotonic() - started
    assert [r.status for r in again] == ["already done"] * len(again)
    assert seconds < 10

    dry = run_plan(Context(vm_host, spec()), provision.BASE_STEPS, dry_run=True)
    assert all(not r.actions for r in dry)


def test_dry_run_on_a_fresh_project_changes_nothing(vm: ssh_host.VM, vm_host: Host) -> None:
    name = "cidry"
    ssh_host.forget_project(name)
    reports = run_plan(Context(vm_host, spec(name)), provision.BASE_STEPS, dry_run=True)
    by_name = {r.name: r for r in reports}
    assert by_name["preflight"].status == "would change"
    assert by_name["database"].actions  # would create the database and its user
    assert not Path(f"/etc/pymw-admin/{name}").exists()
    assert not Path(f"/etc/apache2/sites-available/pymw-{name}.conf").exists()
    shown = ssh_host.run_in_vm("mysql", "-N", "-e", f"SHOW DATABASES LIKE '{name}'").stdout
    assert shown.strip() == ""
