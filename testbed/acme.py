"""A local ACME server (Debian's ``pebble``) that issues certificates for the test host's name.

The test host "vm" gets a DNS name, :data:`VM_NAME`, by one line in /etc/hosts, so certbot on it,
pebble's validation (http-01 on port 80) and the BOINC client all reach it by that name. Pebble
listens on this machine's end of the vm's veth pair; its own TLS certificate is signed by a
testbed CA made here (:data:`CA_FILE`, what certbot on the vm is told to trust). The root that
signs issued certificates is pebble's own, new at every start: :func:`issuing_roots` fetches it
(the BOINC client's CA bundle needs it to attach over https).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from testbed import ssh_host
from testbed.cache import CACHE, apt_install

VM_NAME = "vm.pymw-admin.test"  # .test is reserved: it never means a real host
DIR = CACHE / "acme"
CA_FILE = DIR / "ca.pem"
PORT, MANAGEMENT_PORT = 14000, 15000
DIRECTORY_URL = f"https://{ssh_host.HOST_ADDR}:{PORT}/dir"
PID_FILE = DIR / "pebble.pid"
HOSTS_LINE = f"{ssh_host.VM_ADDR} {VM_NAME}"


def _answers() -> bool:
    try:
        with socket.create_connection((ssh_host.HOST_ADDR, PORT), timeout=0.5):
            return True
    except OSError:
        return False


def up() -> str:
    """Pebble runs and the vm's name resolves (idempotent); returns the directory URL."""
    ssh_host.up()
    _hosts_entry()
    if _answers():
        return DIRECTORY_URL
    apt_install("pebble", "certbot", "openssl")
    DIR.mkdir(parents=True, exist_ok=True)
    # pebble keeps its accounts in memory: certbot's account with an earlier pebble is unknown
    # to this one (certbot 2.1 then fails with "can't set attribute")
    shutil.rmtree(f"/etc/letsencrypt/accounts/{ssh_host.HOST_ADDR}:{PORT}", ignore_errors=True)
    _certificates()
    config = DIR / "pebble-config.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"{ssh_host.HOST_ADDR}:{PORT}",
        "managementListenAddress": f"127.0.0.1:{MANAGEMENT_PORT}",
        "certificate": str(DIR / "pebble.pem"), "privateKey": str(DIR / "pebble.key"),
        "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}))
    # no artificial sleeps and no deliberately rejected nonces: tests want speed, not chaos
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    log = open(DIR / "pebble.log", "ab")  # noqa: SIM115 (pebble keeps it)
    proc = subprocess.Popen(["pebble", "-config", str(config), "-strict=false"], env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    PID_FILE.write_text(f"{proc.pid}\n")
    for _ in range(100):
        if _answers():
            return DIRECTORY_URL
        if proc.poll() is not None:
            raise RuntimeError(f"pebble exited ({proc.returncode}); see {DIR}/pebble.log")
        time.sleep(0.1)
    raise RuntimeError("pebble does not answer")


def _hosts_entry() -> None:
    hosts = Path("/etc/hosts")
    if HOSTS_LINE not in hosts.read_text().splitlines():
        with hosts.open("a") as f:
            f.write(HOSTS_LINE + "\n")


def _certificates() -> None:
    """The testbed CA and pebble's listener certificate (for its address), made once."""
    if (DIR / "pebble.pem").exists() and CA_FILE.exists():
        return
    key = DIR / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "3650", "-subj",
                    "/CN=pymw-admin testbed ACME CA", "-keyout", str(key), "-out", str(CA_FILE)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=pebble", "-keyout", str(DIR / "pebble.key"),
                    "-out", str(DIR / "pebble.csr")], check=True, capture_output=True)
    (DIR / "san.ext").write_text(f"subjectAltName=IP:{ssh_host.HOST_ADDR},DNS:localhost\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(DIR / "pebble.csr"), "-CA",
                    str(CA_FILE), "-CAkey", str(key), "-CAcreateserial", "-days", "3650",
                    "-extfile", str(DIR / "san.ext"), "-out", str(DIR / "pebble.pem")],
                   check=True, capture_output=True)
    CA_FILE.chmod(0o644)


def issuing_roots() -> str:
    """PEM of the root(s) pebble signs certificates with (new at every pebble start)."""
    context = ssl.create_default_context(cafile=str(CA_FILE))
    context.check_hostname = False  # the management listener is on 127.0.0.1
    with urllib.request.urlopen(f"https://127.0.0.1:{MANAGEMENT_PORT}/roots/0",
                                context=context, timeout=10) as answer:
        return answer.read().decode()  # type: ignore[no-any-return]


def down() -> None:
    if not PID_FILE.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        os.killpg(int(PID_FILE.read_text().split()[0]), signal.SIGTERM)
    PID_FILE.unlink(missing_ok=True)


def status() -> str:
    return f"pebble at {DIRECTORY_URL} " + ("answers" if _answers() else "is down")
