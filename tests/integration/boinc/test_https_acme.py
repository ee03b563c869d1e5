"""HTTPS by ACME end to end: init-project --https acme gets a certificate from a local ACME CA
(pebble) for the test host's name, Apache serves the project over https, a re-run changes nothing,
a real BOINC client attaches by the https URL and returns a task's result; the same project then
takes a given certificate (--https-cert/--https-key) instead.

The project ``pmhttps`` belongs to the BOINC tests' owner (the client and the master's venv are
that user's); it is removed first, so the run starts cold.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import acme, boinc_client, boinc_tree, ssh_host
from testbed import bundle as bundle_bed
from testbed.boinc_project import OWNER, WORK
from tests.helpers.boinc_master import write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

NAME = "pmhttps"
URL_BASE = f"https://{acme.VM_NAME}/"
MASTER_URL = f"{URL_BASE}{NAME}/"
PROJECT_DIR = Path(f"/home/{OWNER}/projects/{NAME}")

SQUARES = '''
from pymw_admin.runtime import Master, options


def square(x):
    return x * x


with Master(interface=options.interface_from_args()) as master:
    for i in range(2):
        master.submit_task(square, (i + 3,))
    print("RESULTS", sorted(master.get_result()[1] for _ in range(2)), flush=True)
'''


def _init(vm: ssh_host.VM, project_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config", str(vm.ssh_config),
                      "--owner", OWNER, "--boinc-source", str(boinc_tree.find()),
                      "--url-base", URL_BASE, "--project-file", str(project_file), *extra)


def _acme_flags() -> tuple[str, ...]:
    return ("--https", "acme", "--acme-email", "admin@example.org", "--acme-server",
            acme.DIRECTORY_URL, "--acme-ca", str(acme.CA_FILE))


@pytest.fixture(scope="module")
def https_project() -> Iterator[tuple[ssh_host.VM, Path, dict]]:  # type: ignore[type-arg]
    if boinc_tree.find() is None:
        pytest.skip(boinc_tree.missing_reason())
    vm = ssh_host.up()
    acme.up()
    ssh_host.forget_project(NAME, owner=OWNER)
    for kept in ("live", "archive"):  # certbot refuses a name whose archive outlived live/
        shutil.rmtree(f"/etc/letsencrypt/{kept}/pymw-{NAME}", ignore_errors=True)
    Path(f"/etc/letsencrypt/renewal/pymw-{NAME}.conf").unlink(missing_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    project_file = WORK / f"{NAME}.toml"
    out = _init(vm, project_file, *_acme_flags(), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    yield vm, project_file, json.loads(out.stdout)
    boinc_client.detach(MASTER_URL)


def _served_certificate() -> dict:  # type: ignore[type-arg]
    """The certificate Apache serves for the name, checked against pebble's issuing root."""
    context = ssl.create_default_context(cadata=acme.issuing_roots())
    with (urllib.request.urlopen(MASTER_URL, context=context, timeout=20) as answer):
        assert b"boinc_scheduler" in answer.read()
    with context.wrap_socket(__import__("socket").create_connection((ssh_host.VM_ADDR, 443)),
                             server_hostname=acme.VM_NAME) as tls:
        return tls.getpeercert()  # type: ignore[return-value]


def test_acme_certificate_served_and_renewed_by_cron(https_project) -> None:  # type: ignore[no-untyped-def]
    _, _, out = https_project
    steps = {s["step"]: s for s in out["steps"]}
    assert steps["acme"]["status"] == "changed"
    assert any(a.startswith("certonly") for a in steps["acme"]["actions"])
    cert = _served_certificate()
    assert ("DNS", acme.VM_NAME) in cert["subjectAltName"]
    config_xml = (PROJECT_DIR / "config.xml").read_text()
    assert f"<master_url>{MASTER_URL}</master_url>" in config_xml
    cron = Path(f"/etc/cron.d/pymw-admin-certbot-{NAME}")
    assert "certbot renew" in cron.read_text() and f"pymw-{NAME}" in cron.read_text()
    assert cron.stat().st_uid == 0 and cron.stat().st_mode & 0o022 == 0
    # the cron line's renewal works against the same CA (forced: the new one is not yet due;
    # without a terminal certbot first sleeps up to 8 minutes, which cron wants and a test not)
    line = next(x for x in cron.read_text().splitlines() if "certbot renew" in x)
    renew = line.split(" root ", 1)[1] + " --force-renewal --no-random-sleep-on-renew"
    done = ssh_host.run_in_vm("sh", "-c", renew)
    assert done.returncode == 0, done.stderr + done.stdout
    time.sleep(2)  # the deploy hook's graceful reload
    assert _served_certificate()["serialNumber"] != cert["serialNumber"]


def test_rerun_changes_nothing_and_dry_run_shows_the_plan(https_project) -> None:  # type: ignore[no-untyped-def]
    vm, project_file, _ = https_project
    again = _init(vm, project_file, *_acme_flags(), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changes"] == 0
    # a dry run of a new name plans the certificate; nothing is asked of the CA
    other = pymw_admin("init-project", "pmhttps2", "--host", "vm", "--ssh-config",
                       str(vm.ssh_config), "--owner", OWNER, "--url-base",
                       f"https://other.{acme.VM_NAME}/", "--boinc-source",
                       str(boinc_tree.find()), *_acme_flags(), "--dry-run", "--json")
    assert other.returncode == 0, other.stderr
    acme_step = next(s for s in json.loads(other.stdout)["steps"] if s["step"] == "acme")
    assert any(a.startswith("certonly other.") for a in acme_step["actions"])
    assert not Path("/etc/letsencrypt/live/pymw-pmhttps2").exists()


def test_a_client_attaches_over_https_and_returns_work(https_project, master_python: str
                                                        ) -> None:  # type: ignore[no-untyped-def]
    _, project_file, _ = https_project
    out = pymw_admin("deploy-app", "--project-file", str(project_file), "--bundles",
                     str(bundle_bed.up().root.parent), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    data = boinc_client.up()
    # the client trusts the system's CAs plus the test CA's root (its own bundle, in its dir)
    system = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    subprocess.run(["sudo", "-n", "-u", OWNER, "tee", str(data / "ca-bundle.crt")],
                   input=system + acme.issuing_roots(), text=True, check=True,
                   stdout=subprocess.DEVNULL)
    boinc_client.attach(MASTER_URL)
    script = write_script("https_squares.py", SQUARES)
    stop = threading.Event()
    kicker = threading.Thread(target=lambda: [boinc_client.update(MASTER_URL)
                                              for _ in iter(lambda: stop.wait(4.0), True)],
                              daemon=True)
    kicker.start()
    try:
        master = subprocess.run(
            ["sudo", "-n", "-u", OWNER, "-H", master_python, str(script), "-i", "boinc", "-p",
             str(PROJECT_DIR)], capture_output=True, text=True, timeout=400, cwd="/")
    finally:
        stop.set()
    assert master.returncode == 0, master.stderr[-2000:] + boinc_client.messages()[-2000:]
    assert "RESULTS [9, 16]" in master.stdout
    assert f"{MASTER_URL}" in boinc_client.boinccmd("--get_project_status").stdout


def test_a_given_certificate_keeps_working(https_project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vm, project_file, _ = https_project
    live = Path(f"/etc/letsencrypt/live/pymw-{NAME}")
    given = Path(f"/etc/ssl/pymw-{NAME}")  # root's, outside the owner's reach
    given.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(live / "fullchain.pem", given / "cert.pem")
    shutil.copy(live / "privkey.pem", given / "key.pem")
    out = _init(vm, project_file, "--https-cert", str(given / "cert.pem"), "--https-key",
                str(given / "key.pem"), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    changed = {s["step"] for s in json.loads(out.stdout)["steps"] if s["status"] == "changed"}
    assert "apache" in changed
    site = Path(f"/etc/apache2/sites-available/pymw-{NAME}.conf").read_text()
    assert f"SSLCertificateFile {given}/cert.pem" in site and "IfFile" not in site
    assert ("DNS", acme.VM_NAME) in _served_certificate()["subjectAltName"]
    assert not Path(f"/etc/cron.d/pymw-admin-certbot-{NAME}").exists()
    # and back to ACME: the certificate certbot holds is still good, so only Apache changes
    back = _init(vm, project_file, *_acme_flags(), "--json")
    assert back.returncode == 0, back.stderr + back.stdout
    changed = {s["step"] for s in json.loads(back.stdout)["steps"] if s["status"] == "changed"}
    assert changed == {"apache", "acme"}
