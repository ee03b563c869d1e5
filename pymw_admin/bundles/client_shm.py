"""The BOINC client's shared-memory app protocol, in Python (lib/app_ipc.h, api/boinc_api.cpp).

The client and an app share eight message channels of 1024 bytes (``SHARED_MEM``): a channel holds
a message when its first byte is non-zero, the text follows, NUL-terminated; the reader clears the
first byte. The client makes the memory before it starts the app:

* Unix clients, and any client for an app version with API version 6 or later, map the slot's
  file ``boinc_mmap_file`` (that is what deploy-app's version.xml asks for; it is also what a
  Linux client running a Windows app under wine makes);
* Windows clients otherwise name a file mapping ``shm_<shmem_seg_name>`` (``Global\\`` first
  when the client runs sandboxed).

Like the C library, a timer thread (10 times a second) reads the client's requests and the
heartbeat, and once a second reports CPU time, checkpoint CPU time and fraction done.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
import time
from typing import Any

MMAPPED_FILE_NAME = "boinc_mmap_file"
CHANNEL_SIZE = 1024
# SHARED_MEM's channels, in order
PROCESS_CONTROL_REQUEST, PROCESS_CONTROL_REPLY, GRAPHICS_REQUEST, GRAPHICS_REPLY, HEARTBEAT, \
    APP_STATUS, TRICKLE_UP, TRICKLE_DOWN = range(8)
SHMEM_SIZE = 8 * CHANNEL_SIZE
EXIT_ABORTED_BY_CLIENT = 194
TICK = 0.1  # seconds between timer ticks, as the C library
STATUS_EVERY = 10  # ticks between status reports
HEARTBEAT_GIVEUP = 30.0  # seconds without a heartbeat: the client is gone


class ClientChannel:
    """The app's end of the shared memory, and the timer thread that serves it."""

    def __init__(self, memory: Any) -> None:
        self.memory = memory
        self.fraction_done = 0.0
        self.initial_cpu = 0.0
        self.checkpoint_cpu = 0.0
        self.suspended = False
        self.quit_status: int | None = None
        self.last_heartbeat = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the channels ------------------------------------------------------------------------------

    def get_msg(self, channel: int) -> str | None:
        """The channel's message, clearing it; None when it holds none."""
        start = channel * CHANNEL_SIZE
        with self._lock:
            if self.memory[start] == 0:
                return None
            raw = bytes(self.memory[start + 1:start + CHANNEL_SIZE])
            self.memory[start] = 0
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def send_msg(self, channel: int, text: str) -> bool:
        """Put a message in the channel unless the last one was not read yet."""
        start = channel * CHANNEL_SIZE
        data = text.encode()[:CHANNEL_SIZE - 2] + b"\0"
        with self._lock:
            if self.memory[start] != 0:
                return False
            self.memory[start + 1:start + 1 + len(data)] = data
            self.memory[start] = 1
        return True

    # -- the timer thread ------------------------------------------------------------------------

    def start(self, init_data: dict[str, str]) -> None:
        try:
            self.initial_cpu = float(init_data.get("wu_cpu_time", 0) or 0)
        except ValueError:
            self.initial_cpu = 0.0
        self.checkpoint_cpu = self.initial_cpu
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="boinc-timer")
            self._thread.start()

    def cpu_time(self) -> float:
        return self.initial_cpu + time.process_time()

    def status_message(self) -> str:
        return (f"<current_cpu_time>{self.cpu_time():e}</current_cpu_time>\n"
                f"<checkpoint_cpu_time>{self.checkpoint_cpu:e}</checkpoint_cpu_time>\n"
                f"<fraction_done>{self.fraction_done:e}</fraction_done>\n")

    def checkpointed(self) -> None:
        self.checkpoint_cpu = self.cpu_time()

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(TICK):
            ticks += 1
            self.tick(send_status=ticks % STATUS_EVERY == 0)

    def tick(self, *, send_status: bool) -> None:
        """One timer tick: the client's requests, the heartbeat, sometimes a status report."""
        request = self.get_msg(PROCESS_CONTROL_REQUEST)
        if request:
            self.handle(request)
        if self.get_msg(HEARTBEAT) is not None:
            self.last_heartbeat = time.monotonic()
        elif time.monotonic() - self.last_heartbeat > HEARTBEAT_GIVEUP:
            print("boinc: no heartbeat from the client; exiting", file=sys.stderr, flush=True)
            os._exit(0)  # the client restarts the task when it is back
        if send_status:
            self.send_msg(APP_STATUS, self.status_message())

    def handle(self, request: str) -> None:
        if "<quit/>" in request:
            # the client will restart the task later: leave now, without the finish file
            print("boinc: quit requested by the client", file=sys.stderr, flush=True)
            os._exit(0)
        if "<abort/>" in request:
            print("boinc: aborted by the client", file=sys.stderr, flush=True)
            os._exit(EXIT_ABORTED_BY_CLIENT)
        if "<suspend/>" in request:
            self.suspended = True
            self._hold_while_suspended()
        if "<resume/>" in request:
            self.suspended = False

    def _hold_while_suspended(self) -> None:
        """Keep the interpreter lock while suspended, so the task's Python code stops too.

        The C library suspends its worker thread; Python cannot. A call through ``PyDLL`` keeps
        the interpreter lock, so sleeping in one stops every other Python thread; between sleeps
        the requests are read again. (C code that releases the lock runs on.)
        """
        sleep = _gil_holding_sleep()
        while self.suspended and not self._stop.is_set():
            sleep()
            request = self.get_msg(PROCESS_CONTROL_REQUEST)
            if self.get_msg(HEARTBEAT) is not None:
                self.last_heartbeat = time.monotonic()
            if request:
                if "<suspend/>" in request and "<resume/>" not in request:
                    continue
                self.handle(request)

    def wait_while_suspended(self) -> None:
        while self.suspended and not self._stop.is_set():
            time.sleep(TICK)

    def finish(self) -> None:
        """The final report, as boinc_finish sends it, before the finish file."""
        self.fraction_done = 1.0
        deadline = time.monotonic() + 2.0
        while not self.send_msg(APP_STATUS, self.status_message()):
            if time.monotonic() > deadline:
                break
            time.sleep(TICK)
        self.close()

    def close(self) -> None:
        self._stop.set()


def _gil_holding_sleep() -> Any:
    import ctypes

    if os.name == "nt":
        kernel32 = ctypes.PyDLL("kernel32")
        return lambda: kernel32.Sleep(int(TICK * 1000))
    libc = ctypes.PyDLL(None)
    return lambda: libc.usleep(int(TICK * 1_000_000))


def attach(init_data: dict[str, str]) -> ClientChannel | None:
    """The client's shared memory for this slot, or None when no client made one."""
    if os.path.isfile(MMAPPED_FILE_NAME):
        try:
            with open(MMAPPED_FILE_NAME, "r+b") as f:
                if os.fstat(f.fileno()).st_size < SHMEM_SIZE:
                    return None
                return ClientChannel(mmap.mmap(f.fileno(), SHMEM_SIZE))
        except (OSError, ValueError):
            return None
    name = init_data.get("shmem_seg_name", "")
    if os.name == "nt" and name and name != "-1":
        return _attach_windows(f"shm_{name}", init_data.get("using_sandbox", "0") not in ("", "0"))
    return None


def _attach_windows(name: str, sandboxed: bool) -> ClientChannel | None:
    """The client's named file mapping: opened, never created (a new one would reach nobody)."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenFileMappingW.restype = wintypes.HANDLE
    kernel32.OpenFileMappingW.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.LPCWSTR]
    kernel32.MapViewOfFile.restype = ctypes.c_void_p
    kernel32.MapViewOfFile.argtypes = [wintypes.HANDLE, wintypes.DWORD, wintypes.DWORD,
                                       wintypes.DWORD, ctypes.c_size_t]
    file_map_all_access = 0xF001F
    for candidate in ([f"Global\\{name}"] if sandboxed else []) + [name]:
        handle = kernel32.OpenFileMappingW(file_map_all_access, False, candidate)
        if handle:
            view = kernel32.MapViewOfFile(handle, file_map_all_access, 0, 0, SHMEM_SIZE)
            if view:
                return ClientChannel((ctypes.c_ubyte * SHMEM_SIZE).from_address(view))
    return None
