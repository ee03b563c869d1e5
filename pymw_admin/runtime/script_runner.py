"""``python -m pymw_admin.runtime.script_runner SCRIPT [ARGS]``: a master script run as ``python
SCRIPT ARGS`` runs it, except that a module its imports miss is one line that says what to do.

``pymw-admin run`` starts a master this way on the server (run.sh). A script there gets only the
modules it was uploaded with and the run's Python environment: one importing something else would
otherwise leave a traceback in the run's log, for what is one missing module. Any other error is
the traceback ``python SCRIPT`` prints, without this module's frames.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from types import ModuleType, TracebackType

USAGE = "usage: python -m pymw_admin.runtime.script_runner SCRIPT [ARGS...]"
_IMPORT_MACHINERY = ("<frozen importlib._bootstrap", "<frozen importlib._bootstrap_external")

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def missing_module_line(module: str) -> str:
    """What the log says for a module the script imports that the server does not have."""
    top = module.split(".")[0]
    return (f"error: the master script needs module {module!r}, which is not installed on the "
            f"server: put {top}.py (or the package {top}/) next to the script, and `pymw-admin "
            f"run` uploads it, or install the package that provides it into the run's "
            f"environment: {sys.executable} -m pip install PACKAGE")


def _frames(tb: TracebackType | None) -> list[TracebackType]:
    found = []
    while tb is not None:
        found.append(tb)
        tb = tb.tb_next
    return found


def _from_script(tb: TracebackType | None, script: str) -> TracebackType | None:
    """The traceback from the script's first frame on: ours left out. None when the script
    never ran (it could not be read, or it is not valid Python)."""
    return next((frame for frame in _frames(tb)
                 if os.path.abspath(frame.tb_frame.f_code.co_filename) == script), None)


def _top_level_import(tb: TracebackType | None, base: str) -> bool:
    """Every frame from the script on runs a module's top level in the script's directory (its
    own imports and its local modules'): not a function of it, nor an installed package's
    import, whose traceback says more than a name."""
    codes = [f.tb_frame.f_code for f in _frames(tb)
             if not f.tb_frame.f_code.co_filename.startswith(_IMPORT_MACHINERY)]
    return bool(codes) and all(
        code.co_name == "<module>" and os.path.abspath(code.co_filename).startswith(base)
        for code in codes)


def _hook(script: str, previous: ExceptHook) -> ExceptHook:
    base = os.path.join(os.path.dirname(script), "")

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        own = _from_script(tb, script)
        if (isinstance(exc, ModuleNotFoundError) and exc.name
                and _top_level_import(own, base)):
            print(missing_module_line(exc.name), file=sys.stderr, flush=True)
            return
        # Python prints the exception's own traceback, not the one a hook is handed
        previous(kind, exc.with_traceback(own), own)

    return hook


def main(argv: list[str] | None = None) -> None:
    """Run SCRIPT as ``__main__`` with ARGS, as ``python SCRIPT ARGS`` would."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    script = os.path.abspath(args[0])
    sys.argv = list(args)  # sys.argv[0] as given: interfaces.boinc names its tag after it
    sys.path[0] = os.path.dirname(script)  # where python SCRIPT looks first, not ours
    # an exception the script leaves uncaught goes through sys.excepthook, as in python SCRIPT,
    # and the exit status stays Python's own (1; a signal's for Ctrl-C)
    sys.excepthook = _hook(script, sys.excepthook)
    # the script's module stays __main__ to the end, as python SCRIPT's does (runpy's is
    # swapped back when it returns, before atexit handlers, and it rewrites sys.argv[0])
    main_module = ModuleType("__main__")
    main_module.__file__ = script
    sys.modules["__main__"] = main_module
    try:
        with io.open_code(script) as f:
            source = f.read()
    except OSError as exc:  # in python's words and with its status
        print(f"{sys.executable}: can't open file {script!r}: [Errno {exc.errno}] "
              f"{exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    # dont_inherit: the script gets none of this module's __future__ flags (its code objects,
    # and so its tasks' digests, are those plain python makes)
    exec(compile(source, script, "exec", dont_inherit=True), main_module.__dict__)


if __name__ == "__main__":
    main()
