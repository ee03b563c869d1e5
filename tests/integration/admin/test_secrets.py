"""A secret on a command's stdin never reaches the one-line error, even when the program on the
host (MariaDB here) quotes its input back in its error message."""

from __future__ import annotations

import pytest

from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import database
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import RemoteError
from testbed import ssh_host

pytestmark = pytest.mark.ssh

SECRET = "Zq7secretPw9x"
SPEC = ProjectSpec("cisecret", url_base=f"http://{ssh_host.VM_ADDR}/", host_name="vm")


def test_mariadb_syntax_error_does_not_show_the_password(vm: ssh_host.VM, vm_host: Host) -> None:
    if not vm_host.sudo("mysql -N -B -e 'SELECT 1'", check=False).ok:
        vm_host.sudo("service mariadb start", what="starting mariadb")
    # a statement MariaDB rejects; its error quotes it from the failing point on
    statement = f"CREATE USER IF NOT EXIST 'x'@'localhost' IDENTIFIED BY '{SECRET}';\n"
    with pytest.raises(RemoteError) as info:
        database.sql(vm_host, SPEC, statement, what="CREATE USER", secrets=(SECRET,))
    message = str(info.value)
    assert "CREATE USER failed" in message and "ERROR 1064" in message
    assert SECRET not in message and SECRET[:4] not in message and "\n" not in message
    # the same statement without the secret marked shows MariaDB's quote (what this guards)
    with pytest.raises(RemoteError, match=SECRET):
        database.sql(vm_host, SPEC, statement, what="CREATE USER")


def test_redacting_needs_a_name_for_the_command(vm: ssh_host.VM, vm_host: Host) -> None:
    with pytest.raises(ValueError, match="needs what="):
        vm_host.run("cat >/dev/null", stdin=SECRET, redact=(SECRET,))
    with pytest.raises(RemoteError) as info:
        vm_host.run(f"cat >/dev/null; echo 'near {SECRET}' >&2; exit 1", stdin=SECRET, what="x",
                    redact=(SECRET,))
    assert SECRET not in str(info.value) and "***" in str(info.value)
