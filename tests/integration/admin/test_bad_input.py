"""Bad input to init-project: one line, exit != 0, nothing changed on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import ssh_host
from tests.helpers.cli import one_error_line, pymw_admin

pytestmark = pytest.mark.ssh


def test_invalid_name_fails_before_connecting() -> None:
    line = one_error_line(pymw_admin("init-project", "Bad-Name", "--host", "10.201.6.99"))
    assert "invalid project name 'Bad-Name'" in line


def test_unreachable_host(vm: ssh_host.VM) -> None:
    result = pymw_admin("init-project", "cinone", "--host", "10.201.6.99", "--user", vm.user,
                        "--key", str(vm.key), "--connect-timeout", "2", timeout=60)
    assert "cannot reach pymwadm@10.201.6.99:22" in one_error_line(result)


def test_nothing_listens(vm: ssh_host.VM) -> None:
    result = pymw_admin("init-project", "cinone", "--host", vm.address, "--port", "2222",
                        "--user", vm.user, "--key", str(vm.key), timeout=60)
    assert "cannot reach" in one_error_line(result)


def test_wrong_key(vm: ssh_host.VM) -> None:
    result = pymw_admin("init-project", "cinone", "--host", vm.address, "--user", vm.user,
                        "--key", str(vm.wrong_key), timeout=60)
    assert "refused our key" in one_error_line(result)


def test_missing_key_file(vm: ssh_host.VM, tmp_path: Path) -> None:
    result = pymw_admin("init-project", "cinone", "--host", vm.address, "--key",
                        str(tmp_path / "none"), timeout=60)
    assert "no such key file" in one_error_line(result)


def test_no_sudo(vm: ssh_host.VM) -> None:
    result = pymw_admin("init-project", "cinone", "--host", vm.address, "--user",
                        vm.nosudo_user, "--key", str(vm.key), timeout=60)
    assert "cannot use sudo without a password" in one_error_line(result)
    assert not Path("/etc/pymw-admin/cinone").exists()


def test_foreign_project_is_left_alone(vm: ssh_host.VM, project_owner: str,
                                       tmp_path: Path) -> None:
    name = "cforeign"
    ssh_host.forget_project(name)
    foreign = Path(f"/home/{project_owner}/projects/{name}")
    ssh_host.as_user(project_owner, f"mkdir -p {foreign} && echo '<boinc/>' > {foreign}/config.xml")
    try:
        result = pymw_admin("init-project", name, "--host", "vm", "--ssh-config",
                            str(vm.ssh_config), "--project-file", str(tmp_path / "p.toml"),
                            timeout=120)
        assert "was not made by pymw-admin" in one_error_line(result)
        assert not Path(f"/etc/pymw-admin/{name}").exists()
        assert (foreign / "config.xml").read_text() == "<boinc/>\n"
        assert not (tmp_path / "p.toml").exists()
    finally:
        ssh_host.as_user(project_owner, f"rm -rf {foreign}")


def test_missing_source_directory_changes_nothing(vm: ssh_host.VM, tmp_path: Path) -> None:
    name = "cnosrc"
    ssh_host.forget_project(name)
    result = pymw_admin("init-project", name, "--host", "vm", "--ssh-config", str(vm.ssh_config),
                        "--boinc-source", "/nonexistent/boinc", timeout=120)
    assert "no BOINC source directory /nonexistent/boinc" in one_error_line(result)
    assert not Path(f"/etc/pymw-admin/{name}").exists()
