"""A BOINC-like slot directory on this machine: run one task through a bundle as a client would.

The layout copies the client's (client/app_start.cpp)::

    BASE/projects/PROJECT/        the work unit's input file and, afterwards, the output file
    BASE/slots/N/                 the bundle's files (copy_file), soft-link XML files for the
                                  logical input and output names, init_data.xml

A task small enough goes in the command line instead of a file (``--pymw-task=BASE64``), as the
BOINC interface sends it when the app's versions understand that.

The main program runs with the slot as working directory, stderr goes to ``stderr.txt``, and
afterwards the ``boinc_finish_called`` file is checked: exiting 0 without it is what makes a real
client restart a task forever, so a rehearsal reports it as an error.

``restart_after`` kills the program once, that many seconds in, and starts it again in the same
slot, as a client that is stopped and started again does: the slot, and with it the task's working
directory and any checkpoint the task wrote there, survives; the task file is read again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from pymw_admin.bundles import targets
from pymw_admin.bundles.boinc import FINISH_FILE, INIT_DATA_FILE
from pymw_admin.bundles.manifest import Bundle
from pymw_admin.wire import signature
from pymw_admin.wire.boinc_contract import (
    APP_NAME,
    INLINE_TASK_FEATURE,
    RESULT_NAME,
    TASK_NAME,
)

PROJECT = "127.0.0.1_rehearsal"


@dataclass
class SlotRun:
    task_id: str
    slot: Path
    exit_code: int
    finished: bool  # boinc_finish_called present
    result: bytes | None
    stderr: str
    seconds: float
    restarts: int = 0  # times the program was killed and started again in the slot

    def failure(self) -> str:
        """The client's view of the run in one line; empty when it would count as a success."""
        # the task's last words: what it wrote to stderr goes to stderr.txt as it writes it
        last = self.stderr.strip().splitlines()[-1:] or [""]
        if self.exit_code < 0:
            return f"the bundle was killed by signal {-self.exit_code}: {last[0]}".rstrip(": ")
        if self.exit_code != 0:
            return f"the bundle exited with status {self.exit_code}: {last[0]}".rstrip(": ")
        if not self.finished:
            return (f"the bundle exited with zero status but no '{FINISH_FILE}' file "
                    "(a BOINC client would restart the task)")
        if self.result is None:
            return "the bundle finished but wrote no result file"
        return ""


def soft_link_xml(target: str) -> bytes:
    """BOINC's soft-link file: the slot's stand-in for a file kept in the project directory."""
    el = etree.Element("soft_link")
    el.text = target
    return bytes(etree.tostring(el)) + b"\n"


def init_data_xml(*, slot: int, wu_name: str, app_name: str = APP_NAME,
                  checkpoint_period: float = 60.0) -> bytes:
    root = etree.Element("app_init_data")
    for tag, value in (
        ("major_version", "7"), ("minor_version", "20"), ("release", "5"),
        ("app_name", app_name), ("project_dir", f"../../projects/{PROJECT}"),
        ("boinc_dir", "../.."), ("slot", str(slot)), ("wu_name", wu_name),
        ("result_name", f"{wu_name}_0"), ("checkpoint_period", f"{checkpoint_period:g}"),
        ("shmem_seg_name", "0"), ("rehearsal", "1"),
    ):
        etree.SubElement(root, tag).text = value
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8"))


def _place(src: Path, dst: Path) -> None:
    """copy_file: a hard link where possible (same contents, no copy cost), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def inline_args(bundle: Bundle, task_file: bytes) -> list[str]:
    """The command line a work unit would carry the task in, or [] when it goes as a file."""
    if INLINE_TASK_FEATURE not in bundle.manifest.features:
        return []
    option = signature.command_line_option(task_file)
    return [] if option is None else [option]


def prepare(base: Path, index: int, bundle: Bundle, task_id: str, task_file: bytes,
            inline: bool = False, checkpoint_period: float = 60.0) -> Path:
    """Make slot ``index`` under ``base`` holding ``task_file`` for ``bundle`` (no file when
    the task goes ``inline`` in the command line); returns the slot. ``checkpoint_period`` is
    the client's "at most every N seconds" setting, as init_data.xml gives it to the task."""
    project = base / "projects" / PROJECT
    project.mkdir(parents=True, exist_ok=True)
    slot = base / "slots" / str(index)
    if slot.exists():
        shutil.rmtree(slot)
    slot.mkdir(parents=True)
    wu_name = f"pymw_{task_id}"
    if not inline:
        (project / f"{wu_name}_task").write_bytes(task_file)
    (project / f"{wu_name}_0_result").unlink(missing_ok=True)
    for rel in bundle.manifest.files:
        _place(bundle.dir / rel, slot / rel)
    rel_project = f"../../projects/{PROJECT}"
    if not inline:
        (slot / TASK_NAME).write_bytes(soft_link_xml(f"{rel_project}/{wu_name}_task"))
    (slot / RESULT_NAME).write_bytes(soft_link_xml(f"{rel_project}/{wu_name}_0_result"))
    (slot / INIT_DATA_FILE).write_bytes(init_data_xml(
        slot=index, wu_name=wu_name, checkpoint_period=checkpoint_period))
    return slot


def run(base: Path, slot: Path, bundle: Bundle, task_id: str, *, api: str = "python",
        timeout: float | None = None,
        on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
        args: list[str] | None = None, restart_after: float | None = None) -> SlotRun:
    """Run the main program in ``slot`` with a client-like bare environment.

    Another platform's bundle runs through this machine's runner for it (wine, qemu-user).
    Its standard streams are pipes: Windows Python under wine cannot start with a file or
    /dev/null as a standard stream. ``on_start`` receives each running process, so an owner can
    stop it (as a client does on exit). ``timeout`` bounds the whole run, restart included.
    With ``restart_after``, a program still running then is killed and started again, once.
    """
    platform = bundle.manifest.platform
    command = [*targets.runner(platform), str(slot / bundle.manifest.main_program), *(args or [])]
    env = {"PATH": "/usr/bin:/bin", "PYMW_BOINC_API": api, **targets.runner_env(platform)}
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    restarts = 0
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        restarting = restart_after is not None and restarts == 0 and (
            left is None or restart_after < left)
        stop_at = restart_after if restarting else left
        code, output, stopped = _run_once(command, slot, env, stop_at, on_start)
        # appended: the program may have written stderr.txt itself (the BOINC API library does)
        with (slot / "stderr.txt").open("ab") as err:
            err.write(output)
            if stopped and restarting:
                # a client's own log would say it; here the task's log is where the user looks
                err.write(f"rehearsal: killed after {restart_after:g} s and started again "
                          "in its slot, as a client stopped and started again\n".encode())
        if not (stopped and restarting):
            break
        restarts += 1
    stderr = (slot / "stderr.txt").read_text(errors="replace")
    result_path = base / "projects" / PROJECT / f"pymw_{task_id}_0_result"
    result = result_path.read_bytes() if result_path.is_file() else None
    return SlotRun(task_id, slot, code, (slot / FINISH_FILE).is_file(), result, stderr,
                   time.monotonic() - started, restarts)


def _run_once(command: list[str], slot: Path, env: dict[str, str], timeout: float | None,
              on_start: Callable[[subprocess.Popen[bytes]], None] | None
              ) -> tuple[int, bytes, bool]:
    """One start of the program: its exit status, its output, and whether ``timeout`` ended it
    (then it was killed: status -9)."""
    proc = subprocess.Popen(command, cwd=slot, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    stopped = False
    try:
        if on_start is not None:
            on_start(proc)
        output, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code, stopped = -9, True
    finally:
        if proc.returncode is None:  # timed out, or on_start raised: never leave it running
            proc.kill()
            output += proc.communicate()[0] or b""
    return code, output, stopped


def cleanup(base: Path, slot: Path, task_id: str) -> None:
    shutil.rmtree(slot, ignore_errors=True)
    project = base / "projects" / PROJECT
    for name in (f"pymw_{task_id}_task", f"pymw_{task_id}_0_result"):
        (project / name).unlink(missing_ok=True)
