"""The program a remote job runs, packed into one file a scheduler can spool: a PyBOINC bundle
packed into a self-extracting shell script (the nodes need no Python at all), a one-file program
as it is, or the nodes' own Python with pymw-admin and cloudpickle zipped after a small shell
header. Packed programs are cached by what went into them.

A packed bundle is unpacked once an execute node: into a cache of the job's user keyed by the
payload's digest, which later jobs on that node run from (see ``_BUNDLE_HEADER``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shlex
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pymw_admin.errors import ConfigError
from pymw_admin.sources import digest, package_files
from pymw_admin.wire.encoding import python_minor

_PYTHON_NAME = re.compile(r"^python[0-9.]*$")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pymw-admin" / "condor"


def _self_extracting(header_template: str, payload: Path, out: Path) -> None:
    """Write ``header + payload``; the header learns the payload's byte offset (tail -c +N)."""
    offset = 0
    while True:
        header = header_template.replace("{offset}", str(offset + 1)).encode()
        if len(header) == offset:
            break
        offset = len(header)
    # a name of our own: two masters packing the same worker must not write one file
    fd, name = tempfile.mkstemp(prefix=out.name + ".", suffix=".part", dir=out.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f, payload.open("rb") as src:
            f.write(header)
            shutil.copyfileobj(src, f)
        tmp.chmod(0o755)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Unpacked once a node: into $base/pymw-bundles-UID/DIGEST, in a directory only its user may
# write to, through a temporary sibling renamed into place once complete. Whatever stops the
# cache, the job unpacks in its own directory as before: the cache never fails a job.
_BUNDLE_HEADER = r"""#!/bin/sh
# pymw-admin HTCondor worker: a one-directory PyBOINC bundle packed (tar.gz) after this header.
# A node unpacks it once, into its user's cache keyed by the payload's digest, and later jobs
# run it from there (docs/interfaces/condor.md, "The bundle cache on the nodes").
self=$0 main={main} digest={digest} uid=$(id -u)

unpack() { tail -c +{offset} "$self" | tar -xzf - -C "$1"; }
count() { echo $(($(find "$1/pymw-bundle" 2>/dev/null | wc -l))); }
# "complete" holds the entry count once unpacked: fewer entries now means some were removed
complete() {
    n=$(cat "$1/complete" 2>/dev/null) && [ "$(count "$1")" -ge "$n" ] 2>/dev/null
}

# May others change what directory $1 holds? ls -l shows a symlink, never its target. private:
# ours alone; shared: ours or root's, and sticky when others may write to it (as /tmp is).
owned() {
    set -- "$2" $(ls -ldn "$1" 2>/dev/null)
    case $1:$2 in
        private:d????-??-*) [ "$4" = "$uid" ] ;;
        shared:d????-??-* | shared:d????????[tT]*) [ "$4" = "$uid" ] || [ "$4" = 0 ] ;;
        *) false ;;
    esac
}

# Print the bundle's directory in the cache, unpacking it there first; fail if the cache is unfit
cached() {
    if [ -n "${_CONDOR_JOB_AD:-}" ]; then  # a shared account (nobody, slotN) is not ours alone
        owner=$(sed -n 's/^Owner = "\(.*\)"$/\1/p' "$_CONDOR_JOB_AD" 2>/dev/null)
        [ -n "$owner" ] && [ "$owner" = "$(id -un)" ] || return 1
    fi
    base=${PYMW_BUNDLE_CACHE:-${TMPDIR:-/tmp}}
    if [ -z "${PYMW_BUNDLE_CACHE:-}" ] && [ -n "${_CONDOR_SCRATCH_DIR:-}" ]; then
        case $base/ in "$_CONDOR_SCRATCH_DIR"/*) base=/tmp ;; esac  # TMPDIR goes with the job
    fi
    dir=$base/pymw-bundles-$uid
    ready=$dir/$digest
    owned "$base/" shared || return 1
    mkdir -m 700 "$dir" 2>/dev/null
    if ! owned "$dir" private; then  # not ours to repair either
        if [ -e "$dir" ] || [ -L "$dir" ]; then
            echo "pymw-admin: $dir is not this user's alone: not used" >&2
        fi
        return 1
    fi
    if ! complete "$ready"; then
        # files gone (a partial clean-up, /tmp's ageing): set the copy aside, unpack it again
        if [ -e "$ready" ] && stale=$(mktemp -d "$dir/.stale.XXXXXX"); then
            mv "$ready" "$stale/" 2>/dev/null
            rm -rf "$stale"
        fi
        tmp=$(mktemp -d "$dir/.unpack.XXXXXX") || return 1
        trap 'rm -rf "$tmp"; exit 1' HUP INT TERM
        if ! { unpack "$tmp" && count "$tmp" >"$tmp/complete"; } 2>/dev/null; then
            rm -rf "$tmp"
            return 1
        fi
        mv "$tmp" "$ready" 2>/dev/null
        # another job's copy got there first: ours went nowhere, or into theirs
        rm -rf "$tmp" "$ready/${tmp##*/}"
        trap - HUP INT TERM
        complete "$ready" || return 1
    fi
    [ -x "$ready/pymw-bundle/$main" ] || return 1  # a noexec mount
    touch "$ready" 2>/dev/null  # its age says when a job last used it
    echo "$ready"
}

if ready=$(cached); then
    exec "$ready/pymw-bundle/$main" "$@"
fi
unpack . || exit 1
exec "./pymw-bundle/$main" "$@"
"""

_PYTHON_HEADER = """\
#!/bin/sh
# pymw-admin HTCondor worker: the nodes' Python runs the worker; pymw-admin is the zip below
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
PYTHONPATH="$self${PYTHONPATH:+:$PYTHONPATH}" \
    exec {python} {args} -m pymw_admin.worker.run "$@"
exit 1
"""


@dataclass
class WorkerProgram:
    """What a job runs: ``path`` on this machine, spooled as the job's executable."""

    path: Path
    kind: str  # "bundle" (a packed one-directory bundle), "program" (one file), "python"
    python: str | None  # the Python minor it runs, when known


def _bundle_files(bundle_dir: Path) -> list[Path]:
    return sorted(p for p in bundle_dir.rglob("*") if p.is_file() or p.is_symlink())


def _tar_gz(bundle_dir: Path, archive: Path) -> None:
    # no time or name in the gzip header: a bundle packs to the same bytes, so the same digest,
    # on every master, and a node's cached copy serves them all
    with archive.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        tar.add(bundle_dir, arcname="pymw-bundle")


def _pack_bundle(bundle_dir: Path, main: str, python: str | None) -> WorkerProgram:
    stamp = hashlib.sha256(main.encode())
    stamp.update(_BUNDLE_HEADER.encode())  # a new header makes a new packed file
    for path in _bundle_files(bundle_dir):
        st = path.lstat()
        stamp.update(f"{path.relative_to(bundle_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    out = _cache_root() / f"worker-{stamp.hexdigest()[:16]}.run"
    if out.exists():
        return WorkerProgram(out, "bundle", python)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        archive = Path(tmp) / "bundle.tar.gz"
        _tar_gz(bundle_dir, archive)
        with archive.open("rb") as f:
            payload = hashlib.file_digest(f, "sha256").hexdigest()[:32]
        header = _BUNDLE_HEADER.replace("{main}", shlex.quote(main)).replace("{digest}", payload)
        _self_extracting(header, archive, out)
    return WorkerProgram(out, "bundle", python)


def _pack_python(python: str, args: str) -> WorkerProgram:
    """The node's Python plus a zip of pymw-admin and cloudpickle (pure Python both)."""
    import cloudpickle

    import pymw_admin

    roots = [Path(pymw_admin.__file__).parent, Path(cloudpickle.__file__).parent]
    files: list[tuple[Path, str]] = []
    for root in roots:
        for path in package_files(root):
            files.append((path, f"{root.name}/{path.relative_to(root).as_posix()}"))
    stamp = digest(((arcname, path) for path, arcname in files), python, args, length=16)
    out = _cache_root() / f"python-worker-{stamp}.run"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            archive = Path(tmp) / "lib.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                for path, arcname in files:
                    zf.write(path, arcname)
            header = _PYTHON_HEADER.replace("{python}", python).replace("{args}", args)
            _self_extracting(header, archive, out)
    return WorkerProgram(out, "python", None)


def worker_program(app_path: str | os.PathLike[str] | None, app_args: str | None = None
                   ) -> WorkerProgram:
    """Resolve ``-c``: a bundle (platform directory, bundle directory or its main program), a
    one-file program, or the name/path of a Python on the nodes (``python3``, ``/usr/bin/python3``).
    With none, the bundle for this platform under ``./pyboinc_bundles/dist`` is used.
    """
    if app_path is None:
        from pymw_admin.bundles.manifest import platform_name

        default = Path("pyboinc_bundles") / "dist" / platform_name()
        if not (default / "manifest.json").is_file():
            raise ConfigError(
                "the condor interface needs a worker for the pool's nodes: build the bundle "
                "(pymw-admin bundle build) and pass -c pyboinc_bundles/dist/PLATFORM, or pass "
                "-c /path/to/python for nodes that have pymw-admin's Python version"
            )
        app_path = default
    text = os.fspath(app_path)
    path = Path(text)
    if _PYTHON_NAME.match(path.name) and not path.is_dir():
        # a Python on the nodes: never transferred, so it need not exist here
        return _pack_python(text, app_args or "")
    if not path.exists():
        raise ConfigError(f"worker {text} does not exist (pass a bundle built by "
                          "'pymw-admin bundle build', or a Python on the nodes)")
    manifest_dir = None
    if path.is_dir() and (path / "manifest.json").is_file():
        manifest_dir = path
    elif path.is_dir() and (path.parent / "manifest.json").is_file():
        manifest_dir = path.parent
    elif path.is_file() and (path.parent.parent / "manifest.json").is_file():
        manifest_dir = path.parent.parent
    if manifest_dir is not None:
        from pymw_admin.bundles.manifest import open_bundle

        bundle = open_bundle(manifest_dir)
        bundle.require_python(python_minor())
        return _pack_bundle(bundle.dir, bundle.manifest.main_program, bundle.manifest.python)
    if path.is_dir():
        programs = [p for p in path.iterdir() if p.is_file() and os.access(p, os.X_OK)
                    and not p.name.endswith(".so") and ".so." not in p.name]
        if len(programs) != 1:
            raise ConfigError(f"{text} is a directory without one main program; pass the "
                              "program inside it with -c")
        return _pack_bundle(path, programs[0].name, None)
    if path.is_file() and path.parent.joinpath("_internal").is_dir():
        return _pack_bundle(path.parent, path.name, None)  # a one-directory build's program
    if not os.access(path, os.X_OK):
        raise ConfigError(f"worker {text} is not executable")
    return WorkerProgram(path.resolve(), "program", None)


__all__ = ["WorkerProgram", "worker_program"]
