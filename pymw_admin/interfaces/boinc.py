"""The BOINC interface: tasks become work units, volunteers' clients run them in the bundle.

It runs on the project's server (``-p`` names the project directory), as the project's owner:

- ``submit`` writes the task file into the project's download hierarchy and queues the work unit;
  queued work units are created together by one ``create_work --stdin`` (its bulk mode), so a
  thousand tasks cost one process, not a thousand.
- The app (deployed by ``pymw-admin deploy-app``) runs the PyBOINC bundle on the volunteer's
  machine: logical input ``pymw_task``, output ``pymw_result``.
- The project's ``script_assimilator`` calls ``pymw_assimilator``, which files each canonical
  result as ``PROJECT/pymw/results/WU_NAME.result`` and each failed work unit as ``.error`` (with
  BOINC's error and the stderr its hosts reported). ``wait`` picks them up from there.
- Results are untrusted (``trusted = False``): the master decodes them without executing code.
- Resume: every submitted work unit is journalled under ``PROJECT/pymw/masters/TAG/``; a master
  started later with the same tag (by default the master script's name) adopts what is still
  uncollected, and a collected result is journalled and removed, so it is handed out once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats
from pymw_admin.interfaces.kit.journal import append_events, read_events
from pymw_admin.interfaces.kit.state_lock import StateLock
from pymw_admin.wire.boinc_contract import (
    APP_NAME,
    ERROR_SUFFIX,
    MASTERS_DIR,
    RESULT_SUFFIX,
    RESULTS_DIR,
    TASK_SUFFIX,
)

DEFAULT_APP = APP_NAME
POLL_SECONDS = 0.5
BULK_LIMIT = 5000  # work units per create_work process
MAX_ERROR_RESULTS = 3  # failed replicas before BOINC gives a work unit up
_TAG_CHARS = re.compile(r"[^A-Za-z0-9]+")


@dataclass
class ProjectLayout:
    """What the interface needs from a project's config.xml."""

    root: Path
    download_dir: Path
    fanout: int
    master_url: str

    @classmethod
    def read(cls, project_home: str | os.PathLike[str]) -> ProjectLayout:
        root = Path(project_home).expanduser().resolve()
        config_file = root / "config.xml"
        if not config_file.is_file():
            raise EngineUnavailable(
                f"{root} is not a BOINC project directory (no config.xml); "
                "pass the project home with -p"
            )
        try:
            tree = etree.parse(str(config_file))
        except etree.XMLSyntaxError as exc:
            raise EngineUnavailable(f"cannot read {config_file}: {exc}") from None

        def text(tag: str, default: str = "") -> str:
            node = tree.find(f"config/{tag}")
            return (node.text or "").strip() if node is not None else default

        download = text("download_dir") or str(root / "download")
        return cls(
            root=root,
            download_dir=Path(download),
            fanout=int(text("uldl_dir_fanout") or 1024),
            master_url=text("master_url"),
        )

    def download_path(self, file_name: str) -> Path:
        """Where BOINC's dir_hier_path puts a file: a fan-out directory from its name's md5."""
        if self.fanout == 0:
            return self.download_dir / file_name
        digest = hashlib.md5(file_name.encode(), usedforsecurity=False).hexdigest()
        return self.download_dir / f"{int(digest[1:8], 16) % self.fanout:x}" / file_name


def default_tag() -> str:
    """The master script's name: a re-run of the same script resumes its work units."""
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "master"
    return _TAG_CHARS.sub("_", script).strip("_") or "master"


class BoincInterface:
    name = "boinc"
    trusted = False  # volunteers' results: decoded without executing code

    def __init__(
        self,
        project_home: str | os.PathLike[str],
        *,
        app_name: str = DEFAULT_APP,
        tag: str | None = None,
        min_quorum: int = 1,
        target_nresults: int | None = None,
        delay_bound: float | None = None,
        fpops_est: float | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        if min_quorum < 1:
            raise UsageError(f"min_quorum must be at least 1, not {min_quorum}")
        self.layout = ProjectLayout.read(project_home)
        self.app_name = app_name
        self.tag = _TAG_CHARS.sub("_", tag).strip("_") if tag else default_tag()
        self.min_quorum = min_quorum
        self.target_nresults = max(target_nresults or min_quorum, min_quorum)
        self.delay_bound = delay_bound
        self.fpops_est = fpops_est
        self.poll_seconds = poll_seconds
        self._check_app()
        self.results_dir = self.layout.root.joinpath(*RESULTS_DIR)
        self.state_dir = self.layout.root.joinpath(*MASTERS_DIR, self.tag)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._claim_tag()
        self._submitted_log = self.state_dir / "submitted.jsonl"
        self._collected_log = self.state_dir / "collected.jsonl"
        self._queued: list[tuple[str, str]] = []  # (task_id, work-unit name) not yet created
        self._open: dict[str, str] = {}  # task_id -> work-unit name, awaiting a result
        self._ready: list[Completion] = []  # failures known before any work unit ran
        self._done_count = 0

    def _claim_tag(self) -> StateLock:
        """One live master per tag: a second one would adopt the first one's work units and
        both would collect the same results."""
        return StateLock.claim(
            self.state_dir,
            f"tag {self.tag!r} is in use by a running master (pid {{pid}}); "
            "give this one its own with -a tag=NAME",
        )

    # --- the project ---------------------------------------------------------------------------

    def _check_app(self) -> None:
        root = self.layout.root
        for needed in (root / "bin" / "create_work", root / "templates" / f"{self.app_name}_in",
                       root / "templates" / f"{self.app_name}_out"):
            if not needed.exists():
                raise EngineUnavailable(
                    f"the project at {root} has no {needed.relative_to(root)}: deploy the app "
                    f"first (pymw-admin deploy-app {self.app_name})"
                )

    def wu_name(self, task_id: str) -> str:
        return f"pymw_{self.tag}_{_TAG_CHARS.sub('_', task_id)}"

    # --- journal -------------------------------------------------------------------------------

    @staticmethod
    def _read_log(path: Path) -> list[dict[str, str]]:
        return [e for e in read_events(path) if isinstance(e.get("task_id"), str)]

    @staticmethod
    def _append_log(path: Path, entries: list[dict[str, str]]) -> None:
        append_events(path, entries)

    # --- Interface -----------------------------------------------------------------------------

    def submit(self, task_id: str, task_file: bytes) -> None:
        name = self.wu_name(task_id)
        target = self.layout.download_path(name + TASK_SUFFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(task_file)
        tmp.chmod(0o664)
        os.replace(tmp, target)
        self._queued.append((task_id, name))
        if len(self._queued) >= BULK_LIMIT:
            self.flush()

    def submit_many(self, tasks: list[tuple[str, bytes]]) -> None:
        for task_id, blob in tasks:
            self.submit(task_id, blob)
        self.flush()

    def flush(self) -> None:
        """Create every queued work unit with one ``create_work --stdin``."""
        if not self._queued:
            return
        batch, self._queued = self._queued, []
        command = [
            "bin/create_work",
            "--appname", self.app_name,
            "--wu_template", f"templates/{self.app_name}_in",
            "--result_template", f"templates/{self.app_name}_out",
            "--min_quorum", str(self.min_quorum),
            "--target_nresults", str(self.target_nresults),
            # the server's defaults allow one result in total: a host that fails once (a crash,
            # a lost upload) would end the work unit; a task that raised is a success here
            "--max_error_results", str(MAX_ERROR_RESULTS),
            "--max_total_results", str(2 * self.target_nresults + MAX_ERROR_RESULTS),
            "--max_success_results", str(2 * self.target_nresults + 1),
            "--stdin",
        ]
        if self.delay_bound:
            command += ["--delay_bound", str(self.delay_bound)]
        if self.fpops_est:
            command += ["--rsc_fpops_est", str(self.fpops_est)]
        lines = "".join(f"--wu_name {name} {name}.task\n" for _task_id, name in batch)
        # journal first: a master that dies right after create_work still finds its work units
        self._append_log(self._submitted_log,
                         [{"task_id": t, "wu": n} for t, n in batch])
        result = subprocess.run(command, input=lines, cwd=self.layout.root, capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            # no work unit exists: each task fails now (the master may retry it), and the
            # journal says so, so a resumed master never waits for them
            reason = (result.stderr or result.stdout).strip().splitlines()
            failure = "create_work failed: " + (reason[-1] if reason
                                                else f"exit {result.returncode}")
            self._append_log(self._submitted_log,
                             [{"task_id": t, "wu": n, "failed": failure} for t, n in batch])
            self._ready += [Completion(t, failure=failure, worker=f"boinc:{n}")
                            for t, n in batch]
            return
        for task_id, name in batch:
            self._open[task_id] = name

    def wait(self, timeout: float | None) -> list[Completion]:
        self.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found, self._ready = self._ready + self._collect(), []
            if found or not self._open:
                return found
            if deadline is not None and time.monotonic() >= deadline:
                return []
            pause = self.poll_seconds
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    def _collect(self) -> list[Completion]:
        found: list[Completion] = []
        if not self._open:
            return found
        # one directory listing a poll, not two stat calls per open work unit
        with os.scandir(self.results_dir) as entries:
            present = {entry.name for entry in entries}
        for task_id, name in list(self._open.items()):
            result_file = self.results_dir / (name + RESULT_SUFFIX)
            error_file = self.results_dir / (name + ERROR_SUFFIX)
            if result_file.name in present:
                found.append(Completion(task_id, record=result_file.read_bytes(),
                                        worker=f"boinc:{name}"))
            elif error_file.name in present:
                try:
                    info = json.loads(error_file.read_text())
                except ValueError:
                    info = {}
                stderr = str(info.get("stderr", ""))
                last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
                found.append(Completion(
                    task_id,
                    failure=f"BOINC work unit {name} failed: {info.get('error', 'unknown error')}"
                    + (f"; stderr: {last.strip()}" if last else ""),
                    retryable=False,
                    worker=f"boinc:{name}",
                    stderr=stderr,
                    error_type="BoincWorkunitError",
                ))
            else:
                continue
            del self._open[task_id]
            self._done_count += 1
        return found

    def resumed_tasks(self) -> list[tuple[str, str]]:
        collected = {e["task_id"] for e in self._read_log(self._collected_log)}
        latest: dict[str, dict[str, str]] = {}  # a retried task's last entry is what counts
        for entry in self._read_log(self._submitted_log):
            latest[entry["task_id"]] = entry
        adopted = []
        for task_id, entry in latest.items():
            if (task_id in collected or "failed" in entry or task_id in self._open
                    or not isinstance(entry.get("wu"), str)):
                continue
            self._open[task_id] = entry["wu"]
            adopted.append((task_id, entry["wu"]))
        return adopted

    def acknowledge(self, task_id: str) -> None:
        name = self.wu_name(task_id)
        self._append_log(self._collected_log, [{"task_id": task_id}])
        for suffix in (RESULT_SUFFIX, ERROR_SUFFIX):
            (self.results_dir / f"{name}{suffix}").unlink(missing_ok=True)
        self.layout.download_path(name + TASK_SUFFIX).unlink(missing_ok=True)

    def cancel(self, task_id: str) -> None:
        self._queued = [(t, n) for t, n in self._queued if t != task_id]

    def workers(self) -> list[WorkerStats]:
        return [WorkerStats(name=f"boinc:{self.layout.root.name}", tasks_done=self._done_count,
                            in_flight=len(self._open) + len(self._queued))]

    def close(self) -> None:
        # work units outlive the master on purpose: a later master with this tag collects them
        if not self._lock_file.held:
            return
        try:
            self.flush()
        finally:
            self._lock_file.release()  # releases the tag


def build(
    num_workers: int | None = None,
    project_home: str | None = None,
    app_path: str | None = None,
    app_args: str | None = None,
    **_: object,
) -> BoincInterface:
    if not project_home:
        raise UsageError("the boinc interface needs the project directory: -p PROJECT_HOME")
    options = _parse_app_args(app_args)
    return BoincInterface(project_home, app_name=app_path or DEFAULT_APP, **options)  # type: ignore[arg-type]


def _parse_app_args(app_args: str | None) -> dict[str, object]:
    """``-a "min_quorum=2 target_nresults=3 tag=run1"``: the interface's settings from the CLI."""
    known: dict[str, type] = {"min_quorum": int, "target_nresults": int, "tag": str,
                              "delay_bound": float, "fpops_est": float}
    options: dict[str, object] = {}
    for item in (app_args or "").split():
        key, _, value = item.partition("=")
        if key not in known or not value:
            raise UsageError(
                f"bad -a setting {item!r} for the boinc interface "
                f"(known: {', '.join(f'{k}=...' for k in known)})"
            )
        try:
            options[key] = known[key](value)
        except ValueError:
            raise UsageError(f"bad value in -a {item!r}") from None
    return options
