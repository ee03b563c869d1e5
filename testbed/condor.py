"""A real personal HTCondor pool on 127.0.0.1 for the condor interface's tests and benchmark.

Debian 13 ships ``htcondor``: there the pool runs on the host itself. Debian 12 has none, so the
pool runs inside a Debian 13 chroot: a private copy (``CACHE/condor-root``) of the shared
``rootfs.trixie()`` tree, kept separate so the shared tree stays a clean "no matching Python"
system for the bundle tests. The host side only talks to the pool over 127.0.0.1 with the Python
bindings, through a client configuration (``CACHE/condor-client/condor_config``) holding an
IDTOKEN; jobs are submitted in spool mode because the chroot cannot see the host's files.

``up()`` is idempotent: every stage leaves a marker, and when the master is already running it
returns at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.cache import CACHE, apt_install, cache_dir

UID_DOMAIN = "pymw.test"
USER = "pymw"  # the identity jobs run as on the pool (the submitter's token says so)
USER_UID = 2961  # fixed, so files keep their owner across rebuilds
NUM_CPUS = 4  # short tasks: more slots than the 2 cores keep the queue moving
CLIENT = CACHE / "condor-client"

_POOL_CONFIG = f"""\
# written by the pymw-admin testbed: a personal pool on 127.0.0.1
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:9618
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
use ROLE : CentralManager
use ROLE : Submit
use ROLE : Execute
DAEMON_LIST = MASTER, COLLECTOR, NEGOTIATOR, SCHEDD, STARTD
UID_DOMAIN = {UID_DOMAIN}
TRUST_UID_DOMAIN = True
SOFT_UID_DOMAIN = True
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
ALLOW_READ = *
ALLOW_WRITE = */127.0.0.1
ALLOW_ADMINISTRATOR = */127.0.0.1
ALLOW_DAEMON = */127.0.0.1
ALLOW_NEGOTIATOR = */127.0.0.1
ALLOW_CONFIG = */127.0.0.1
START = TRUE
SUSPEND = FALSE
PREEMPT = FALSE
# a vacated job (the master removed it) dies at once instead of holding its slot for minutes
KILL = TRUE
MachineMaxVacateTime = 2
WANT_SUSPEND = FALSE
WANT_VACATE = FALSE
CONTINUE = TRUE
NUM_CPUS = {NUM_CPUS}
# short intervals: a test pool should match and report jobs quickly
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
SCHEDD_MIN_INTERVAL = 1
UPDATE_INTERVAL = 2
STARTER_UPDATE_INTERVAL = 2
STARTD_CONTACT_TIMEOUT = 10
SHADOW_QUEUE_UPDATE_INTERVAL = 2
CLAIM_WORKLIFE = 3600
JOB_START_DELAY = 0
JOB_START_COUNT = 100
# the chroot's root is no mount point and there is no cgroup delegation here
BASE_CGROUP =
MOUNT_UNDER_SCRATCH =
USE_PID_NAMESPACES = False
DISCARD_SESSION_KEYRING_ON_STARTUP = False
"""


@dataclass
class Pool:
    root: Path  # "/" when the pool runs on the host
    condor_config: Path  # the host-side client configuration (CONDOR_CONFIG)
    user: str = USER

    def environ(self) -> dict[str, str]:
        return {"CONDOR_CONFIG": str(self.condor_config)}


def _on_host() -> bool:
    """Debian 13 or later has the htcondor package: run the pool on the host itself."""
    try:
        major = Path("/etc/debian_version").read_text().strip().split(".")[0]
        return major.isdigit() and int(major) >= 13
    except OSError:
        return False


def _root() -> Path:
    return Path("/") if _on_host() else CACHE / "condor-root"


def _in_root(root: Path, *cmd: str) -> list[str]:
    return list(cmd) if root == Path("/") else ["chroot", str(root), *cmd]


def _run(root: Path, *cmd: str, capture: bool = False) -> str:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
           "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        _in_root(root, *cmd), check=True, env=env, text=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
    )
    return result.stdout if capture else ""


def _marker(root: Path, stage: str) -> Path:
    # kept in the cache (not in the root): on a Debian 13 host the root is "/"
    return cache_dir("condor-stages") / f"{stage}{'-host' if root == Path('/') else ''}"


# --- the chroot ----------------------------------------------------------------------------------


def _make_root(root: Path) -> None:
    if root == Path("/") or (root / "etc/debian_version").exists():
        return
    from testbed import rootfs

    base = rootfs.trixie()
    work = root.with_name(root.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    # --one-file-system: never copy a proc or dev someone mounted in the shared tree
    subprocess.run(["cp", "-a", "--one-file-system", f"{base}/.", str(work)], check=True)
    work.rename(root)


def _mounted() -> set[str]:
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            points.add(line.split()[4].replace("\\040", " "))
    return points


def _mount(root: Path) -> None:
    if root == Path("/"):
        return
    mounted = _mounted()
    wanted = [
        ("proc", ["mount", "-t", "proc", "proc"]),
        ("sys", ["mount", "-t", "sysfs", "sysfs"]),
        ("dev", ["mount", "--rbind", "/dev"]),
    ]
    for name, cmd in wanted:
        target = root / name
        if str(target) in mounted:
            continue
        target.mkdir(exist_ok=True)
        subprocess.run([*cmd, str(target)], check=True)
        if name == "dev":
            # our unmount later must not reach the host's /dev, nor anything else: read-only,
            # so removing the cache while it is mounted (rm -rf) cannot delete the host's device
            # nodes through it (devices still read and write; pts and shm stay writable)
            subprocess.run(["mount", "--make-rslave", str(target)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)


def _unmount(root: Path) -> None:
    if root == Path("/"):
        return
    mounted = _mounted()
    for name in ("dev", "sys", "proc"):
        target = str(root / name)
        if any(p == target or p.startswith(target + "/") for p in mounted):
            subprocess.run(["umount", "-R", "-l", target], check=False)


def _install(root: Path) -> None:
    marker = _marker(root, "installed")
    if marker.exists():
        return
    if root == Path("/"):
        apt_install("htcondor")
    else:
        # keep the package's services from starting inside the chroot on their own
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        _run(root, "apt-get", "update", "-qq")
        _run(root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "htcondor")
    marker.write_text("htcondor\n")


def _pool_config_file(root: Path) -> Path:
    return root / "etc/condor/config.d/00-pymw-personal-pool.conf"


def _configured(root: Path) -> bool:
    config = _pool_config_file(root)
    return (_marker(root, "configured").exists() and config.exists()
            and config.read_text() == _POOL_CONFIG)


def _configure(root: Path) -> None:
    if _configured(root):
        return
    config = _pool_config_file(root)
    passwd = (root / "etc/passwd").read_text()
    if f"\n{USER}:" not in f"\n{passwd}":
        _run(root, "useradd", "--uid", str(USER_UID), "--create-home", "--shell", "/bin/sh", USER)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(_POOL_CONFIG)
    for rel, mode in [
        ("run/condor", 0o755),
        ("var/spool/condor", 0o755),
        ("var/lib/condor", 0o755),
        ("var/lib/condor/execute", 0o755),
        ("var/log/condor", 0o755),
        ("var/lock/condor", 0o755),
        ("etc/condor/passwords.d", 0o700),
        ("etc/condor/tokens.d", 0o700),
    ]:
        # made from inside the root: some of these paths are symlinks there (/var/lock)
        _run(root, "install", "-d", "-o", "condor", "-g", "condor", "-m", f"{mode:o}", f"/{rel}")
    # the pool signing key belongs to root
    _run(root, "chown", "root:root", "/etc/condor/passwords.d", "/etc/condor/tokens.d")
    _marker(root, "configured").write_text("configured\n")


# --- the daemons ---------------------------------------------------------------------------------


def _master_pid(root: Path) -> int | None:
    """The pid of this pool's condor_master, or None (checks the process, not just a pid file)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "condor_master":
                continue
            if Path(os.readlink(entry / "root")) == root:
                return int(entry.name)
        except OSError:
            continue
    return None


def _start(root: Path) -> None:
    if _master_pid(root) is not None:
        return
    _run(root, "/usr/sbin/condor_master")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # the collector writes the pool signing key on its first start; the schedd must be up
        out = subprocess.run(
            _in_root(root, "condor_status", "-schedd", "-af", "Name"),
            capture_output=True, text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        ).stdout
        if out.strip() and (root / "etc/condor/passwords.d/POOL").exists():
            return
        time.sleep(0.3)
    raise RuntimeError(f"condor_master started in {root} but no schedd appeared within 60 s")


def _client_config(root: Path) -> Path:
    tokens = CLIENT / "tokens.d"
    tokens.mkdir(parents=True, exist_ok=True)
    tokens.chmod(0o700)
    token = tokens / "pymw"
    key = root / "etc/condor/passwords.d/POOL"
    # a token made from an older signing key is useless: remake it when the key changed
    stamp = CLIENT / "pool-key-mtime"
    key_mtime = str(key.stat().st_mtime_ns)
    if not token.exists() or not stamp.exists() or stamp.read_text() != key_mtime:
        text = _run(root, "condor_token_create", "-identity", f"{USER}@{UID_DOMAIN}", capture=True)
        token.write_text(text.strip() + "\n")
        token.chmod(0o600)
        stamp.write_text(key_mtime)
    config = CLIENT / "condor_config"
    config.write_text(
        "# the host-side client of the testbed's personal pool\n"
        "COLLECTOR_HOST = 127.0.0.1:9618\n"
        "CONDOR_HOST = 127.0.0.1\n"
        "NETWORK_INTERFACE = 127.0.0.1\n"
        "ENABLE_IPV6 = False\n"
        f"UID_DOMAIN = {UID_DOMAIN}\n"
        "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS\n"
        f"SEC_TOKEN_DIRECTORY = {tokens}\n"
        f"LOG = {CLIENT / 'log'}\n"
    )
    (CLIENT / "log").mkdir(exist_ok=True)
    return config


def up() -> Pool:
    """Provision and start the pool (idempotent; about a millisecond when it already runs)."""
    root = _root()
    config = CLIENT / "condor_config"
    running = _master_pid(root) is not None
    if config.exists() and running and _configured(root):
        return Pool(root=root, condor_config=config)
    cache_dir()
    _make_root(root)
    _mount(root)
    _install(root)
    _configure(root)
    if running:  # the pool configuration changed under a running pool
        _run(root, "condor_reconfig")
    _start(root)
    return Pool(root=root, condor_config=_client_config(root))


def down() -> None:
    """Stop the daemons and unmount the chroot; what was built stays cached."""
    root = _root()
    pid = _master_pid(root)
    if pid is not None:
        subprocess.run(_in_root(root, "condor_off", "-master", "-fast"), check=False,
                       capture_output=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        deadline = time.monotonic() + 20
        while _master_pid(root) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        pid = _master_pid(root)
        if pid is not None:
            os.kill(pid, 15)
            time.sleep(2)
    # daemons that outlived their master would keep the mounts busy
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and root != Path("/"):
            try:
                if Path(os.readlink(entry / "root")) == root:
                    os.kill(int(entry.name), 9)
            except OSError:
                continue
    _unmount(root)


def status() -> str:
    root = _root()
    pid = _master_pid(root)
    where = "on the host" if root == Path("/") else f"in the chroot {root}"
    if pid is None:
        built = _marker(root, "configured").exists()
        return f"stopped ({'installed' if built else 'not installed'}) {where}"
    return f"running {where} (condor_master pid {pid}); CONDOR_CONFIG={CLIENT / 'condor_config'}"
