"""A bundle's manifest: what was built, for which platform and Python, and every file's hash.

``pyboinc_bundles/dist/<platform>/manifest.json`` sits next to the bundle directory
(``.../<platform>/bundle/``). deploy-app turns it into an app version (``version_xml``); an
interface reads its ``python`` to refuse a master of another minor version before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pymw_admin.errors import ConfigError
from pymw_admin.wire.boinc_contract import WORKER_FEATURES

MANIFEST_NAME = "manifest.json"
BUNDLE_DIR_NAME = "bundle"
FORMAT = 1

# (sys.platform prefix, machine) -> BOINC's platform name
_PLATFORMS: dict[tuple[str, str], str] = {
    ("linux", "x86_64"): "x86_64-pc-linux-gnu",
    ("linux", "amd64"): "x86_64-pc-linux-gnu",
    ("linux", "aarch64"): "aarch64-unknown-linux-gnu",
    ("linux", "arm64"): "aarch64-unknown-linux-gnu",
    ("linux", "armv7l"): "arm-unknown-linux-gnueabihf",
    ("linux", "i686"): "i686-pc-linux-gnu",
    ("linux", "ppc64le"): "powerpc64le-unknown-linux-gnu",
    ("win32", "amd64"): "windows_x86_64",
    ("win32", "x86_64"): "windows_x86_64",
    ("win32", "x86"): "windows_intelx86",
    ("win32", "arm64"): "windows_arm64",
    ("darwin", "x86_64"): "x86_64-apple-darwin",
    ("darwin", "arm64"): "arm64-apple-darwin",
}
KNOWN_PLATFORMS = frozenset(_PLATFORMS.values())


def platform_name(system: str | None = None, machine: str | None = None) -> str:
    """This machine's platform as BOINC names it (x86_64-pc-linux-gnu, windows_x86_64...)."""
    system = (system or sys.platform).lower()
    machine = (machine or platform.machine()).lower()
    for (prefix, arch), name in _PLATFORMS.items():
        if system.startswith(prefix) and machine == arch:
            return name
    raise ConfigError(f"no BOINC platform name known for {system}/{machine}")


@dataclass
class FileEntry:
    sha256: str
    size: int
    executable: bool = False


@dataclass
class Manifest:
    platform: str
    python: str  # the minor version a task's pickles must match, "3.11"
    python_full: str
    main_program: str  # path of the executable inside the bundle directory
    packages: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)  # relative path -> entry
    built_with: str = ""  # the freezer and its version
    source_key: str = ""  # hash of what went in (runtime sources, Python, recipe)
    boinc_library: bool = False  # libboinc_api.so.7 bundled
    # what its worker understands (boinc_contract.WORKER_FEATURES when built by this code; a
    # manifest written before the field existed reads as none)
    features: list[str] = field(default_factory=lambda: list(WORKER_FEATURES))
    format: int = FORMAT

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    def digest(self) -> str:
        """A short hash of every file's hash: names an app version's contents."""
        h = hashlib.sha256()
        for rel in sorted(self.files):
            h.update(f"{rel}\0{self.files[rel].sha256}\n".encode())
        return h.hexdigest()[:16]


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scan(bundle_dir: Path) -> dict[str, FileEntry]:
    """Every regular file under ``bundle_dir``, by POSIX relative path."""
    entries: dict[str, FileEntry] = {}
    for path in sorted(bundle_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(bundle_dir).as_posix()
        entries[rel] = FileEntry(
            sha256=hash_file(path),
            size=path.stat().st_size,
            executable=os.access(path, os.X_OK),
        )
    return entries


def write(manifest: Manifest, platform_dir: Path) -> Path:
    path = platform_dir / MANIFEST_NAME
    tmp = path.with_suffix(".part")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)
    return path


def load(path: Path) -> Manifest:
    """Read a manifest file (or the one in a platform directory); ConfigError when malformed."""
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read bundle manifest {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"bundle manifest {path} is not JSON: {exc}") from None
    try:
        if data.get("format") != FORMAT:
            raise ConfigError(f"bundle manifest {path} has format {data.get('format')!r}, "
                              f"this pymw-admin reads format {FORMAT}")
        files = {rel: FileEntry(**entry) for rel, entry in data.pop("files").items()}
        features = data.setdefault("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ConfigError(f"bundle manifest {path} is malformed: features is not a list "
                              "of names")
        return Manifest(files=files, **data)
    except (TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"bundle manifest {path} is malformed: {exc}") from None


def check(manifest: Manifest, bundle_dir: Path, *, hashes: bool = True) -> list[str]:
    """What differs between a manifest and the bundle on disk (empty when they agree)."""
    problems: list[str] = []
    if manifest.main_program not in manifest.files:
        problems.append(f"main program {manifest.main_program} is not among the files")
    for rel, entry in manifest.files.items():
        path = bundle_dir / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif path.stat().st_size != entry.size:
            problems.append(f"size differs: {rel}")
        elif hashes and hash_file(path) != entry.sha256:
            problems.append(f"hash differs: {rel}")
    for path in bundle_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(bundle_dir).as_posix()
            if rel not in manifest.files:
                problems.append(f"not in the manifest: {rel}")
    return problems


@dataclass
class Bundle:
    """A built bundle: ``root`` is pyboinc_bundles/dist/<platform>, the files are in ``dir``."""

    root: Path
    manifest: Manifest
    # what the bundle's own import check reported, {distribution: version} (empty: not run)
    imports: dict[str, str] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.root / BUNDLE_DIR_NAME

    @property
    def executable(self) -> Path:
        return self.dir / self.manifest.main_program

    def require_python(self, minor: str) -> None:
        """Refuse a master whose Python minor version the bundle cannot run."""
        if self.manifest.python != minor:
            raise ConfigError(
                f"the {self.manifest.platform} bundle at {self.root} runs Python "
                f"{self.manifest.python}, but this master runs Python {minor}: a function "
                f"pickled by one minor version may crash the other; rebuild the bundle with "
                f"Python {minor} (pymw-admin bundle build) or run the master with Python "
                f"{self.manifest.python}"
            )


def open_bundle(root: Path) -> Bundle:
    manifest = load(root)
    bundle = Bundle(root, manifest)
    if not bundle.executable.is_file():
        raise ConfigError(f"bundle {root} has no main program {manifest.main_program}")
    return bundle


def find_bundles(dist: Path) -> list[Bundle]:
    """Every bundle built under ``dist`` (one directory per platform), for deploy-app."""
    if not dist.is_dir():
        return []
    return [open_bundle(p) for p in sorted(dist.iterdir()) if (p / MANIFEST_NAME).is_file()]
