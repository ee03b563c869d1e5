"""Master scripts run on the project's server, detached, started from the admin's machine.

On the server a run is one directory, ``PROJECT/pymw/runs/ID/`` (ID = 1, 2, 3 ...), owned by the
project's owner:

    SCRIPT.py, local modules, data files   uploaded; the run's working directory
    run.sh        the wrapper: records pid, start, end and exit status around the script
    meta.json     who started what: script, args, local modules, data files, pymw-admin version
    script_name   the script's file name (read by the listing's shell loop)
    pid           the wrapper's pid = the run's process group and session id (setsid)
    master_pid    the master script's own pid (the wrapper's child)
    started       start time (epoch seconds); ``ended`` and ``exit`` when it is over
    log           stdout and stderr, merged, unbuffered
    stopped       present when ``pymw-admin stop`` ended it

The script runs as the owner with the Python of a venv under the owner's home
(``~OWNER/.pymw-admin/venv``) holding this very pymw-admin version, built here as a wheel and
installed there; it is rebuilt and reinstalled only when the package's sources change. The
environment gives the script ``-i boinc -p PROJECT`` as defaults (PYMW_INTERFACE,
PYMW_PROJECT_HOME), which its own switches override.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pymw_admin
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server.project import SYSTEM_PATH
from pymw_admin.admin.target import ProjectTarget
from pymw_admin.errors import PymwError, RemoteError, UsageError
from pymw_admin.sources import digest, package_files

RUN_FILES = ("pid", "master_pid", "started", "ended", "exit", "stopped", "log", "run.sh",
             "meta.json", "script_name")
STOP_GRACE = 10.0
FIELD_SEP = "\x1f"  # the listing's field separator: never in a run's file names or numbers


# -- what a run is --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    id: str
    script: str
    pid: int | None  # the master's own process
    alive: bool  # some process of the run's process group is alive
    exit_code: int | None
    started: float | None
    ended: float | None
    stopped: bool
    pgid: int | None = None  # the run's process group (the wrapper's pid): what stop signals

    @property
    def state(self) -> str:
        """running, exited(N), killed (stopped by us), or lost (gone without an exit status)."""
        if self.exit_code is None:
            if self.alive:
                return "running"
            return "killed" if self.stopped else "lost"
        if self.stopped:
            return "killed"
        return f"exited({self.exit_code})"

    @property
    def running(self) -> bool:
        return self.state == "running"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["state"] = self.state
        return data


def runs_dir(target: ProjectTarget) -> str:
    return f"{target.project_dir}/pymw/runs"


def venv_dir(target: ProjectTarget) -> str:
    return f"{target.home}/.pymw-admin/venv"


def check_run_id(run_id: str) -> str:
    if not run_id.isdigit() or run_id.startswith("0"):
        raise UsageError(f"invalid run id {run_id!r}: run ids are whole numbers (see `runs`)")
    return run_id


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_listing(text: str) -> list[RunInfo]:
    """Parse what :func:`listing_command` prints: one line a run, FIELD_SEP between fields."""
    runs = []
    for line in text.splitlines():
        parts = line.split(FIELD_SEP)
        if len(parts) != 9 or not parts[0].isdigit():
            continue
        run_id, pgid, master, alive, exit_code, started, ended, stopped, script = parts
        code = _number(exit_code.strip())
        group = int(pgid) if pgid.strip().isdigit() else None
        runs.append(RunInfo(
            id=run_id, script=script.strip(),
            pid=int(master) if master.strip().isdigit() else group,
            alive=alive == "1", exit_code=None if code is None else int(code),
            started=_number(started.strip()), ended=_number(ended.strip()), stopped=stopped == "1",
            pgid=group,
        ))
    return sorted(runs, key=lambda r: int(r.id))


def listing_command(target: ProjectTarget, run_id: str | None = None) -> str:
    """A shell loop printing every run's (or one run's) files as one line."""
    sep = FIELD_SEP
    pattern = shlex.quote(run_id) if run_id else "*"
    return (
        f"cd {shlex.quote(runs_dir(target))} 2>/dev/null || exit 0; "
        f"for d in {pattern}; do [ -f \"$d/run.sh\" ] || continue; "
        'pid=$(cat "$d/pid" 2>/dev/null); alive=0; '
        # the group, not the wrapper: a master whose wrapper was killed still runs
        '[ -n "$pid" ] && kill -0 -"$pid" 2>/dev/null && alive=1; '
        f"printf '%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s\\n' \"$d\" \"$pid\" "
        '"$(cat "$d/master_pid" 2>/dev/null)" '
        '"$alive" "$(cat "$d/exit" 2>/dev/null)" "$(cat "$d/started" 2>/dev/null)" '
        '"$(cat "$d/ended" 2>/dev/null)" "$(test -e "$d/stopped" && echo 1)" '
        '"$(cat "$d/script_name" 2>/dev/null)"; done'
    )


def list_runs(host: Host, target: ProjectTarget) -> list[RunInfo]:
    return parse_listing(host.sudo(listing_command(target), what="listing the runs").stdout)


def get_run(host: Host, target: ProjectTarget, run_id: str) -> RunInfo:
    check_run_id(run_id)
    found = parse_listing(host.sudo(listing_command(target, run_id),
                                    what=f"reading run {run_id}").stdout)
    if not found:
        raise UsageError(f"no run {run_id} in project {target.name} on {host.name} "
                         "(see `pymw-admin runs`)")
    return found[0]


# -- what a run needs from the admin's machine ---------------------------------------------------
def _imported_names(source: str, filename: str) -> set[str]:
    """Top-level names a file imports (absolute imports only: a script is not in a package)."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise UsageError(f"{filename} is not valid Python: {exc.msg} (line {exc.lineno})") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def local_modules(script: Path) -> list[Path]:
    """Modules and packages next to the script that it imports, directly or through each other.

    Returned relative to the script's directory: ``helper.py`` or a package's files
    (``pkg/__init__.py``, ``pkg/sub.py`` ...). Stdlib and installed modules are left to the server.
    """
    base = script.resolve().parent
    found: dict[str, list[Path]] = {}
    pending = [script.resolve()]
    while pending:
        path = pending.pop()
        for name in sorted(_imported_names(path.read_text(errors="replace"), str(path))):
            if name in found:
                continue
            module, package = base / f"{name}.py", base / name / "__init__.py"
            if module.is_file() and module.resolve() != script.resolve():
                found[name] = [module]
            elif package.is_file():
                found[name] = sorted(p for p in (base / name).rglob("*.py")
                                     if "__pycache__" not in p.parts)
            else:
                continue
            pending.extend(found[name])
    return sorted({p.relative_to(base) for files in found.values() for p in files})


def data_placement(script: Path, data: Iterable[Path]) -> list[tuple[Path, str]]:
    """(local path, name in the run directory) for each data file or directory.

    A file under the script's directory keeps its relative path there (so ``data/x.csv`` next to
    the script stays ``data/x.csv``); anything else goes to the top under its own name.
    """
    base = script.resolve().parent
    placed: dict[str, Path] = {}
    for item in data:
        path = Path(item)
        if not path.exists():
            raise UsageError(f"no such data file: {item}")
        real = path.resolve()
        name = str(real.relative_to(base)) if real.is_relative_to(base) else real.name
        if name in placed and placed[name] != real:
            raise UsageError(f"two data files would both be {name!r} in the run directory")
        placed[name] = real
    return sorted(((p, n) for n, p in placed.items()), key=lambda pn: pn[1])


def run_script(script_name: str, args: list[str], python: str, project_dir: str) -> str:
    """The wrapper run.sh: its pid is the run's process group; it records how the script ended.

    The script runs as its child (its pid in ``master_pid``); the wrapper waits for it until it
    is really gone, also when a TERM (``stop``) interrupts the wait, and records its exit status.
    """
    argv = " ".join(shlex.quote(a) for a in [python, "-u", script_name, *args])
    return (
        "#!/bin/sh\n# a pymw-admin run: started detached (setsid), so it outlives the ssh session\n"
        'cd "$(dirname "$0")" || exit 1\n'
        "echo $$ > pid.tmp && mv pid.tmp pid\n"
        "date +%s > started\n"
        "trap 'echo TERM >> signalled' TERM\n"
        f"PATH={shlex.quote(str(Path(python).parent))}:{SYSTEM_PATH}\n"
        f"PYMW_INTERFACE=boinc PYMW_PROJECT_HOME={shlex.quote(project_dir)} PYTHONUNBUFFERED=1 "
        f"PATH=$PATH {argv} > log 2>&1 < /dev/null &\n"
        "child=$!\n"
        "echo $child > master_pid.tmp && mv master_pid.tmp master_pid\n"
        # a trapped TERM ends `wait` early: wait again while the script cleans up
        'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done\n'
        'wait "$child" 2>/dev/null; again=$?; [ "$again" -ne 127 ] && code=$again\n'
        "date +%s > ended\n"
        "echo $code > exit.tmp && mv exit.tmp exit\n"
    )


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


@dataclass
class RunPlan:
    """Everything a run uploads, decided on the admin's machine."""

    script: Path
    args: list[str]
    modules: list[Path] = field(default_factory=list)
    data: list[tuple[Path, str]] = field(default_factory=list)

    @classmethod
    def make(cls, script: str | Path, args: Iterable[str] = (),
             data: Iterable[str | Path] = ()) -> RunPlan:
        path = Path(script)
        if not path.is_file():
            raise UsageError(f"no such script: {script}")
        return cls(path, list(args), local_modules(path),
                   data_placement(path, [Path(d) for d in data]))

    def tarball(self, python: str, project_dir: str) -> bytes:
        base = self.script.resolve().parent
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            _add(tar, self.script.name, self.script.read_bytes())
            for module in self.modules:
                _add(tar, str(module), (base / module).read_bytes())
            for local, name in self.data:
                tar.add(str(local), arcname=name, recursive=True,
                        filter=lambda t: None if "__pycache__" in t.name else t)
            _add(tar, "run.sh", run_script(self.script.name, self.args, python,
                                           project_dir).encode(), 0o755)
            _add(tar, "script_name", self.script.name.encode() + b"\n")
            meta = {"script": self.script.name, "args": self.args,
                    "modules": [str(m) for m in self.modules],
                    "data": [name for _, name in self.data],
                    "pymw_admin": pymw_admin.__version__}
            _add(tar, "meta.json", json.dumps(meta, indent=1).encode())
        return buf.getvalue()


# -- the server's Python environment --------------------------------------------------------------
def source_root() -> Path | None:
    """The source tree this pymw-admin runs from (an editable or source install), if any."""
    root = Path(pymw_admin.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def source_hash(root: Path) -> str:
    """A digest of the package's sources: the server's venv is reinstalled when it changes."""
    files = [root / "pyproject.toml", *package_files(root / "pymw_admin", "*")]
    return digest(((str(p.relative_to(root)), p) for p in files), length=16)


def local_wheel(root: Path, digest: str, cache: Path | None = None) -> Path:
    """This package as a wheel, built once per source digest (cached on the admin's machine)."""
    cache = cache or Path.home() / ".cache" / "pymw-admin" / "wheels"
    out = cache / digest
    wheels = sorted(out.glob("pymw_admin-*.whl"))
    if wheels:
        return wheels[0]
    with tempfile.TemporaryDirectory(prefix="pymw-wheel-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", tmp,
             str(root)], capture_output=True, text=True,
        )
        built = sorted(Path(tmp).glob("pymw_admin-*.whl"))
        if proc.returncode != 0 or not built:
            last = (proc.stderr.strip().splitlines() or ["no wheel was made"])[-1]
            raise PymwError(f"cannot build the pymw-admin wheel to install on the server: {last}")
        out.mkdir(parents=True, exist_ok=True)
        target = out / built[0].name
        target.write_bytes(built[0].read_bytes())
    return target


@dataclass(frozen=True)
class ServerPython:
    """The server's python3, for choosing wheels it can install."""

    major: int
    minor: int
    machine: str
    libc: str  # "glibc" or ""
    libc_version: str

    @classmethod
    def parse(cls, text: str) -> ServerPython:
        parts = text.split()
        if len(parts) < 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            raise RemoteError(f"cannot read the server's Python version from {text.strip()!r}")
        libc, version = (parts[3], parts[4]) if len(parts) >= 5 else ("", "")
        return cls(int(parts[0]), int(parts[1]), parts[2], libc, version)

    @property
    def tag(self) -> str:
        return f"cp{self.major}{self.minor}-{self.machine}-{self.libc}{self.libc_version}"

    def pip_platform_args(self) -> list[str]:
        """``pip download`` switches for binary wheels this interpreter can install."""
        args = ["--only-binary=:all:", "--python-version", f"{self.major}.{self.minor}",
                "--implementation", "cp", "--abi", f"cp{self.major}{self.minor}",
                "--abi", "abi3", "--abi", "none"]
        platforms = [f"linux_{self.machine}"]
        if self.libc == "glibc" and self.libc_version.count(".") >= 1:
            top = int(self.libc_version.split(".")[1])
            platforms += [f"manylinux_2_{m}_{self.machine}" for m in range(top, 4, -1)]
            platforms += [f"manylinux{alias}_{self.machine}" for alias in ("2014", "2010", "1")]
        for platform in platforms:
            args += ["--platform", platform]
        return args


_PYTHON_FACTS = ("python3 -c 'import sys, platform; print(sys.version_info[0], sys.version_info[1],"
                 " platform.machine(), *platform.libc_ver())'")


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode()
    return sorted(line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("Requires-Dist:") and "extra ==" not in line)


def wheelhouse(wheel: Path, server: ServerPython, cache: Path | None = None) -> Path:
    """The wheel's dependencies for the server's Python, downloaded here once per requirement set.

    The server needs no package index: everything it installs comes over the SSH connection.
    """
    cache = cache or Path.home() / ".cache" / "pymw-admin" / "wheelhouse"
    requirements = _requirements(wheel)
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    out = cache / f"{server.tag}-{key}"
    if (out / ".complete").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--dest", str(out), *server.pip_platform_args(), *requirements],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
        last = (errors or proc.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise PymwError(f"cannot fetch pymw-admin's dependencies for the server "
                        f"(Python {server.major}.{server.minor}, {server.machine}): {last}")
    (out / ".complete").write_text("")
    return out


def _tar_wheels(wheels: Iterable[Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in wheels:
            tar.add(str(path), arcname=path.name)
    return buf.getvalue()


def ensure_environment(host: Host, target: ProjectTarget,
                       log: Callable[[str], None] = lambda _m: None) -> str:
    """A venv on the server with this pymw-admin version; returns its python. Idempotent.

    From a source tree: a wheel built here plus its dependencies' wheels, shipped over SSH and
    installed with ``--no-index``. From a released install: ``pip install pymw-admin==VERSION``
    on the server, which then needs a package index.
    """
    venv = venv_dir(target)
    python = f"{venv}/bin/python"
    root = source_root()
    stamp_value = source_hash(root) if root else f"release-{pymw_admin.__version__}"
    qvenv, qd = shlex.quote(venv), shlex.quote(venv + ".d")
    current = host.run(f"cat {qvenv}/pymw-admin.stamp 2>/dev/null; "
                       f"test -x {qvenv}/bin/python && echo @python", user=target.owner,
                       check=False).stdout.split()
    if stamp_value in current and "@python" in current:
        return python
    if not host.run("python3 -c 'import venv, ensurepip'", check=False).ok:
        log("installing python3-venv on the server")
        host.sudo("DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv",
                  what="apt-get install python3-venv", timeout=600)
    pip = "bin/python -m pip install -q --disable-pip-version-check"
    if root:
        log("building the pymw-admin wheel")
        wheel = local_wheel(root, stamp_value)
        server = ServerPython.parse(host.run(_PYTHON_FACTS, what="python3 on the server").stdout)
        log(f"fetching dependencies for the server's Python {server.major}.{server.minor}")
        house = wheelhouse(wheel, server)
        payload: bytes | None = _tar_wheels([wheel, *sorted(house.glob("*.whl"))])
        wheels = f"{qd}/wheels"
        want = f"{wheels}/{shlex.quote(wheel.name)}"
        install = (f"rm -rf {wheels}; mkdir -p {wheels}; tar -xf - -C {wheels}; "
                   f"{pip} --no-index --find-links {wheels} {want}; "
                   # same version number, new code: force the package itself, keep the rest
                   f"{pip} --no-index --force-reinstall --no-deps {want}; ")
    else:
        payload = None
        want = shlex.quote(f"pymw-admin=={pymw_admin.__version__}")
        install = f"{pip} {want}; "
    log(f"installing pymw-admin into {venv}")
    # flock: runs started side by side share the venv; one installs, the others wait
    script = (
        f"set -e; mkdir -p {qd}; exec 9> {qd}/lock; flock 9; "
        f"test -x {qvenv}/bin/python || python3 -m venv {qvenv}; cd {qvenv}; {install}"
        f"echo {shlex.quote(stamp_value)} > pymw-admin.stamp"
    )
    host.run(script, user=target.owner, stdin=payload, timeout=900,
             what=f"installing pymw-admin into {venv}")
    return python


# -- starting, following, stopping ----------------------------------------------------------------
def check_project(host: Host, target: ProjectTarget) -> None:
    if not host.exists(f"{target.project_dir}/config.xml"):
        raise UsageError(f"no project at {target.project_dir} on {host.name} (no config.xml): "
                         "check the project file, or run `pymw-admin init-project`")


def start(host: Host, target: ProjectTarget, plan: RunPlan, python: str) -> str:
    """Upload the run's files into a new run directory and start it detached; return its id."""
    runs = shlex.quote(runs_dir(target))
    script = (
        f"set -e; umask 027; mkdir -p {runs}; cd {runs}; "
        "n=$(ls | grep -E '^[0-9]+$' | sort -n | tail -n 1); n=$((${n:-0} + 1)); "
        'while ! mkdir "$n" 2>/dev/null; do n=$((n + 1)); done; '
        'tar -xzf - -C "$n"; cd "$n"; '
        "setsid nohup sh ./run.sh > /dev/null 2>&1 < /dev/null & "
        "i=0; while [ ! -s master_pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done; "
        'echo "@run $n"'
    )
    out = host.run(script, user=target.owner, stdin=plan.tarball(python, target.project_dir),
                   what="starting the run", timeout=120).stdout
    for line in out.splitlines():
        if line.startswith("@run "):
            return line.split()[1]
    raise RemoteError(f"{host.name}: the run did not report its id: {out.strip()[-200:]}")


def follow(host: Host, target: ProjectTarget, run_id: str,
           write: Callable[[bytes], object]) -> RunInfo:
    """Stream the run's log from the start until the run ends; return how it ended.

    Ctrl-C (KeyboardInterrupt) or a lost connection ends only the following, never the run.
    """
    info = get_run(host, target, run_id)
    log = shlex.quote(f"{runs_dir(target)}/{run_id}/log")
    if info.running and info.pid:
        command = f"touch {log}; exec tail -n +1 -f --pid={info.pid} {log}"
    else:
        command = f"cat {log} 2>/dev/null; true"
    host.stream(command, write, user=target.owner)
    final = get_run(host, target, run_id)
    # tail leaves when the wrapper is gone; its exit file may land a moment later
    for _ in range(20):
        if final.exit_code is not None or final.alive:
            break
        time.sleep(0.1)
        final = get_run(host, target, run_id)
    return final


def read_log(host: Host, target: ProjectTarget, run_id: str, tail: int | None = None) -> str:
    get_run(host, target, run_id)
    log = shlex.quote(f"{runs_dir(target)}/{run_id}/log")
    command = f"tail -n {int(tail)} {log}" if tail else f"cat {log}"
    return host.sudo(f"{command} 2>/dev/null; true", what=f"reading run {run_id}'s log").stdout


def stop(host: Host, target: ProjectTarget, run_id: str, grace: float = STOP_GRACE) -> RunInfo:
    """TERM the run's process group, KILL it after ``grace`` seconds; record it as killed."""
    info = get_run(host, target, run_id)
    if not info.running or not info.pgid:
        return info
    d = shlex.quote(f"{runs_dir(target)}/{run_id}")
    steps = max(1, int(grace * 10))
    script = (
        # the whole group, wrapper or not: dash's kill takes no "--", a negative pid right
        # after the signal names the group
        f"cd {d}; touch stopped; pid=$(cat pid); kill -TERM -$pid 2>/dev/null; i=0; "
        f'while kill -0 -"$pid" 2>/dev/null && [ $i -lt {steps} ]; do sleep 0.1; '
        'i=$((i + 1)); done; if kill -0 -"$pid" 2>/dev/null; then kill -KILL -$pid; sleep 0.2; '
        'fi; if kill -0 -"$pid" 2>/dev/null; then echo "@alive $pid"; exit 1; fi; '
        # KILLed wrappers write no exit status: record one as the shell would (128 + 9)
        "if [ ! -e exit ]; then date +%s > ended; echo 137 > exit; fi"
    )
    host.run(script, user=target.owner, what=f"stopping run {run_id}", timeout=grace + 30)
    return get_run(host, target, run_id)


def drop_tag(host: Host, target: ProjectTarget, tag: str, python: str) -> int:
    """Cancel the work units a BOINC tag's earlier masters left uncollected; return how many.
    Runs on the server as the owner, with the project's pymw-admin (refused while a master holds
    the tag)."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", tag):
        raise UsageError(f"invalid tag {tag!r}: tags are letters, digits and _")
    out = host.run(f"{shlex.quote(python)} -m pymw_admin.interfaces.boinc drop "
                   f"{shlex.quote(target.project_dir)} {shlex.quote(tag)}", user=target.owner,
                   what=f"dropping tag {tag}", timeout=600).stdout
    for line in out.splitlines():
        if line.startswith("@dropped "):
            return int(line.split()[1])
    raise RemoteError(f"{host.name}: dropping tag {tag} did not say how many it cancelled")
