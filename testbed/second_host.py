"""More test hosts, "vm2" and "vm3": real sshds with their own addresses, files and host names.

Like "vm" (testbed/ssh_host.py) each lives in a network namespace (vmN at 10.201.(5+N).2; this
machine keeps .1), but its sshd also runs in mount, PID, IPC and UTS namespaces of its own: host
name ``vmN``, and empty private trees over what a BOINC server keeps (/home, /run,
/etc/pymw-admin, /var/lib/mysql with a fresh MariaDB system database, /etc/apache2 as this
machine's without any project's site, Apache's logs, crontabs, shared memory, processes).
Whatever provisioning starts over SSH (MariaDB, Apache, cron, a project's daemons) runs in those
namespaces, so such a host holds none of vm's (or the other's) projects, databases, sites or
processes: a project restored there is a separate copy. It shares this machine's programs
(/usr), users (/etc/passwd) and caches, as a host made from the same image would. Its login user
and key are vm's; ``down()`` ends every process in its namespaces, and the private trees go with
them. ``up()``/``down()``/``status()`` without an index are vm2's (the testbed's engine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from testbed import netns, ssh_host
from testbed.cache import CACHE

# empty trees of the host's own; /etc/apache2 gets a copy of this machine's without projects
PRIVATE = ("/home", "/etc/pymw-admin", "/var/lib/mysql", "/var/log/apache2",
           "/var/spool/cron/crontabs", "/var/lib/pymw-admin")


@dataclass(frozen=True)
class Spare:
    """Test host vmN (N = 2, 3, ...)."""

    index: int

    @property
    def netns(self) -> str:
        return f"pymwadm{self.index}"

    @property
    def host_if(self) -> str:
        return f"pymwadm{self.index}0"

    @property
    def vm_if(self) -> str:
        return f"pymwadm{self.index}1"

    @property
    def host_addr(self) -> str:
        return f"10.201.{5 + self.index}.1"

    @property
    def address(self) -> str:
        return f"10.201.{5 + self.index}.2"

    @property
    def host_name(self) -> str:
        return f"vm{self.index}"

    @property
    def state(self) -> Path:
        return CACHE / f"admin-vm{self.index}"

    @property
    def ssh_config(self) -> Path:
        """Defines the alias vmN."""
        return self.state / "ssh_config"

    @property
    def pid_file(self) -> Path:
        return self.state / "unshare.pid"  # its namespaces' parent, outside them


VM2 = Spare  # the type the fixtures and the benchmark name
SECOND = Spare(2)
HOSTNAME, HOST_ADDR, VM_ADDR = SECOND.host_name, SECOND.host_addr, SECOND.address


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def _first_pid(spare: Spare) -> int | None:
    """The host's first process (its sshd, PID 1 inside), as this machine numbers it."""
    try:
        parent = int(spare.pid_file.read_text().split()[0])
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except (OSError, ValueError, IndexError):
        return None
    return int(children[0]) if children else None


def up(index: int = 2) -> Spare:
    """Bring vmN up (idempotent: at once when its sshd runs)."""
    spare = Spare(index)
    vm = ssh_host.up()  # the login user, key and packages
    if _first_pid(spare) is not None and _answers(spare):
        return spare
    _network(spare)
    _hosts_entry(spare)
    _apache_seed(spare)
    _start(spare, vm)
    return spare


def _network(spare: Spare) -> None:
    netns.join(spare.netns, spare.host_if, spare.vm_if, spare.host_addr, spare.address)


def _hosts_entry(spare: Spare) -> None:
    """The host's name resolves (sudo there looks its own host name up)."""
    hosts = Path("/etc/hosts")
    line = f"{spare.address} {spare.host_name}"
    if line not in hosts.read_text().splitlines():
        with hosts.open("a") as f:
            f.write(line + "\n")


def _apache_seed(spare: Spare) -> None:
    """/etc/apache2 for the host: this machine's, without any project's site or certbot hook."""
    seed = spare.state / "etc-apache2"
    shutil.rmtree(seed, ignore_errors=True)
    spare.state.mkdir(parents=True, exist_ok=True)
    shutil.copytree("/etc/apache2", seed, symlinks=True)
    for sub in ("sites-available", "sites-enabled", "conf-available", "conf-enabled"):
        for path in (seed / sub).glob("pymw-*"):
            path.unlink()


def _setup_script(spare: Spare, vm: ssh_host.VM) -> str:
    user, state = vm.user, spare.state
    lines = [
        "set -e", f"hostname {spare.host_name}",
        *(f"mkdir -p {d} && mount -t tmpfs -o mode=755 tmpfs {d}" for d in PRIVATE),
        "mount -t tmpfs -o mode=755 tmpfs /run",
        "mkdir -p /run/sshd /run/lock /run/mysqld /run/apache2 && chmod 1777 /run/lock",
        "chown mysql:mysql /run/mysqld /var/lib/mysql",
        "chown root:adm /var/log/apache2 && chmod 750 /var/log/apache2",
        "chown root:crontab /var/spool/cron/crontabs && chmod 1730 /var/spool/cron/crontabs",
        f"mount --bind {state / 'etc-apache2'} /etc/apache2",
        f"mkdir -p /home/{user}/.ssh && cp {state / 'authorized_keys'} "
        f"/home/{user}/.ssh/authorized_keys && chmod 700 /home/{user}/.ssh && "
        f"chmod 600 /home/{user}/.ssh/authorized_keys && chown -R {user}: /home/{user}",
        "mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db "
        ">/run/mariadb-install.log 2>&1",
        # PID 1 of the host: it reaps what daemons leave to it
        f"exec /usr/sbin/sshd -D -f {state / 'sshd_config'}",
    ]
    return "\n".join(lines)


def _start(spare: Spare, vm: ssh_host.VM) -> None:
    state = spare.state
    shutil.copy(vm.key.with_suffix(".pub"), state / "authorized_keys")
    host_key = state / "ssh_host_ed25519_key"
    if not host_key.exists():
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    (state / "sshd_config").write_text(
        f"ListenAddress {spare.address}\nPort 22\nHostKey {host_key}\nPidFile /run/sshd.pid\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nPermitRootLogin no\nAllowUsers {vm.user}\n"
        "Subsystem sftp internal-sftp\nStrictModes yes\nMaxSessions 50\nMaxStartups 50\n")
    spare.ssh_config.write_text(
        f"Host {spare.host_name}\n  HostName {spare.address}\n  User {vm.user}\n  Port 22\n"
        f"  IdentityFile {vm.key}\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n")
    log = open(state / "sshd.log", "ab")  # noqa: SIM115 (sshd keeps it)
    # --mount-proc: the host's /proc shows its own processes only (pgrep finds its Apache)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", spare.netns, "unshare", "--mount", "--ipc", "--uts", "--pid",
         "--fork", "--mount-proc", "--propagation", "private", "sh", "-c",
         _setup_script(spare, vm)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    spare.pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _first_pid(spare) is not None and _answers(spare):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{spare.host_name}'s sshd does not answer on {spare.address}:22; see "
                       f"{state}/sshd.log")


def _answers(spare: Spare) -> bool:
    try:
        with socket.create_connection((spare.address, 22), timeout=0.5) as s:
            return s.recv(4).startswith(b"SSH")
    except OSError:
        return False


def run_in(*command: str, index: int = 2) -> subprocess.CompletedProcess[str]:
    """Run a command as root inside vmN (its files, processes, network and host name)."""
    pid = _first_pid(Spare(index))
    if pid is None:
        raise RuntimeError(f"vm{index} is not up")
    return _sh("nsenter", f"--target={pid}", "--mount", "--net", "--uts", "--ipc", "--pid",
               *command, check=False)


def _in_namespace(pid: int, mount_ns: str) -> bool:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/mnt") == mount_ns
    return False


def down(index: int = 2) -> None:
    """End every process in vmN's namespaces (its private trees go with the last of them)."""
    spare = Spare(index)
    pid = _first_pid(spare)
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
    spare.pid_file.unlink(missing_ok=True)


def status(index: int = 2) -> str:
    spare = Spare(index)
    return (f"{spare.host_name}'s sshd on {spare.address}:22 "
            + ("answers" if _answers(spare) else "is down"))
