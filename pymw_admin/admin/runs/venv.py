"""The server's Python environment for runs: a venv under the owner's home holding this very
pymw-admin version (a wheel built here, reinstalled only when the sources change).
"""

from __future__ import annotations

import hashlib
import io
import shlex
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pymw_admin
from pymw_admin.admin.remote import Host
from pymw_admin.admin.runs.control import venv_dir
from pymw_admin.admin.target import ProjectTarget
from pymw_admin.errors import PymwError, RemoteError
from pymw_admin.sources import digest, package_files


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
