"""The restore tests' second host "vm2": a real sshd with its own address, files and host name.

Like "vm" (testbed/ssh_host.py) it lives in a network namespace (10.201.7.2; this machine keeps
10.201.7.1), but its sshd also runs in mount, PID, IPC and UTS namespaces of its own: host name
``vm2``, and empty private trees over what a BOINC server keeps (/home, /run, /etc/pymw-admin,
/var/lib/mysql with a fresh MariaDB system database, /etc/apache2 as Debian's package left it
with no project's site, Apache's logs, crontabs, shared memory). Whatever provisioning starts over
SSH (MariaDB, Apache, cron, a project's daemons) runs in those namespaces, so vm2 holds none of
vm's projects, databases or sites, and a project restored there is a second, separate copy. It
shares this machine's programs (/usr), users (/etc/passwd) and caches, as a host made from the
same image would. Its login user and key are vm's; ``down()`` ends every process in its
namespaces, which takes the private trees with them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from testbed import ssh_host
from testbed.cache import CACHE

NETNS = "pymwadm2"
HOST_IF, VM_IF = "pymwadm20", "pymwadm21"
HOST_ADDR, VM_ADDR = "10.201.7.1", "10.201.7.2"
HOSTNAME = "vm2"
STATE = CACHE / "admin-vm2"
PID_FILE = STATE / "unshare.pid"  # its namespaces' parent, outside them
# empty trees of vm2's own; /etc/apache2 gets a copy of this machine's without projects' sites
PRIVATE = ("/home", "/etc/pymw-admin", "/var/lib/mysql", "/var/log/apache2",
           "/var/spool/cron/crontabs", "/var/lib/pymw-admin")


@dataclass(frozen=True)
class VM2:
    address: str
    host_name: str
    ssh_config: Path  # defines the alias "vm2"


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def _vm2() -> VM2:
    return VM2(VM_ADDR, HOSTNAME, STATE / "ssh_config")


def _sshd_pid() -> int | None:
    """vm2's first process (its sshd, PID 1 inside), as this machine numbers it."""
    try:
        parent = int(PID_FILE.read_text().split()[0])
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except (OSError, ValueError, IndexError):
        return None
    return int(children[0]) if children else None


def up() -> VM2:
    """Bring vm2 up (idempotent: at once when its sshd runs)."""
    vm = ssh_host.up()  # the login user, key and packages
    if _sshd_pid() is not None:
        return _vm2()
    _network()
    _hosts_entry()
    _apache_seed()
    _start(vm)
    return _vm2()


def _network() -> None:
    if NETNS not in _sh("ip", "netns", "list").stdout.split():
        _sh("ip", "netns", "add", NETNS)
    if _sh("ip", "link", "show", HOST_IF, check=False).returncode != 0:
        _sh("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", VM_IF)
        _sh("ip", "link", "set", VM_IF, "netns", NETNS)
        _sh("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", HOST_IF)
        _sh("ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{VM_ADDR}/24", "dev", VM_IF)
    _sh("ip", "link", "set", HOST_IF, "up")
    _sh("ip", "netns", "exec", NETNS, "ip", "link", "set", VM_IF, "up")
    _sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")


def _hosts_entry() -> None:
    """vm2's name resolves (sudo there looks its own host name up)."""
    hosts = Path("/etc/hosts")
    line = f"{VM_ADDR} {HOSTNAME}"
    if line not in hosts.read_text().splitlines():
        with hosts.open("a") as f:
            f.write(line + "\n")


def _apache_seed() -> None:
    """/etc/apache2 for vm2: this machine's, without any project's site or certbot hook."""
    seed = STATE / "etc-apache2"
    shutil.rmtree(seed, ignore_errors=True)
    STATE.mkdir(parents=True, exist_ok=True)
    shutil.copytree("/etc/apache2", seed, symlinks=True)
    for sub in ("sites-available", "sites-enabled", "conf-available", "conf-enabled"):
        for path in (seed / sub).glob("pymw-*"):
            path.unlink()


def _setup_script(vm: ssh_host.VM) -> str:
    user = vm.user
    lines = [
        "set -e", f"hostname {HOSTNAME}",
        *(f"mkdir -p {d} && mount -t tmpfs -o mode=755 tmpfs {d}" for d in PRIVATE),
        "mount -t tmpfs -o mode=755 tmpfs /run",
        "mkdir -p /run/sshd /run/lock /run/mysqld /run/apache2 && chmod 1777 /run/lock",
        "chown mysql:mysql /run/mysqld /var/lib/mysql",
        "chown root:adm /var/log/apache2 && chmod 750 /var/log/apache2",
        "chown root:crontab /var/spool/cron/crontabs && chmod 1730 /var/spool/cron/crontabs",
        f"mount --bind {STATE / 'etc-apache2'} /etc/apache2",
        f"mkdir -p /home/{user}/.ssh && cp {STATE / 'authorized_keys'} "
        f"/home/{user}/.ssh/authorized_keys && chmod 700 /home/{user}/.ssh && "
        f"chmod 600 /home/{user}/.ssh/authorized_keys && chown -R {user}: /home/{user}",
        "mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db "
        ">/run/mariadb-install.log 2>&1",
        # PID 1 of vm2: it reaps what daemons leave to it
        f"exec /usr/sbin/sshd -D -f {STATE / 'sshd_config'}",
    ]
    return "\n".join(lines)


def _start(vm: ssh_host.VM) -> None:
    shutil.copy(vm.key.with_suffix(".pub"), STATE / "authorized_keys")
    host_key = STATE / "ssh_host_ed25519_key"
    if not host_key.exists():
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    (STATE / "sshd_config").write_text(
        f"ListenAddress {VM_ADDR}\nPort 22\nHostKey {host_key}\nPidFile /run/sshd.pid\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nPermitRootLogin no\nAllowUsers {vm.user}\n"
        "Subsystem sftp internal-sftp\nStrictModes yes\nMaxSessions 50\nMaxStartups 50\n")
    (STATE / "ssh_config").write_text(
        f"Host {HOSTNAME}\n  HostName {VM_ADDR}\n  User {vm.user}\n  Port 22\n"
        f"  IdentityFile {vm.key}\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n")
    log = open(STATE / "sshd.log", "ab")  # noqa: SIM115 (sshd keeps it)
    # --mount-proc: vm2's /proc shows its own processes only (pgrep there finds its Apache)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", NETNS, "unshare", "--mount", "--ipc", "--uts", "--pid",
         "--fork", "--mount-proc", "--propagation", "private", "sh", "-c", _setup_script(vm)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    PID_FILE.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _sshd_pid() is not None and _answers():
            return
        time.sleep(0.2)
    raise RuntimeError(f"vm2's sshd does not answer on {VM_ADDR}:22; see {STATE}/sshd.log")


def _answers() -> bool:
    import socket

    try:
        with socket.create_connection((VM_ADDR, 22), timeout=0.5) as s:
            return s.recv(4).startswith(b"SSH")
    except OSError:
        return False


def run_in(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a command as root inside vm2 (its files, network and host name)."""
    pid = _sshd_pid()
    if pid is None:
        raise RuntimeError("vm2 is not up")
    return _sh("nsenter", f"--target={pid}", "--mount", "--net", "--uts", "--ipc", "--pid",
               *command, check=False)


def _in_namespace(pid: int, mount_ns: str) -> bool:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/mnt") == mount_ns
    return False


def down() -> None:
    """End every process in vm2's namespaces (its private trees go with the last of them)."""
    pid = _sshd_pid()
    if pid is None:
        return
    mount_ns = os.readlink(f"/proc/{pid}/ns/mnt")
    for _ in range(3):
        found = [int(p.name) for p in Path("/proc").iterdir()
                 if p.name.isdigit() and _in_namespace(int(p.name), mount_ns)]
        if not found:
            break
        for each in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        time.sleep(0.5)
    PID_FILE.unlink(missing_ok=True)


def status() -> str:
    return f"vm2's sshd on {VM_ADDR}:22 " + ("answers" if _answers() else "is down")
