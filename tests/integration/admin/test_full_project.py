"""init-project end to end on the sshd test host with a real BOINC server tree: the project page,
the scheduler and the daemons answer; a re-run changes nothing (<= 10 s); a dry run changes nothing.
"""

from __future__ import annotations

import json
import stat
import time
import urllib.request
from pathlib import Path

import pytest

from pymw_admin.admin import config
from pymw_admin.admin.server import daemons
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host
from testbed.cache import CACHE
from tests.helpers.cli import json_out, pymw_admin

pytestmark = [pytest.mark.ssh, pytest.mark.boinc]

NAME = "pmtest"


@pytest.fixture(scope="module")
def provisioned(vm: ssh_host.VM, boinc_src: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Path, dict, float]:  # type: ignore[type-arg]
    ssh_host.forget_project(NAME)
    project_file = tmp_path_factory.mktemp("admin") / "pymw-admin.toml"
    started = time.monotonic()
    out = json_out(pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config",
                              str(vm.ssh_config), "--boinc-source", str(boinc_src),
                              "--project-file", str(project_file), "--json"))
    return project_file, out, time.monotonic() - started


def record_timing(key: str, value: object) -> None:
    """Keep the timings where the closing notes can read them."""
    path = CACHE / "admin-timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2))


def test_cold_provisioning_answers(provisioned: tuple[Path, dict, float]) -> None:  # type: ignore[type-arg]
    project_file, out, seconds = provisioned
    record_timing("cold_seconds", round(seconds, 1))
    assert out["changes"] > 0
    assert [s["status"] for s in out["steps"]][-1] == "already done"  # verify passed
    spec: ProjectSpec = config.load(project_file).project_spec()
    assert spec.master_url == f"http://{ssh_host.VM_ADDR}/{NAME}/"
    with urllib.request.urlopen(spec.master_url, timeout=20) as answer:
        assert answer.status == 200
        assert b"boinc_scheduler" in answer.read()
    request = urllib.request.Request(spec.cgi_url + "cgi", data=b"<scheduler_request/>",
                                     method="POST")
    with urllib.request.urlopen(request, timeout=20) as answer:
        assert b"<scheduler_reply>" in answer.read()
    # the admin pages want the generated password
    try:
        urllib.request.urlopen(spec.ops_url, timeout=20)
        raise AssertionError("the ops pages answered without a password")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    from pymw_admin.admin.remote import HostSpec, connect

    host = connect(HostSpec("vm", ssh_config=str(ssh_host.SSH_DIR / "ssh_config")))
    try:
        facts = daemons.status(host, spec)
    finally:
        host.close()
    assert {"feeder", "transitioner", "file_deleter"} <= facts.running
    assert Path(f"/etc/pymw-admin/{NAME}/ops_password").stat().st_mode & 0o077 == 0
    assert oct(Path(f"{spec.project_dir}/config.xml").stat().st_mode & 0o777) == "0o640"
    # make_project's 0644: app versions signed by any account's copy would run on every client
    keys = Path(spec.project_dir) / "keys"
    assert {key: oct(stat.S_IMODE((keys / key).stat().st_mode))
            for key in ("code_sign_private", "upload_private")} == {
        "code_sign_private": "0o600", "upload_private": "0o640"}


def test_rerun_changes_nothing(vm: ssh_host.VM, boinc_src: Path,
                               provisioned: tuple[Path, dict, float]) -> None:  # type: ignore[type-arg]
    project_file, _, _ = provisioned
    started = time.monotonic()
    out = json_out(pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config",
                              str(vm.ssh_config), "--boinc-source", str(boinc_src),
                              "--project-file", str(project_file), "--json"))
    seconds = time.monotonic() - started
    record_timing("rerun_seconds", round(seconds, 2))
    assert out["changes"] == 0
    assert {s["status"] for s in out["steps"]} == {"already done"}
    assert seconds <= 10


def test_dry_run_changes_nothing(vm: ssh_host.VM, boinc_src: Path,
                                 provisioned: tuple[Path, dict, float]) -> None:  # type: ignore[type-arg]
    config_xml = Path(f"/home/boincadm/projects/{NAME}/config.xml")
    before = config_xml.stat().st_mtime
    result = pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config", str(vm.ssh_config),
                        "--boinc-source", str(boinc_src), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "0 change(s) would be made" in result.stdout
    assert config_xml.stat().st_mtime == before


def test_rerun_repairs_only_what_drifted(vm: ssh_host.VM, boinc_src: Path,
                                         provisioned: tuple[Path, dict, float]) -> None:  # type: ignore[type-arg]
    project = f"/home/boincadm/projects/{NAME}"
    ssh_host.run_in_vm("sudo", "-u", "boincadm", "-H", "sh", "-c",
                       f"cd {project} && PATH=/usr/bin:/bin bin/stop")
    ssh_host.run_in_vm("crontab", "-r", "-u", "boincadm")
    out = json_out(pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config",
                              str(vm.ssh_config), "--boinc-source", str(boinc_src), "--json"))
    changed = {s["step"] for s in out["steps"] if s["status"] == "changed"}
    assert changed == {"cron", "daemons"}
