"""The BOINC interface: tasks become work units, volunteers' clients run them in the bundle.

It runs on the project's server (``-p`` names the project directory), as the project's owner:

- ``submit`` queues the task's work unit. A task small enough (``INLINE_TASK_MAX`` signed) travels
  in the work unit's command line, when every platform's newest app version understands that
  (``kit.app_features``): nothing to stage, nothing for the client to download. A larger one is
  written into the tag's directory below the project's download directory
  (``download/pymw_tasks/TAG/``);
  queued work units are created in batches by one ``create_work --stdin`` each (its bulk mode), so
  a thousand tasks cost one process, not a thousand. A full batch's create_work runs in the
  background while the master encodes and stages the next one (two at most at once): the first
  work units exist before the last task is encoded.
- Data the tasks share (a blob named by its digest, see ``put_shared``) is staged once, as a
  constant input every work unit that needs it references: it is neither copied into each task
  file nor hashed again by create_work for each work unit.
- The app (deployed by ``pymw-admin deploy-app``) runs the PyBOINC bundle on the volunteer's
  machine: logical input ``pymw_task``, output ``pymw_result``.
- The app's assimilator daemon (``bin/pymw_assimilator --app APP``) files each canonical result
  as ``PROJECT/pymw/results/WU_NAME.result`` and each failed work unit as ``.error`` (with
  BOINC's error and the stderr its hosts reported), a batch at a time. ``wait`` picks them up
  from there.
- Results are untrusted (``trusted = False``): the master decodes them without executing code.
- Task files are signed with the project's task key (``kit.task_signing``, made by deploy-app):
  the bundle refuses one the key did not sign before unpickling anything. With a quorum above 1
  the project's config.xml gets ``<one_result_per_user_per_wu>``, so one volunteer cannot fill
  a quorum alone.
- Resume: every submitted work unit is journalled under ``PROJECT/pymw/masters/TAG/``. A master
  takes over what an earlier one with the same tag (by default the master script's name) left
  uncollected only when asked (``resume=yes``, ``Master(..., resume=True)``), matching them to
  its own tasks by content (runtime.earlier); otherwise it refuses to start while such leftovers
  exist, so no run ever hands out another run's results. A clean exit or ``pymw-admin stop``
  cancels the work units still open and settles the finished ones (``keep=yes`` keeps them for a
  later ``resume``): the tag is then clean. A crash keeps them (``detach``). ``pymw-admin runs
  drop TAG`` cancels a tag's leftovers (:func:`drop_tag`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats
from pymw_admin.interfaces.boinc_cancel import CancelFailed, Cancelled, cancel_work_units
from pymw_admin.interfaces.boinc_stall import StallWatch
from pymw_admin.interfaces.kit.app_features import all_newest_understand
from pymw_admin.interfaces.kit.journal import (
    DIGESTS_FILE,
    KEPT_RESULTS_DIR,
    append_events,
    read_events,
)
from pymw_admin.interfaces.kit.state_lock import StateLock
from pymw_admin.interfaces.kit.task_signing import TaskSigner
from pymw_admin.wire import encoding, signature
from pymw_admin.wire.boinc_contract import (
    APP_NAME,
    ERROR_SUFFIX,
    INLINE_TASK_FEATURE,
    MASTERS_DIR,
    RESULT_SUFFIX,
    RESULTS_DIR,
    SHARED_FILES_FEATURE,
    TASK_NAME,
    TASK_SUFFIX,
)
from pymw_admin.wire.encoding import EncodingError, decode_result_header

DEFAULT_APP = APP_NAME
POLL_SECONDS = 0.5
# work units per create_work process: big enough that its start-up is noise, small enough that
# the first ones exist while the master still encodes the rest
BATCH_SIZE = 1000
# create_work processes running at once: one inserting while the next starts up and parses
CREATE_WORK_AT_ONCE = 2
# physical and open name of a shared blob: prefix + digest, the name the worker's SharedStore
# looks for beside the task file in the slot
SHARED_PREFIX = encoding.SHARED_FILE_PREFIX
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
SHARED_STICKY_SECONDS = 86400  # a shared blob's <sticky_lifetime> on volunteers' hosts
# while a master has work units out, clients are told to ask the scheduler again this soon (and
# so report results and fetch more); a client that heard "no work" otherwise backs off for
# minutes. Idle, they still look in every minute. BOINC's <next_rpc_delay>; init-project sets
# the idle value, and an admin's own value is never changed.
RPC_DELAY = 10
IDLE_RPC_DELAY = 60
# rsc_fpops_est before any task time is known: 60 s at 1 GFLOPS (BOINC's default is an hour,
# which keeps a client from fetching more than one short task at a time)
DEFAULT_FPOPS = 60e9
FLOPS_GUESS = 1e9  # the speed BOINC assumes for a host it knows nothing about
MIN_FPOPS_BOUND = 3600e9 * 10  # create_work's own bound: a long task is never cut short
# BOINC's transitioner gives a work unit up once it has more failed replicas than its
# max_error_results (and create_work refuses 0): the master's retries=N sets it to N, so a task
# that crashes on every host runs on N + 1 hosts. 1 is Master's default retries=1.
MAX_ERROR_RESULTS = 1
TASKS_DIR = "pymw_tasks"  # below the download directory: a directory of task files per tag
_TAG_CHARS = re.compile(r"[^A-Za-z0-9]+")


@dataclass
class ProjectLayout:
    """What the interface needs from a project's config.xml."""

    root: Path
    download_dir: Path
    fanout: int
    master_url: str
    download_url: str = ""  # where clients fetch download_dir's files
    _made: set[str] = field(default_factory=set, repr=False)  # directories made (fan-out, tags)

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
        master_url = text("master_url")
        return cls(
            root=root,
            download_dir=Path(download),
            fanout=int(text("uldl_dir_fanout") or 1024),
            master_url=master_url,
            download_url=(text("download_url") or master_url.rstrip("/") + "/download"
                          ).rstrip("/"),
        )

    def download_path(self, file_name: str) -> Path:
        """Where BOINC's dir_hier_path puts a file: a fan-out directory from its name's md5."""
        return Path(self._download_dir(file_name), file_name)

    def _download_dir(self, file_name: str) -> str:
        if self.fanout == 0:
            return str(self.download_dir)
        digest = hashlib.md5(file_name.encode(), usedforsecurity=False).hexdigest()
        return f"{self.download_dir}/{int(digest[1:8], 16) % self.fanout:x}"

    def task_dir(self, tag: str) -> str:
        """Where a tag's task files are: one directory, not BOINC's fan-out of 1,024, since
        create_work is told their URLs (a file created among a thousand others in one
        directory costs a half to a third of one in a directory of its own)."""
        return f"{self.download_dir}/{TASKS_DIR}/{tag}"

    def task_url(self, tag: str, file_name: str) -> str:
        return f"{self.download_url}/{TASKS_DIR}/{tag}/{file_name}"

    def stage_task(self, tag: str, file_name: str, data: bytes) -> tuple[int, str]:
        """Write a task file; its size and md5, which create_work is given instead of reading
        the file again for each work unit."""
        directory = self.task_dir(tag)
        if directory not in self._made:
            for made in (os.path.dirname(directory), directory):
                try:
                    os.mkdir(made)
                except FileExistsError:
                    continue
                os.chmod(made, 0o755)  # the web server gets through, whatever the umask
            self._made.add(directory)
        self._write(directory, file_name, data)
        return len(data), hashlib.md5(data, usedforsecurity=False).hexdigest()

    def stage(self, file_name: str, data: bytes) -> None:
        """Write a download file where BOINC's dir_hier_path puts it."""
        self._write(self._download_dir(file_name), file_name, data)

    def _write(self, directory: str, file_name: str, data: bytes) -> None:
        """Write a download file in place, readable by the web server whatever the umask.

        Not written aside and renamed: no work unit names the file before its create_work runs,
        which is after this returns, so nobody can read it half written; that saves two system
        calls a task (and plain strings, not Paths: this runs once a task).
        """
        if directory not in self._made:
            os.makedirs(directory, exist_ok=True)
            self._made.add(directory)
        fd = os.open(f"{directory}/{file_name}",
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            # readable by the web server, writable by the owner alone: a task file is code the
            # volunteers run, and the web server's group must not be able to change it
            if _UMASK & 0o044:
                os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def _on(value: str) -> bool:
    """A BOOL in config.xml as BOINC's parse_bool reads ``<tag>N</tag>``: a non-zero integer."""
    try:
        return int(value) != 0
    except ValueError:
        return False


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def default_tag() -> str:
    """The master script's name: a re-run of the same script resumes its work units."""
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "master"
    return _TAG_CHARS.sub("_", script).strip("_") or "master"


class BoincInterface:
    name = "boinc"
    trusted = False  # volunteers' results: decoded without executing code
    max_error_results = MAX_ERROR_RESULTS

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
        resume: bool = False,
        keep: bool = False,
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
        self.resume = resume  # the master adopts leftovers only when asked (Master reads this)
        self.keep = keep  # a clean close leaves open work units for a later resume
        self._check_app()
        self._signer = TaskSigner.for_project(self.layout.root)
        self.results_dir = self.layout.root.joinpath(*RESULTS_DIR)
        self.state_dir = self.layout.root.joinpath(*MASTERS_DIR, self.tag)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.min_quorum > 1:
            self._one_result_per_user()
        self._lock_file = self._claim_tag()
        self._submitted_log = self.state_dir / "submitted.jsonl"
        self._collected_log = self.state_dir / "collected.jsonl"
        self._app_template = self._write_task_template()
        # small tasks go in the command line only if every volunteer's worker reads them there
        self.inline_tasks = all_newest_understand(self.layout.root, self.app_name,
                                                  INLINE_TASK_FEATURE)
        # large data files staged once as shared blobs only if every volunteer's worker reads
        # them so (the Master reads this); else they ride in every task file
        self.shared_data_files = all_newest_understand(self.layout.root, self.app_name,
                                                       SHARED_FILES_FEATURE)
        self._inline_templates: dict[str, str | None] = {}  # file template -> inline one
        # (task id, work-unit name, input template, task file) not yet handed to create_work:
        # _launch signs a batch of them at once and stages them
        self._queued: list[tuple[str, str, str, bytes]] = []
        # the create_work processes running in the background, oldest first
        self._creating: deque[_Creation] = deque()
        self._open: dict[str, str] = {}  # task_id -> work-unit name, awaiting a result
        self._task_of: dict[str, str] = {}  # work-unit name -> task_id, for the same
        self._shared: set[str] = set()  # digests of shared blobs staged for this master
        self._templates: dict[tuple[str, ...], str] = {}  # shared digests -> input template
        self._ready: list[Completion] = []  # failures known before any work unit ran
        self._done_count = 0
        self._task_seconds: list[float] = []  # measured by the volunteers' workers
        # work units whose task may be a file (staged here, or adopted): the rest have none
        self._task_files: set[str] = set()
        self._asked_back = False  # config.xml says RPC_DELAY since this master's first work
        self._stall = StallWatch(self.layout.root, self.tag)  # says why work units stay unsent
        self._sweep_cancelled()

    def _sweep_cancelled(self) -> None:
        """Cancelled work units are assimilated as errors after they were cancelled, and settled
        ones may be assimilated after the run ended: remove what the assimilator filed for them
        since."""
        for entry in self._read_log(self._collected_log):
            if entry.get("cancelled") or entry.get("settled"):
                name = self.wu_name(entry["task_id"])
                (self.results_dir / f"{name}.error").unlink(missing_ok=True)
                (self.results_dir / f"{name}.result").unlink(missing_ok=True)

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
        self.submit_many([(task_id, task_file)])
        # one task alone waits for wait() or close(): a run of submit() calls still batches

    def submit_many(self, tasks: Iterable[tuple[str, bytes]]) -> None:
        """Queue each task's work unit; every full batch is signed (one signature), staged and
        goes to create_work in the background (``flush`` or ``wait`` creates the rest)."""
        for task_id, blob in tasks:
            name = self.wu_name(task_id)
            template = self._template_for(blob)
            self._queued.append((task_id, name, template, blob))
            if len(self._queued) >= BATCH_SIZE:
                self._launch()

    def flush(self) -> None:
        """Create every queued work unit now, and wait until they exist."""
        self._launch()
        self._reap()

    def set_retries(self, retries: int) -> None:
        """The master's ``retries``: a work unit is given up after ``retries`` + 1 failed
        replicas (2 at least), so a task that crashes on every host takes no more volunteers.
        The master does not retry a work unit BOINC gave up: BOINC retried it already."""
        self.max_error_results = max(1, retries)

    def _create_work_command(self) -> list[str]:
        command = [
            "bin/create_work",
            "--appname", self.app_name,
            "--wu_template", self._app_template,
            "--result_template", f"templates/{self.app_name}_out",
            "--min_quorum", str(self.min_quorum),
            "--target_nresults", str(self.target_nresults),
            # a host that fails (a crash, a lost upload) hands the task to another as the
            # master's retries allow; a task that raised is a success here, and not retried
            "--max_error_results", str(self.max_error_results),
            "--max_total_results", str(2 * self.target_nresults + self.max_error_results),
            "--max_success_results", str(2 * self.target_nresults + 1),
            "--stdin",
        ]
        if self.delay_bound:
            command += ["--delay_bound", str(self.delay_bound)]
        estimate = self.estimated_fpops()
        command += ["--rsc_fpops_est", f"{estimate:.0f}",
                    "--rsc_fpops_bound", f"{max(MIN_FPOPS_BOUND, 1000 * estimate):.0f}"]
        return command

    def _launch(self) -> None:
        """Start one ``create_work --stdin`` for the queued work units, without waiting for it.

        At most CREATE_WORK_AT_ONCE run (the oldest is reaped first): while one waits for the
        database, the next batch is on its way; each one's outcome decides the fate of exactly
        its own batch.
        """
        if not self._queued:
            return
        while len(self._creating) >= CREATE_WORK_AT_ONCE:
            self._reap_oldest()
        batch, self._queued = self._queued, []
        signed = self._signer.sign_batch([blob for *_, blob in batch])
        lines = []
        for (_task_id, name, template, _blob), task_file in zip(batch, signed, strict=True):
            option = signature.command_line_option(task_file) if self.inline_tasks else None
            inline = self._inline_template(template) if option is not None else None
            if inline is not None:
                # a file created costs more than the rest of a task's way to its work unit,
                # and the client a download
                lines.append(f"--wu_name {name} --wu_template {inline} --command_line {option}\n")
                continue
            file_name = name + TASK_SUFFIX
            size, md5 = self.layout.stage_task(self.tag, file_name, task_file)
            self._task_files.add(name)
            # its URL, size and md5 (BOINC's remote-file form): create_work neither looks the
            # file up nor reads it, which is half of its time per work unit
            lines.append(f"--wu_name {name} "
                         + (f"--wu_template {template} " if template != self._app_template
                            else "")
                         + f"--remote_file {self.layout.task_url(self.tag, file_name)} "
                           f"{size} {md5}\n")
        del signed
        # journal first: a master that dies right after create_work still finds its work units
        self._append_log(self._submitted_log, [{"task_id": t, "wu": n} for t, n, *_ in batch])
        created = [(t, n) for t, n, *_ in batch]
        # stdin and output through files: the master never blocks on a pipe while it runs
        output = tempfile.TemporaryFile()  # noqa: SIM115 -- _reap closes it when create_work ends
        try:
            with tempfile.TemporaryFile() as stdin:
                stdin.write("".join(lines).encode())
                stdin.seek(0)
                process = subprocess.Popen(self._create_work_command(), stdin=stdin,
                                           stdout=output, stderr=subprocess.STDOUT,
                                           cwd=self.layout.root)
        except OSError as exc:
            output.close()
            self._fail_batch(created, f"create_work failed: {exc.strerror or exc}")
            return
        self._creating.append(_Creation(process, created, output))

    def _reap(self) -> None:
        """Wait for every running create_work; their work units are then open, or failed."""
        while self._creating:
            self._reap_oldest()

    def _reap_oldest(self) -> None:
        creation = self._creating.popleft()
        returncode = creation.process.wait()
        with creation.output:
            creation.output.seek(0)
            said = creation.output.read().decode(errors="replace")
        if returncode != 0:
            reason = said.strip().splitlines()
            self._fail_batch(creation.batch, "create_work failed: "
                             + (reason[-1] if reason else f"exit {returncode}"))
            return
        for task_id, name in creation.batch:
            self._open[task_id] = name
            self._task_of[name] = task_id
        # the run's log says something before the first result comes back
        print(f"pymw: {len(creation.batch)} work unit(s) queued for volunteers (tag {self.tag}, "
              f"{len(self._open)} out)", file=sys.stderr, flush=True)
        if not self._asked_back:
            self._ask_clients_back(True)
            self._asked_back = True

    def estimated_fpops(self) -> float:
        """``fpops_est`` if given, else twice the median task time measured so far at
        FLOPS_GUESS, else DEFAULT_FPOPS."""
        if self.fpops_est:
            return self.fpops_est
        if not self._task_seconds:
            return DEFAULT_FPOPS
        times = sorted(self._task_seconds)
        return max(1e9, 2 * times[len(times) // 2] * FLOPS_GUESS)

    def _measure(self, record: bytes) -> None:
        try:
            header = decode_result_header(record)
        except EncodingError:
            return
        if header.finished > header.started > 0:
            self._task_seconds.append(header.finished - header.started)

    def _ask_clients_back(self, soon: bool) -> None:
        """config.xml's <next_rpc_delay>: RPC_DELAY while masters have work out, IDLE_RPC_DELAY
        when the last one ends (init-project sets that one). A value of the admin's own is left
        alone. The scheduler reads config.xml afresh for every request."""
        config = self.layout.root / "config.xml"
        with (self.layout.root / "pymw" / "config.lock").open("a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                tree = etree.parse(str(config))
            except (OSError, etree.XMLSyntaxError):
                return  # the project's own file is broken: not ours to repair
            cfg = tree.find("config")
            if cfg is None:
                return
            node = cfg.find("next_rpc_delay")
            current = (node.text or "").strip() if node is not None else ""
            if node is not None and current not in (str(RPC_DELAY), str(IDLE_RPC_DELAY)):
                return  # the admin's setting
            wanted = RPC_DELAY if soon or self._other_masters_alive() else IDLE_RPC_DELAY
            if current == str(wanted):
                return
            if node is None:
                node = etree.SubElement(cfg, "next_rpc_delay")
            node.text = str(wanted)
            tmp = config.with_name(f".{config.name}.pymw")
            tmp.write_bytes(etree.tostring(tree, encoding="utf-8") + b"\n")
            tmp.chmod(config.stat().st_mode & 0o777)
            os.replace(tmp, config)

    def _one_result_per_user(self) -> None:
        """A quorum is only worth its replicas when different volunteers return them: turn on
        BOINC's <one_result_per_user_per_wu> (facts, decide, apply, verify; as the owner, who
        runs the master). It stays on: other masters may rely on it."""
        config = self.layout.root / "config.xml"
        setting = "one_result_per_user_per_wu"
        with (self.layout.root / "pymw" / "config.lock").open("a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            for attempt in range(2):
                try:
                    tree = etree.parse(str(config))
                except (OSError, etree.XMLSyntaxError) as exc:
                    raise EngineUnavailable(f"cannot read {config}: {exc}") from None
                cfg = tree.find("config")
                node = cfg.find(setting) if cfg is not None else None
                value = (node.text or "").strip() if node is not None else ""
                if _on(value):
                    return
                if attempt or cfg is None:
                    raise EngineUnavailable(
                        f"min_quorum={self.min_quorum} needs <{setting}> on in {config}, "
                        "and it could not be set there")
                if node is None:
                    node = etree.SubElement(cfg, setting)
                node.text = "1"
                tmp = config.with_name(f".{config.name}.pymw")
                try:
                    tmp.write_bytes(etree.tostring(tree, encoding="utf-8") + b"\n")
                    tmp.chmod(config.stat().st_mode & 0o777)
                    os.replace(tmp, config)
                except OSError as exc:
                    raise EngineUnavailable(f"cannot turn on <{setting}> in {config}: "
                                            f"{exc.strerror or exc}") from None
                print(f"pymw: turned on <{setting}> in {config} (min_quorum="
                      f"{self.min_quorum}: each replica from another volunteer)",
                      file=sys.stderr, flush=True)

    def _other_masters_alive(self) -> bool:
        for lock_path in (self.layout.root / "pymw" / "masters").glob("*/lock"):
            if lock_path.parent == self.state_dir:
                continue
            with lock_path.open("a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
        return False


    def _fail_batch(self, batch: list[tuple[str, str]], failure: str) -> None:
        """The batch's work units were not made: each task fails now (the master may retry it,
        under a new work unit), and the journal says so, so a resumed master never waits for
        them. Their task files go too: no work unit of ours reads them (a work unit create_work
        made before it stopped fails at its download instead of running a task nobody
        collects)."""
        self._append_log(self._submitted_log,
                         [{"task_id": t, "wu": n, "failed": failure} for t, n in batch])
        self._ready += [Completion(t, failure=failure, worker=f"boinc:{n}") for t, n in batch]
        for _task_id, name in batch:
            self._remove_task_file(name)

    # --- shared data ---------------------------------------------------------------------------

    def put_shared(self, digest: str, blob: bytes) -> None:
        """Stage a shared blob once: every work unit whose task names it gets this one file.

        BOINC's own ``.md5`` side file goes next to it, so create_work reads the checksum
        instead of hashing the blob again for each work unit.
        """
        if not _DIGEST.match(digest):
            raise UsageError(f"a shared blob's name must be its sha256 digest, not {digest!r}")
        name = SHARED_PREFIX + digest
        path = self.layout.download_path(name)
        md5_file = path.with_name(name + ".md5")
        if not (path.exists() and md5_file.exists()):
            self.layout.stage(name, blob)
            md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
            # BOINC's format (process_input_template.cpp): "MD5 NBYTES", newer than the file
            tmp = md5_file.with_name(f".{md5_file.name}.part")
            tmp.write_text(f"{md5} {float(len(blob)):.15e}\n")
            tmp.chmod(0o644)
            os.replace(tmp, md5_file)
        self._shared.add(digest)

    def drop_shared(self, digest: str) -> None:
        """The master needs the blob for no further task. The staged file stays: work units
        already created (and later masters resuming them) still name it."""
        self._shared.discard(digest)

    def _template_for(self, blob: bytes) -> str:
        """The input template for a task: the app's, or one naming the shared blobs it needs."""
        if not self._shared:
            return self._app_template
        digests = encoding.task_shared(blob)
        if not digests:
            return self._app_template
        key = tuple(sorted(set(digests)))
        template = self._templates.get(key)
        if template is None:
            missing = [d for d in key if d not in self._shared]
            if missing:
                raise UsageError(f"a task needs shared blob {missing[0]} that was not put here "
                                 "(put_shared first)")
            template = self._write_template(key)
            self._templates[key] = template
        return template

    def _write_task_template(self) -> str:
        """The app's input template with the task file marked ``<no_delete/>``: the file
        deleter looks files up where it would have staged them, not at the URL create_work was
        given; the master deletes task files itself (when it collects or cancels a task, and
        ``runs drop`` a tag's)."""
        root = self.layout.root
        try:
            top = etree.parse(str(root / "templates" / f"{self.app_name}_in")).getroot()
        except (OSError, etree.XMLSyntaxError) as exc:
            raise EngineUnavailable(f"cannot read the app's input template: {exc}; deploy the "
                                    "app again") from None
        for info in top.findall("file_info"):
            if info.find("physical_name") is None and info.find("no_delete") is None:
                etree.SubElement(info, "no_delete")
        return self._save_template(top, "task")

    def _inline_template(self, template: str) -> str | None:
        """``template`` without its task file, for a task in the command line; None when the
        template has inputs other than the task and shared blobs (an admin's own)."""
        if template in self._inline_templates:
            return self._inline_templates[template]
        top = etree.parse(str(self.layout.root / template)).getroot()
        workunit = top.find("workunit")
        infos = top.findall("file_info")
        refs = workunit.findall("file_ref") if workunit is not None else []
        variable = [i for i, info in enumerate(infos) if info.find("physical_name") is None]
        inline = None
        # create_work pairs file_refs with file_infos by position
        if workunit is not None and len(refs) == len(infos) and len(variable) == 1 \
                and refs[variable[0]].findtext("open_name") == TASK_NAME:
            top.remove(infos.pop(variable[0]))
            workunit.remove(refs.pop(variable[0]))
            for number, (info, ref) in enumerate(zip(infos, refs, strict=True)):
                for element in (info.find("number"), ref.find("file_number")):
                    if element is not None:
                        element.text = str(number)
            inline = self._save_template(top, template.rpartition("_in_")[2] + "-inline")
        self._inline_templates[template] = inline
        return inline

    def _save_template(self, top: etree._Element, key: str) -> str:
        relative = f"pymw/templates/{self.app_name}_in_{key}"
        target = self.layout.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = etree.tostring(top, pretty_print=True)
        if not target.exists() or target.read_bytes() != text:
            tmp = target.with_name(f".{target.name}.part{os.getpid()}")
            tmp.write_bytes(text)
            os.replace(tmp, target)
        return relative

    def _write_template(self, digests: tuple[str, ...]) -> str:
        """The app's input template plus one constant input per shared blob (BOINC's
        ``<physical_name>`` form, never deleted by the file deleter with its work units), sticky
        on the volunteer's host for SHARED_STICKY_SECONDS after the last work unit naming it."""
        root = self.layout.root
        tree = etree.parse(str(root / self._app_template))
        top = tree.getroot()
        workunit = top.find("workunit")
        if workunit is None:
            raise EngineUnavailable(f"{self._app_template} has no <workunit>: deploy the app again")
        number = len(top.findall("file_info"))
        for offset, digest in enumerate(digests):
            info = etree.Element("file_info")
            etree.SubElement(info, "number").text = str(number + offset)
            etree.SubElement(info, "physical_name").text = SHARED_PREFIX + digest
            etree.SubElement(info, "no_delete")
            # the client keeps it between work units (one download per host, not one per batch
            # of work it holds), until a day after the last scheduler reply that named it
            etree.SubElement(info, "sticky")
            etree.SubElement(info, "sticky_lifetime").text = str(SHARED_STICKY_SECONDS)
            workunit.addprevious(info)
            ref = etree.SubElement(workunit, "file_ref")
            etree.SubElement(ref, "file_number").text = str(number + offset)
            etree.SubElement(ref, "open_name").text = SHARED_PREFIX + digest
            etree.SubElement(ref, "copy_file")
        return self._save_template(top, hashlib.sha256("".join(digests).encode()).hexdigest()[:24])

    # --- collecting ----------------------------------------------------------------------------

    def wait(self, timeout: float | None) -> list[Completion]:
        self.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found, self._ready = self._ready + self._collect(), []
            self._stall.tick(len(self._open), bool(found))
            if found or not self._open:
                return found
            if deadline is not None and time.monotonic() >= deadline:
                return []
            pause = self.poll_seconds
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    def _collect(self) -> list[Completion]:
        """What the assimilator filed for this master's open work units.

        One listing of the results directory a poll, looked up by work-unit name: the cost
        follows the results waiting there, not the number of work units outstanding.
        """
        found: list[Completion] = []
        if not self._open:
            return found
        with os.scandir(self.results_dir) as entries:
            names = [entry.name for entry in entries]
        for file_name in names:
            name, dot, suffix = file_name.rpartition(".")
            task_id = self._task_of.get(name) if dot else None
            if task_id is None or dot + suffix not in (RESULT_SUFFIX, ERROR_SUFFIX):
                continue
            path = self.results_dir / file_name
            if dot + suffix == RESULT_SUFFIX:
                record = path.read_bytes()
                self._measure(record)
                try:
                    named = decode_result_header(record)
                except EncodingError:
                    named = None  # the master reports a record it cannot read
                # a task file is signed for the project, not for one work unit: a result must
                # name the task its work unit was made for ("?": a worker that refused the
                # task file and believed nothing of it)
                if named is not None and named.task_id != task_id and (
                        named.ok or named.task_id != "?"):
                    found.append(Completion(
                        task_id, failure=f"the result names task {named.task_id[:80]!r}, not "
                        f"this work unit's task {task_id!r}: refused", retryable=False,
                        worker=f"boinc:{name}", error_type="ResultOfAnotherTask"))
                else:
                    found.append(Completion(task_id, record=record, worker=f"boinc:{name}"))
            else:
                found.append(self._failure(task_id, name, path))
            del self._open[task_id]
            del self._task_of[name]
            self._done_count += 1
        return found

    @staticmethod
    def _failure(task_id: str, name: str, error_file: Path) -> Completion:
        try:
            info = json.loads(error_file.read_text())
        except ValueError:
            info = {}
        stderr = str(info.get("stderr", ""))
        # the assimilator indents what replicas wrote under a header of its own for each: the
        # last line a task wrote, not the header of a replica that never ran (didn't need)
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        last = ([ln for ln in lines if ln.startswith("  ")] or lines or [""])[-1]
        # the replicas hosts were sent and failed: the task's attempts (older assimilators: 0)
        failed = info.get("failed_results")
        attempts = failed if isinstance(failed, int) and failed > 0 else 0
        return Completion(
            task_id,
            failure=f"BOINC work unit {name} failed: {info.get('error', 'unknown error')}"
            + (f" ({attempts} failed replica{'s' if attempts > 1 else ''})" if attempts else "")
            + (f"; stderr: {last.strip()}" if last else ""),
            retryable=False,
            worker=f"boinc:{name}",
            stderr=stderr,
            error_type="BoincWorkunitError",
            attempts=attempts,
        )

    def leftovers(self) -> list[tuple[str, str]]:
        """``(task_id, work unit)`` an earlier master with this tag submitted and nobody collected
        or cancelled (read from the journal; nothing is adopted)."""
        done = {e["task_id"] for e in self._read_log(self._collected_log)}
        latest: dict[str, dict[str, str]] = {}  # a retried task's last entry is what counts
        for entry in self._read_log(self._submitted_log):
            latest[entry["task_id"]] = entry
        return [(task_id, entry["wu"]) for task_id, entry in latest.items()
                if task_id not in done and "failed" not in entry and task_id not in self._open
                and isinstance(entry.get("wu"), str)]

    def resumed_tasks(self) -> list[tuple[str, str]]:
        adopted = self.leftovers()
        for task_id, name in adopted:
            self._open[task_id] = name
            self._task_of[name] = task_id
            self._task_files.add(name)  # an earlier master's: inline or not, it cannot say
        if adopted:
            self._ask_clients_back(True)
        return adopted

    def acknowledge(self, task_id: str) -> None:
        name = self.wu_name(task_id)
        self._append_log(self._collected_log, [{"task_id": task_id}])
        for suffix in (RESULT_SUFFIX, ERROR_SUFFIX):
            (self.results_dir / f"{name}{suffix}").unlink(missing_ok=True)
        self._remove_task_file(name)

    def cancel(self, task_id: str) -> None:
        self._queued = [q for q in self._queued if q[0] != task_id]

    def _remove_task_file(self, name: str) -> None:
        if name not in self._task_files:
            return  # it went in the command line
        self._task_files.discard(name)
        file_name = name + TASK_SUFFIX
        try:
            os.unlink(f"{self.layout.task_dir(self.tag)}/{file_name}")
        except FileNotFoundError:  # staged where earlier versions staged it
            self.layout.download_path(file_name).unlink(missing_ok=True)

    def _remove_task_dir(self) -> None:
        """The tag's task directory, once no task file is left in it."""
        with contextlib.suppress(OSError):
            os.rmdir(self.layout.task_dir(self.tag))

    def workers(self) -> list[WorkerStats]:
        creating = sum(len(creation.batch) for creation in self._creating)
        return [WorkerStats(name=f"boinc:{self.layout.root.name}", tasks_done=self._done_count,
                            in_flight=len(self._open) + len(self._queued) + creating)]

    def _cancel(self, open_units: dict[str, str]) -> Cancelled:
        """Cancel work units (unsent replicas are never sent) and journal them as collected, so
        no later master waits for or adopts them; those BOINC is done with stay as they are. In
        bulk, as BOINC's cancel_jobs does one at a time; where the database cannot be reached
        that way, cancel_jobs itself, one each."""
        names = list(open_units.values())
        try:
            outcome = cancel_work_units(self.layout.root, names)
        except CancelFailed as exc:
            # cancel_jobs marks finished work errored too: spare those the assimilator filed
            done = {n for n in names if (self.results_dir / f"{n}.result").exists()}
            outcome = Cancelled([n for n in names if n not in done],
                                [n for n in names if n in done])
            print(f"pymw: cancelling {len(outcome.cancelled)} work unit(s) with bin/cancel_jobs, "
                  f"one at a time: the database refused them in bulk ({exc})", file=sys.stderr,
                  flush=True)
            for name in outcome.cancelled:
                subprocess.run(["bin/cancel_jobs", "--name", name], cwd=self.layout.root,
                               capture_output=True, check=False)  # already over: nothing to do
        if names:  # the log of a run that stop ended says what became of its work
            kept = f", kept {len(outcome.finished)} BOINC had finished" if outcome.finished else ""
            print(f"pymw: cancelled {len(outcome.cancelled)} work unit(s){kept}",
                  file=sys.stderr, flush=True)
        for name in names:
            for suffix in (".result", ".error"):
                (self.results_dir / f"{name}{suffix}").unlink(missing_ok=True)
            self._remove_task_file(name)
        if open_units:
            self._append_log(self._collected_log,
                             [{"task_id": t, "cancelled": "yes"} for t in open_units])
        return outcome

    def _settle(self, finished: dict[str, str]) -> None:
        """Finished work units a clean end leaves uncollected (their results, when they returned,
        are in the master's kept results): journalled as settled, their files removed."""
        if not finished:
            return
        self._task_files.update(finished.values())  # an earlier master's: files or not
        for name in finished.values():
            for suffix in (RESULT_SUFFIX, ERROR_SUFFIX):
                (self.results_dir / f"{name}{suffix}").unlink(missing_ok=True)
            self._remove_task_file(name)
        self._append_log(self._collected_log,
                         [{"task_id": t, "settled": "yes"} for t in finished])

    def detach(self) -> None:
        """The master ended by an exception or a crash: keep the work units for a later
        ``resume`` and let go of the tag."""
        if not self._lock_file.held:
            return
        try:
            self.flush()
        finally:
            self._lock_file.release()  # its work units stay out: clients keep coming back

    def close(self) -> None:
        """A clean end (or ``stop``): cancel the work units still open and settle the finished
        ones nobody collected, unless ``keep``: after it the tag holds no leftovers."""
        if not self._lock_file.held:
            return
        try:
            self.flush()
            if not self.keep:
                self._cancel(self._open)
                self._open = {}
                self._settle(dict(self.leftovers()))
                self._remove_task_dir()
        finally:
            self._lock_file.release()  # releases the tag
            self._ask_clients_back(False)


def drop_tag(project_home: str | os.PathLike[str], tag: str,
             app_name: str = DEFAULT_APP) -> Cancelled:
    """Cancel the work units a tag's earlier masters left; return which, and which BOINC had
    finished (kept as they are). Refused while a master holds the tag."""
    interface = BoincInterface(project_home, app_name=app_name, tag=tag)
    try:
        left = dict(interface.leftovers())
        interface._task_files.update(left.values())  # an earlier master's: files or not
        outcome = interface._cancel(left)
        interface._remove_task_dir()
        # the master's state beside the journal: kept results and content index go with the tag
        shutil.rmtree(interface.state_dir / KEPT_RESULTS_DIR, ignore_errors=True)
        (interface.state_dir / DIGESTS_FILE).unlink(missing_ok=True)
    finally:
        interface.detach()
        interface._ask_clients_back(False)
    return outcome


@dataclass
class _Creation:
    """One create_work running in the background, and the batch it creates."""

    process: subprocess.Popen[bytes]
    batch: list[tuple[str, str]]  # (task_id, work-unit name)
    output: IO[bytes]


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


def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError(text)


def _parse_app_args(app_args: str | None) -> dict[str, object]:
    """``-a "min_quorum=2 target_nresults=3 tag=run1"``: the interface's settings from the CLI."""
    known: dict[str, Callable[[str], object]] = {
        "min_quorum": int, "target_nresults": int, "tag": str, "delay_bound": float,
        "fpops_est": float, "resume": _yes_no, "keep": _yes_no}
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


def main(argv: list[str] | None = None) -> int:
    """``python -m pymw_admin.interfaces.boinc drop PROJECT_HOME TAG``: what `pymw-admin runs drop`
    runs on the server, as the project's owner."""
    from pymw_admin.errors import PymwError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "drop":
        print("usage: python -m pymw_admin.interfaces.boinc drop PROJECT_HOME TAG",
              file=sys.stderr)
        return 2
    try:
        outcome = drop_tag(args[1], args[2])
    except PymwError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"@dropped {len(outcome.cancelled)} {len(outcome.finished)}")  # cancelled, kept
    return 0


if __name__ == "__main__":
    sys.exit(main())
