"""The bundle's main program: one task through the worker entry point, the BOINC way.

    pymw-worker                      # under BOINC: logical names pymw_task -> pymw_result
    pymw-worker --pymw-task=BASE64   # under BOINC: a small task, in the command line
    pymw-worker TASK RESULT [--workdir DIR]
    pymw-worker --serve              # the persistent worker the local interface speaks to
    pymw-worker -m pymw_admin.worker.run ...   # so the bundle can stand in for ``python``
    pymw-worker --about              # python version, platform, packages (JSON)
    pymw-worker --pymw-selfcheck DIST...   # import each package as a task would (JSON)

It resolves the logical input and output names through the ``boinc`` module, reports fraction done,
runs ``pymw_admin.worker.run.run_task`` and calls ``boinc.finish(0)`` once a result record is
written (a task that raised is still a record: the master reports it). A task pickled by another
Python minor version is refused before its payload is touched, with one clear line on stderr and a
``PythonVersionMismatch`` record for the master.

Task files are signed by the master with the project's task key; the public half ships in the app
version as the logical file ``pymw_task_key`` (BOINC's code signing covers it). A task file it did
not sign is refused before anything of it is unpickled: one line on stderr and a
``TaskSignatureError`` record. Without a key in the slot, under a real client that is a refusal
too; a rehearsal (no client: the trusted path, on the master's own machine) runs tasks unchecked.
A task given in the command line is the same signed task file (``signature.pack_command_line``),
checked the same way; it is bounded in length before it is decoded.

``--pymw-selfcheck`` reads no task: it imports the named distributions the bundle ships (the
build's last step and ``bundle list --verify``), so a package that cannot load in the bundle (a
vendored library broken by the build, a module the freezer missed) is found before a volunteer
runs a task. It prints ``{"imported": {DIST: VERSION}, "failed": {DIST: WHY}}`` on one line.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from pymw_admin.bundles import boinc
from pymw_admin.wire import signature
from pymw_admin.wire.boinc_contract import (
    INLINE_TASK_MAX,
    INLINE_TASK_OPTION,
    RESULT_NAME,
    TASK_KEY_NAME,
    TASK_NAME,
)
from pymw_admin.wire.encoding import (
    EncodingError,
    SharedStore,
    python_minor,
    python_mismatch,
    read_task_header,
)
from pymw_admin.worker import run as worker

USAGE = ("usage: pymw-worker [TASK RESULT | --pymw-task=BASE64] [--workdir DIR] | --serve | "
         "--about | --pymw-selfcheck DIST...")
SELFCHECK_OPTION = "--pymw-selfcheck"
_DIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# base64 of the longest task a master puts in a command line (its packed form is shorter)
INLINE_MAX_CHARS = 4 * ((INLINE_TASK_MAX + 2) // 3)
KEY_MAX_BYTES = 1 << 16


def under_client() -> bool:
    """A BOINC client made this slot (not a rehearsal's emulation, not a plain run)."""
    if not boinc.is_standalone():
        return True
    data = boinc.init_data()
    return bool(data) and data.get("rehearsal") != "1"


def task_key() -> tuple[signature.PublicKey | None, str]:
    """The app version's task key, or why tasks cannot be checked ("" on the trusted path)."""
    path = boinc.resolve_filename(TASK_KEY_NAME)
    try:
        with open(path, "rb") as f:
            data = f.read(KEY_MAX_BYTES)
    except OSError:
        if under_client():
            return None, (f"the app version has no task key ({TASK_KEY_NAME}); "
                          "the project must deploy the app again")
        return None, ""
    try:
        return signature.load_public_pem(data), ""
    except signature.SignatureError as exc:
        return None, f"the app version's task key is unusable: {exc}"


def checked_task(blob: bytes) -> tuple[bytes, str]:
    """The plain task file once its signature is checked, or why it is refused."""
    key, problem = task_key()
    if problem:
        return b"", problem
    try:
        return signature.open_task(blob, key), ""
    except signature.SignatureError as exc:
        return b"", str(exc)


def about() -> dict[str, object]:
    import platform

    import cloudpickle

    from pymw_admin import __version__
    from pymw_admin.bundles.manifest import platform_name

    return {
        "python": python_minor(),
        "python_full": platform.python_version(),
        "platform": platform_name(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "packages": {"pymw-admin": __version__, "cloudpickle": cloudpickle.__version__},
    }


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_of(dist: str) -> str:
    """The top-level module a distribution installs (PyYAML -> yaml), from its metadata."""
    import importlib.metadata

    wanted = _canonical(dist)
    tops = sorted(top for top, dists in importlib.metadata.packages_distributions().items()
                  if any(_canonical(d) == wanted for d in dists))
    for top in tops:
        if _canonical(top) == wanted:
            return top
    public = [top for top in tops if not top.startswith("_")]
    return (public or tops or [dist.replace("-", "_").replace(".", "_")])[0]


def _first_cause(exc: BaseException) -> BaseException:
    # numpy wraps a library's load error in pages of advice: the innermost error says what broke
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def selfcheck(dists: list[str]) -> dict[str, dict[str, str]]:
    """Import each distribution's module as a task would: its version, or why it failed."""
    import importlib
    import importlib.metadata

    imported: dict[str, str] = {}
    failed: dict[str, str] = {}
    for dist in dists:
        try:
            module = importlib.import_module(_module_of(dist))
        except (Exception, SystemExit) as exc:
            cause = _first_cause(exc)
            lines = str(cause).strip().splitlines() or [""]
            failed[dist] = f"{type(cause).__name__}: {lines[0]}".rstrip(": ")
            continue
        try:
            imported[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            imported[dist] = str(getattr(module, "__version__", ""))
    return {"imported": imported, "failed": failed}


def inline_task(text: str) -> bytes:
    """The task file a command line carries; ValueError says why it is unusable."""
    if len(text) > INLINE_MAX_CHARS:
        raise ValueError(f"it is {len(text):,} characters, more than the "
                         f"{INLINE_MAX_CHARS:,} a master sends")
    try:
        return signature.unpack_command_line(text)
    except signature.SignatureError as exc:
        raise ValueError(str(exc)) from None


def run(task_name: str, result_name: str, workdir: str | None, inline: str | None = None
        ) -> int:
    boinc.init()
    result_path = boinc.resolve_filename(result_name)
    if inline is not None:
        task_name = "the command line's task"
        # shared blobs are copied into the slot, where the client starts us
        task_dir = os.getcwd()
        try:
            blob = inline_task(inline)
        except ValueError as exc:
            print(f"error: {task_name} is unusable: {exc}", file=sys.stderr, flush=True)
            worker.write_record(result_path, worker.refusal_record(f"task refused: {exc}"))
            boinc.finish(0)
            return 0  # not reached
    else:
        task_path = boinc.resolve_filename(task_name)
        task_dir = os.path.dirname(os.path.abspath(task_path))
        try:
            blob = Path(task_path).read_bytes()
        except OSError as exc:
            print(f"error: cannot read the task file {task_name} ({task_path}): "
                  f"{exc.strerror or exc}", file=sys.stderr, flush=True)
            boinc.finish(1)
            return 1  # not reached
    # before anything of it is unpickled: only what the project's key signed runs
    blob, refused = checked_task(blob)
    if refused:
        print(f"error: {task_name} refused: {refused}", file=sys.stderr, flush=True)
        worker.write_record(result_path, worker.refusal_record(f"task file refused: {refused}"))
        boinc.finish(0)
        return 0  # not reached
    try:
        header = read_task_header(blob)[0]
    except EncodingError as exc:
        # one line for the volunteer's stderr.txt; run_task turns it into the master's error record
        print(f"error: {task_name} is not a usable task file: {exc}", file=sys.stderr, flush=True)
        header = None
    mismatch = python_mismatch(header.python) if header is not None else ""
    if header is not None and mismatch:
        # said on the volunteer's stderr too; run_task refuses it without unpickling anything
        print(f"error: {header.task_id}: {mismatch}", file=sys.stderr, flush=True)
    boinc.fraction_done(0.0)
    # shared blobs the work unit names arrive beside the task file as pymw_shared_<digest>
    store = SharedStore(directory=task_dir)
    # the client starts us in the task's slot: the task runs there (slot/pymw_work/task), which
    # the client owns and cleans, not in a shared /tmp
    own_base = None if workdir is not None else os.path.join(os.getcwd(), "pymw_work")
    # what the task writes to stderr also goes, as it writes it, where BOINC keeps it
    # (stderr.txt, reported as the result's stderr_out): there even when the task crashes
    record = worker.run_task(blob, workdir or own_base, store, stderr_fd=2)
    if own_base is not None:
        shutil.rmtree(own_base, ignore_errors=True)
    worker.write_record(result_path, record)
    boinc.fraction_done(1.0)
    boinc.finish(0)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    # tutorial-style task code says ``import boinc``: the bundle's boinc is this module
    sys.modules.setdefault("boinc", boinc)
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["-m", "pymw_admin.worker.run"]:
        return worker.main(args[2:])
    if args == ["--serve"]:
        return worker.serve()
    if args == ["--about"]:
        import json

        print(json.dumps(about(), indent=1))
        return 0
    if args[:1] == [SELFCHECK_OPTION]:
        import json

        if not all(_DIST_NAME.fullmatch(name) for name in args[1:]):
            print(USAGE, file=sys.stderr)
            return 2
        report = selfcheck(args[1:])
        print(json.dumps(report), flush=True)
        return 1 if report["failed"] else 0
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    split = worker.split_workdir(args)
    if split is None:
        print(USAGE, file=sys.stderr)
        return 2
    args, workdir = split
    inline = [a for a in args if a.startswith(INLINE_TASK_OPTION)]
    if inline:
        args = [a for a in args if not a.startswith(INLINE_TASK_OPTION)]
        if len(inline) > 1 or args:
            print(USAGE, file=sys.stderr)
            return 2
        return run(TASK_NAME, RESULT_NAME, workdir, inline[0][len(INLINE_TASK_OPTION):])
    if not args:
        args = [TASK_NAME, RESULT_NAME]
    if len(args) != 2 or any(a.startswith("-") for a in args):
        print(USAGE, file=sys.stderr)
        return 2
    return run(args[0], args[1], workdir)


if __name__ == "__main__":
    sys.exit(main())
