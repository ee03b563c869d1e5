"""The admin tests' host "vm": a real sshd in its own network namespace, with its own address.

``ip netns`` + a veth pair give it 10.201.6.2 (this machine keeps 10.201.6.1); sshd runs inside with
its own config, host key and pid file, key-only auth and ``UsePAM no``. Users: ``pymwadm`` (has
passwordless sudo) and ``pymwnosudo`` (has none). The namespace shares this machine's file system,
so the Debian packages the BOINC server needs are installed here with apt, and whatever the
provisioning starts over SSH (MariaDB, Apache, cron, the project daemons) runs inside the namespace,
answering on the vm's address. Only the address made here is ever a target.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from testbed import netns
from testbed.cache import CACHE, apt_install, cache_dir

NETNS = "pymwadm"
HOST_IF, VM_IF = "pymwadm0", "pymwadm1"
HOST_ADDR, VM_ADDR = "10.201.6.1", "10.201.6.2"
SUDO_USER, NOSUDO_USER = "pymwadm", "pymwnosudo"
SSH_DIR = CACHE / "admin-vm"


@dataclass(frozen=True)
class VM:
    address: str
    port: int
    user: str
    nosudo_user: str
    key: Path
    wrong_key: Path
    ssh_config: Path  # defines the alias "vm"


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def _server_packages() -> tuple[str, ...]:
    from pymw_admin.admin.server.packages import server_packages

    return server_packages()


def _vm() -> VM:
    return VM(VM_ADDR, 22, SUDO_USER, NOSUDO_USER, SSH_DIR / "id_ed25519",
              SSH_DIR / "wrong_ed25519", SSH_DIR / "ssh_config")


def _answers(timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((VM_ADDR, 22), timeout=timeout) as s:
            return s.recv(4).startswith(b"SSH")
    except OSError:
        return False


def up() -> VM:
    """Bring the vm up (idempotent, about a second when it already runs)."""
    if _answers():
        return _vm()
    apt_install("openssh-server", "sudo", "iproute2", "openssl", *_server_packages())
    _network()
    _users()
    _sshd()
    return _vm()


def _network() -> None:
    netns.join(NETNS, HOST_IF, VM_IF, HOST_ADDR, VM_ADDR)


def _users() -> None:
    for user in (SUDO_USER, NOSUDO_USER):
        if _sh("id", user, check=False).returncode != 0:
            _sh("useradd", "-m", "-s", "/bin/bash", user)
        # sshd (UsePAM no) refuses a locked account: give it a random, unknown password
        hashed = _sh("openssl", "passwd", "-6", os.urandom(16).hex()).stdout.strip()
        _sh("usermod", "-p", hashed, user)
    sudoers = Path("/etc/sudoers.d/pymw-admin-testbed")
    if not sudoers.exists():
        sudoers.write_text(f"{SUDO_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    cache_dir("admin-vm")
    for name in ("id_ed25519", "wrong_ed25519"):
        if not (SSH_DIR / name).exists():
            _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pymw-admin-{name}",
                "-f", str(SSH_DIR / name))
    public = (SSH_DIR / "id_ed25519.pub").read_text()
    for user in (SUDO_USER, NOSUDO_USER):
        home = Path(f"/home/{user}")
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(public)
        (ssh / "authorized_keys").chmod(0o600)
        shutil.chown(ssh, user, user)
        shutil.chown(ssh / "authorized_keys", user, user)
    (SSH_DIR / "ssh_config").write_text(
        f"Host vm\n  HostName {VM_ADDR}\n  User {SUDO_USER}\n  Port 22\n"
        f"  IdentityFile {SSH_DIR / 'id_ed25519'}\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
    )


def _sshd() -> None:
    host_key = SSH_DIR / "ssh_host_ed25519_key"
    if not host_key.exists():
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    config = SSH_DIR / "sshd_config"
    config.write_text(
        f"ListenAddress {VM_ADDR}\nPort 22\nHostKey {host_key}\nPidFile {SSH_DIR / 'sshd.pid'}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nPermitRootLogin no\nAllowUsers {SUDO_USER} {NOSUDO_USER}\n"
        "Subsystem sftp internal-sftp\nStrictModes yes\nMaxSessions 50\nMaxStartups 50\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    _sh("ip", "netns", "exec", NETNS, "/usr/sbin/sshd", "-f", str(config))
    for _ in range(100):
        if _answers():
            return
        time.sleep(0.05)
    raise RuntimeError(f"the test host's sshd does not answer on {VM_ADDR}:22")


def down() -> None:
    """Stop the vm's sshd (users, keys and packages stay)."""
    pid_file = SSH_DIR / "sshd.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), 15)
        pid_file.unlink(missing_ok=True)


def status() -> str:
    return f"sshd on {VM_ADDR}:22 " + ("answers" if _answers() else "is down")


def run_in_vm(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a command as root inside the vm's namespace (for test set-up and clean-up)."""
    return _sh("ip", "netns", "exec", NETNS, *command, check=False)


def restart_project_daemons() -> None:
    """Start every project's daemons again after the test host's database was away: BOINC's
    own exit when it goes, and the projects' cron jobs would bring them back only minutes later,
    after the next test has met a project without them."""
    for config_xml in Path("/home").glob("*/projects/*/config.xml"):
        project = config_xml.parent
        owner = project.owner()
        # a daemon asleep when the database went exits only at its next query, maybe after
        # bin/start took it for running: every daemon goes first (they run in tmp_HOST)
        for daemons_dir in project.glob("tmp_*"):
            _kill_processes_in(daemons_dir)
        run_in_vm("sudo", "-n", "-u", owner, "sh", "-c",
                  f"cd {shlex.quote(str(project))} && bin/start >/dev/null 2>&1")
    # until each feeder runs: a client asking before then hears "feeder not running" and keeps
    # away from the project for an hour (boinc_client.forget_backoffs then calls it back)
    deadline = time.monotonic() + 30
    for config_xml in Path("/home").glob("*/projects/*/config.xml"):
        if "<cmd>feeder" not in config_xml.read_text(errors="replace"):
            continue
        while not any("feeder" in _processes_in(daemons_dir).values()
                      for daemons_dir in config_xml.parent.glob("tmp_*")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)


def as_user(user: str, script: str) -> None:
    """Run a shell script as ``user``: test set-up inside a home only that user may write (root
    creating files there would leave them, or the home itself, owned by root)."""
    proc = subprocess.run(["sudo", "-n", "-u", user, "-H", "sh", "-c", script], cwd="/",
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"as {user}: {script!r} failed: {proc.stderr.strip()}")


def _processes_in(directory: Path) -> dict[int, str]:
    """The processes (pid: name) whose working directory is ``directory`` or below."""
    inside = str(directory) + "/"
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (os.readlink(proc / "cwd") + "/").startswith(inside):
                found[int(proc.name)] = (proc / "comm").read_text().strip()
        except OSError:
            continue
    return found


def _kill_processes_in(directory: Path) -> None:
    """SIGKILL whatever still runs in the project: daemons 1.6.2's bin/stop did not wait for,
    master scripts of runs. Found by working directory, so other projects' processes stay."""
    for pid in _processes_in(directory):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _shmem_key(project: Path) -> str:
    try:
        text = (project / "config.xml").read_text()
    except OSError:
        return ""
    match = re.search(r"<shmem_key>\s*(0x[0-9a-fA-F]+|[0-9]+)\s*</shmem_key>", text)
    return match.group(1) if match else ""


def forget_project(name: str, owner: str = "boincadm") -> None:
    """Remove every trace of a project init-project made on the vm (test clean-up, as root)."""
    project = Path(f"/home/{owner}/projects/{name}")
    if (project / "bin" / "stop").exists():
        run_in_vm("sudo", "-u", owner, "-H", "sh", "-c",
                  f"cd {project} && PATH=/usr/sbin:/usr/bin:/sbin:/bin bin/stop")
    key = _shmem_key(project)
    _kill_processes_in(project)
    # the feeder leaves shared memory behind after bin/stop: remove this project's segment only
    # (the owner's other projects keep theirs, or their schedulers say "feeder not running")
    if key:
        _sh("ipcrm", "-M", key, check=False)
    if Path(f"/var/lib/mysql/{name}").exists() and _sh("mysql", "-e", "SELECT 1",
                                                       check=False).returncode != 0:
        run_in_vm("service", "mariadb", "start")  # a database can only be dropped by its server
    _sh("mysql", "-e", f"DROP DATABASE IF EXISTS `{name}`; DROP USER IF EXISTS "
        f"'{name}'@'localhost';", check=False)
    shutil.rmtree(project, ignore_errors=True)
    shutil.rmtree(f"/etc/pymw-admin/{name}", ignore_errors=True)
    site = Path(f"/etc/apache2/sites-enabled/pymw-{name}.conf")
    if site.exists() or site.is_symlink():
        site.unlink()
        Path(f"/etc/apache2/sites-available/pymw-{name}.conf").unlink(missing_ok=True)
        run_in_vm("apache2ctl", "graceful")
    tab = _sh("crontab", "-l", "-u", owner, check=False).stdout
    kept = [line for line in tab.splitlines() if f"/projects/{name}/bin/start" not in line]
    if kept != tab.splitlines():
        subprocess.run(["crontab", "-u", owner, "-"], input="\n".join(kept) + "\n", text=True,
                       check=False)
