"""pymw-admin.toml: round trip, and a malformed file is one ConfigError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymw_admin.admin import config
from pymw_admin.admin.remote import HostSpec
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import ConfigError


def test_round_trip(tmp_path: Path) -> None:
    spec = ProjectSpec("sandbox", "http://10.0.0.5/", "vm", long_name='Sand "box"')
    host = HostSpec("vm", "admin", 2222, "~/.ssh/id_ed25519")
    path = config.save(config.ProjectFile.from_specs(host, spec), tmp_path / "p.toml")
    loaded = config.load(path)
    assert loaded.project_spec() == spec
    assert loaded.host_spec() == host
    # paths are derived from [project] (ProjectSpec), never stored where they could go stale
    assert "[paths]" not in path.read_text() and "config_xml" not in path.read_text()
    keys = {line.split(" = ")[0] for line in path.read_text().splitlines() if " = " in line}
    assert not keys & {"password", "db_password", "db_passwd", "ops_password"}


@pytest.mark.parametrize(("text", "message"), [
    ("[host\n", "is not valid TOML"),
    ("[project]\nname='x'\n", r"missing the \[host\] table"),
    ("[host]\nhost='h'\n[project]\nname='x'\n", r"\[project\] is missing"),
    ("[host]\nhost='h'\nport='22'\n[project]\nname='x'\nurl_base='http://h/'\nhost_name='h'\n",
     "host.port must be a int"),
    ("[host]\nhost='h'\n[project]\nname='X'\nurl_base='http://h/'\nhost_name='h'\n",
     "invalid project name"),
    ("[host]\nhost='h'\ncolour=1\n[project]\n", "unknown key host.colour"),
    ("[host]\nhost='h'\n[project]\nname='x'\nurl_base='http://h/'\nhost_name='h'\n[x]\n",
     r"unknown table \[x\]"),
])
def test_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        config.load(path)
    assert "\n" not in str(info.value)


def test_an_old_file_with_a_paths_table_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[host]\nhost='h'\n[project]\nname='x'\nurl_base='http://h/'\n"
                    "host_name='h'\ndir='/srv/x'\n[paths]\nboinc_tree='/opt/b'\n"
                    "config_xml='/stale/config.xml'\n")
    assert config.load(path).project_spec().project_dir == "/srv/x"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `pymw-admin init-project` first"):
        config.load(tmp_path / "none.toml")
