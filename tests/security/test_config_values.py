"""L4: values that go into the crontab, the Apache site and client.cnf are validated first."""

from __future__ import annotations

import pytest

from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import UsageError

BASE = {"url_base": "http://10.0.0.5/", "host_name": "vm"}


@pytest.mark.parametrize("field,value", [
    ("project_dir", "/home/boincadm/p\n* * * * * root sh -c evil"),
    ("project_dir", "/srv/x y"),
    ("project_dir", "/srv/$(id)"),
    ("https_cert", '/etc/ssl/a.pem"\nInclude /tmp/evil.conf'),
    ("db_host", "localhost\npassword=x"),
    ("url_base", "http://x/\n<Directory />"),
])
def test_a_value_that_would_break_out_is_refused(field: str, value: str) -> None:
    values = dict(BASE, **{field: value})
    if field == "https_cert":
        values["https_key"] = "/etc/ssl/k.pem"
    with pytest.raises(UsageError, match="invalid"):
        ProjectSpec("sandbox", **values)


def test_plain_values_pass() -> None:
    spec = ProjectSpec("sandbox", **BASE, project_dir="/srv/boinc/sandbox-1",
                       https_cert="/etc/ssl/certs/a.pem", https_key="/etc/ssl/private/a.key",
                       db_host="db.example.org:3306")
    assert spec.project_dir == "/srv/boinc/sandbox-1"
