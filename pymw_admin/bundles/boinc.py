"""The ``boinc`` module for task code: BOINC's app API with the ``boinc_`` prefix dropped.

    import boinc                        # inside a bundle (the bundle ships this as ``boinc``)
    from pymw_admin.bundles import boinc  # anywhere pymw-admin is installed

    boinc.init()
    path = boinc.resolve_filename("in")
    for i in range(n):
        ...
        boinc.fraction_done(i / n)
        if boinc.time_to_checkpoint():
            save_state(); boinc.checkpoint_completed()
    boinc.finish(0)                     # does not return

Four back ends, picked once by ``init()`` (or the first call that needs one):

* ``client``: a BOINC client ran us. The rule is BOINC's own (api/boinc_api.cpp): an
  ``init_data.xml`` in the working directory means a client made this slot. The module then speaks
  the client's shared-memory protocol itself (``pymw_admin.bundles.client_shm``), in Python, on
  every platform: fraction done, CPU time and checkpoints reach the client, suspend, resume,
  quit and abort requests are obeyed, and ``finish`` writes the finish file as the C library does.
* ``library``: only with ``PYMW_BOINC_API=library``: the same through ctypes and Debian's
  ``libboinc_api.so.7`` (Linux; a cross-check of the Python protocol).
* ``slot``: an ``init_data.xml`` but no client's shared memory (``rehearse --bundle`` and the
  slot emulation, or ``PYMW_BOINC_API=python``): names follow BOINC's soft-link files, progress
  goes to the log, and ``finish`` writes ``boinc_finish_called`` so a client counts a success.
* ``standalone``: no ``init_data.xml``: names resolve to themselves, progress goes to the log.

``is_standalone()`` is True unless a client is really attached.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from pathlib import Path
from typing import Any

INIT_DATA_FILE = "init_data.xml"
FINISH_FILE = "boinc_finish_called"
STDERR_FILE = "stderr.txt"
LIBRARY_NAME = "libboinc_api.so.7"
DEFAULT_CHECKPOINT_PERIOD = 300.0  # seconds; the client's default disk interval

_state: dict[str, Any] = {
    "mode": None,  # "client" | "library" | "slot" | "standalone" once decided
    "lib": None,
    "client": None,  # the client_shm.ClientChannel in client mode
    "slot": None,  # the working directory the back end was chosen in
    "initialized": False,
    "last_checkpoint": 0.0,
    "last_fraction": -1.0,
}


# --- picking the back end ----------------------------------------------------------------------


def _library_paths() -> list[str]:
    """Where the API library may be: next to a frozen bundle first, then the system's."""
    paths: list[str] = []
    bundle_dir = getattr(sys, "_MEIPASS", None)
    if bundle_dir:
        paths.append(os.path.join(bundle_dir, LIBRARY_NAME))
    override = os.environ.get("PYMW_BOINC_LIBRARY")
    if override:
        paths.insert(0, override)
    paths.append(LIBRARY_NAME)  # the dynamic linker's search (Debian: /usr/lib/<triplet>)
    return paths


def load_library() -> ctypes.CDLL | None:
    """``libboinc_api.so.7`` through ctypes, with the signatures declared; None when absent."""
    for path in _library_paths():
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.boinc_init.restype = ctypes.c_int
        lib.boinc_init.argtypes = []
        # boinc_resolve_filename lives in libboinc.so.7; the api library's handle reaches it
        lib.boinc_resolve_filename.restype = ctypes.c_int
        lib.boinc_resolve_filename.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        lib.boinc_fraction_done.restype = ctypes.c_int
        lib.boinc_fraction_done.argtypes = [ctypes.c_double]
        lib.boinc_finish.restype = None
        lib.boinc_finish.argtypes = [ctypes.c_int]
        lib.boinc_time_to_checkpoint.restype = ctypes.c_int
        lib.boinc_checkpoint_completed.restype = ctypes.c_int
        lib.boinc_is_standalone.restype = ctypes.c_int
        return lib
    return None


def _decide_mode() -> str:
    if _state["mode"] is not None:
        return str(_state["mode"])
    wanted = os.environ.get("PYMW_BOINC_API", "auto").lower()
    mode = "standalone"
    # the slot is where we started: a task later runs in a directory of its own
    _state["slot"] = os.getcwd()
    if Path(INIT_DATA_FILE).exists():
        mode = "slot"
        if wanted == "library":
            lib = load_library()
            if lib is not None:
                _state["lib"] = lib
                mode = "library"
            else:
                print(f"boinc: {LIBRARY_NAME} not found; running without the BOINC client",
                      file=sys.stderr, flush=True)
        elif wanted != "slot":
            from pymw_admin.bundles import client_shm

            channel = client_shm.attach(_init_data())
            if channel is not None:
                _state["client"] = channel
                mode = "client"
    _state["mode"] = mode
    return mode


def mode() -> str:
    """Which back end is in use: ``client``, ``library``, ``slot`` or ``standalone``."""
    return _decide_mode()


# --- the API -----------------------------------------------------------------------------------


def init() -> int:
    """``boinc_init``: attach to the client when there is one. Idempotent; returns 0 on success."""
    if _state["initialized"]:
        return 0
    current = _decide_mode()
    status = 0
    if current == "library":
        status = int(_state["lib"].boinc_init())
    elif current == "client":
        _redirect_stderr()
        _client().start(_init_data())
    _state["initialized"] = True
    _state["last_checkpoint"] = time.monotonic()
    return status


def is_standalone() -> bool:
    """True unless a BOINC client is attached (then progress and finish reach the client)."""
    current = _decide_mode()
    if current == "library":
        init()
        return bool(_state["lib"].boinc_is_standalone())
    return current != "client"


def resolve_filename(logical_name: str) -> str:
    """The physical path of a logical file name (input or output of the work unit).

    Standalone, a name is itself. In a slot, a name whose file is BOINC's soft-link XML
    (``<soft_link>../../projects/P/FILE</soft_link>``) resolves to that target.
    """
    current = _decide_mode()
    if current == "library":
        init()
        buf = ctypes.create_string_buffer(4096)
        status = _state["lib"].boinc_resolve_filename(
            os.fsencode(logical_name), buf, ctypes.sizeof(buf)
        )
        if status == 0 and buf.value:
            return os.fsdecode(buf.value)
        return logical_name
    if current in ("slot", "client"):
        return _follow_soft_link(logical_name)
    return logical_name


def _redirect_stderr() -> None:
    """stderr to the slot's stderr.txt, as boinc_init's diagnostics do: the client uploads it.

    (Under a Windows client a program has no console: stderr was nowhere at all.)
    """
    try:
        log = open(_in_slot(STDERR_FILE), "a", buffering=1, encoding="utf-8",  # noqa: SIM115
                   errors="replace")
    except OSError:
        return
    if sys.stderr is not None:
        sys.stderr.flush()
    with contextlib.suppress(OSError, ValueError):
        os.dup2(log.fileno(), 2)  # what C code and the interpreter itself write goes there too
    sys.stderr = log


def _in_slot(name: str) -> Path:
    return Path(_state.get("slot") or os.getcwd()) / name


def _follow_soft_link(logical_name: str) -> str:
    path = _in_slot(logical_name)
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return logical_name
    if not head.lstrip().startswith(b"<soft_link>"):
        return logical_name
    from xml.etree import ElementTree  # only in a slot: keeps start-up short

    try:
        target = ElementTree.fromstring(head.strip()).text or ""
    except ElementTree.ParseError:
        return logical_name
    target = target.strip()
    if not target:
        return logical_name
    if os.path.isabs(target) or Path.cwd() == Path(_state.get("slot") or os.getcwd()):
        return target
    return os.path.normpath(_in_slot(target))  # asked from a task's own directory


def fraction_done(fraction: float) -> int:
    """Report progress, 0.0 to 1.0: to the client, or to the log when there is none."""
    fraction = min(1.0, max(0.0, float(fraction)))
    current = _decide_mode()
    if current == "library":
        init()
        return int(_state["lib"].boinc_fraction_done(fraction))
    if current == "client":
        init()
        _client().fraction_done = fraction
        _client().wait_while_suspended()
        return 0
    # the log gets whole percents only, so a tight loop does not flood it
    if int(fraction * 100) != int(_state["last_fraction"] * 100):
        print(f"boinc: fraction done {fraction:.2f}", file=sys.stderr, flush=True)
    _state["last_fraction"] = fraction
    return 0


def time_to_checkpoint() -> bool:
    """True when the task should save its state now (then call ``checkpoint_completed``)."""
    current = _decide_mode()
    if current == "library":
        init()
        return bool(_state["lib"].boinc_time_to_checkpoint())
    if current == "client":
        init()
        _client().wait_while_suspended()
    period = _checkpoint_period()
    return time.monotonic() - float(_state["last_checkpoint"]) >= period


def checkpoint_completed() -> int:
    """Tell BOINC the task's state is saved (resets the checkpoint timer)."""
    current = _decide_mode()
    if current == "library":
        init()
        return int(_state["lib"].boinc_checkpoint_completed())
    if current == "client":
        init()
        _client().checkpointed()
    _state["last_checkpoint"] = time.monotonic()
    return 0


def finish(status: int = 0) -> None:
    """``boinc_finish``: end the process with ``status``; the client then counts the task.

    Like the C library it does not return. Outside the library it writes the
    ``boinc_finish_called`` file (after ``init``, as the library does) and exits.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None: a Windows program started without a console
            stream.flush()
    if _decide_mode() == "library":
        init()
        _state["lib"].boinc_finish(int(status))
        os._exit(int(status))  # not reached: boinc_finish exits the process
    if _state["mode"] == "client" and _state["initialized"]:
        _client().finish()  # the last status report (fraction done 1, CPU time) first
    if _state["initialized"]:
        _in_slot(FINISH_FILE).write_text(f"{int(status)}\n")
    raise SystemExit(int(status))


def get_app_name() -> str:
    """The application's name as the project knows it (``app_name`` in init_data.xml).

    Standalone it is the program's own name.
    """
    name = _init_data().get("app_name")
    if name:
        return name
    return Path(sys.executable if getattr(sys, "frozen", False) else sys.argv[0]).stem or "python"


def init_data() -> dict[str, str]:
    """The simple fields of init_data.xml (empty when standalone)."""
    return dict(_init_data())


def _init_data() -> dict[str, str]:
    path = _in_slot(INIT_DATA_FILE)
    if not path.exists():
        return {}
    from xml.etree import ElementTree

    try:
        # stdlib XML here: the bundle stays small (lxml is for the admin side)
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return {}
    return {
        str(child.tag): (child.text or "").strip()
        for child in root
        if isinstance(child.tag, str) and len(child) == 0
    }


def _checkpoint_period() -> float:
    try:
        return float(_init_data().get("checkpoint_period", DEFAULT_CHECKPOINT_PERIOD))
    except ValueError:
        return DEFAULT_CHECKPOINT_PERIOD


def _client() -> Any:
    return _state["client"]


def _reset() -> None:
    """Forget the chosen back end (tests; a worker that changed directory)."""
    if _state["client"] is not None:
        _state["client"].close()
    _state.update(mode=None, lib=None, client=None, slot=None, initialized=False,
                  last_checkpoint=0.0, last_fraction=-1.0)


__all__ = [
    "checkpoint_completed",
    "finish",
    "fraction_done",
    "get_app_name",
    "init",
    "init_data",
    "is_standalone",
    "mode",
    "resolve_filename",
    "time_to_checkpoint",
]
