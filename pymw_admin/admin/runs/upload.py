"""What a run needs from the admin's machine: the script, the local modules it imports, its
data files, and the wrapper that runs it, packed as one tar.
"""

from __future__ import annotations

import ast
import io
import json
import shlex
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pymw_admin
from pymw_admin.admin.server.project import SYSTEM_PATH
from pymw_admin.errors import UsageError
from pymw_admin.runtime import script_runner


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
    # through the runner: a module the script's imports miss is one line in the log
    argv = " ".join(shlex.quote(a) for a in [python, "-u", "-m", script_runner.__name__,
                                              script_name, *args])
    return (
        "#!/bin/sh\n# a pymw-admin run: started detached (setsid), so it outlives the ssh session\n"
        'cd "$(dirname "$0")" || exit 1\n'
        "echo $$ > pid.tmp && mv pid.tmp pid\n"
        "date +%s > started\n"
        "trap 'echo TERM >> signalled' TERM\n"
        f"PATH={shlex.quote(str(Path(python).parent))}:{SYSTEM_PATH}\n"
        f"PYMW_INTERFACE=boinc PYMW_PROJECT_HOME={shlex.quote(project_dir)} PYTHONUNBUFFERED=1 "
        # where the master leaves what `runs` shows of it (runtime.master.REUSE_FILE)
        'PYMW_RUN_DIR="$PWD" '
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
