"""The sshd test host's fixtures, shared with the admin tests."""

from tests.integration.admin.conftest import vm, vm_host  # noqa: F401
