"""The HTCondor interface: tasks become vanilla-universe jobs, through the htcondor2 bindings.

Tasks handed over together become one cluster (one proc per task, item data naming each task).
Every job carries the same executable, spooled to the schedd with the task file, so the schedd
need not share the master's file system:

* a PyBOINC bundle (``pymw-admin bundle build``): the one-directory bundle packed into a
  self-extracting shell script, so pool nodes need no Python at all; a node unpacks it once
  into its user's cache and every later job there runs it from the cache; or
* a Python that the nodes have (``-c /usr/bin/python3``): pymw-admin and cloudpickle travel as a
  zip after a small shell header and the node's Python imports them from it.

Results come back by file transfer (``Schedd.retrieve``) into the state directory. A held job is
removed and reported with HTCondor's hold reason; the master decides about retries.

Resume: with a state directory (``state_dir`` or ``-p``, or a ``tag`` naming one), the interface
keeps a journal there (``journal.jsonl``: task -> job, done, collected). A master restarted with
the same state directory re-adopts every task the previous one did not collect: jobs still queued
are followed, results already retrieved are handed over, nothing is submitted twice.

Files (``STATE`` is the state directory): ``STATE/tasks/ID.task`` (task files, spooled),
``STATE/out/ID.result|.out|.err`` (what came back), ``STATE/journal.jsonl``, ``STATE/tag``,
``STATE/lock`` (held by the running master, with its pid: one master per state directory).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import classad2
import htcondor2

from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats
from pymw_admin.interfaces.kit.journal import Journal
from pymw_admin.interfaces.kit.state_lock import StateLock
from pymw_admin.interfaces.kit.worker_program import WorkerProgram, worker_program
from pymw_admin.wire.encoding import read_task_header

# HTCondor's JobStatus values
IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING, SUSPENDED = 1, 2, 3, 4, 5, 6, 7
HOLD_SPOOLING_INPUT = 16  # the hold every spooled job sits in until its input is uploaded
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PROJECTION = [
    "ClusterId", "ProcId", "JobStatus", "PymwTask", "HoldReason", "HoldReasonCode",
    "ExitCode", "ExitBySignal", "ExitSignal", "RemoteHost", "LastRemoteHost",
]


def default_state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "pymw-admin" / "condor"


@dataclass
class _Task:
    task_id: str
    name: str
    job: str | None = None  # "cluster.proc" of the current attempt
    state: str = "queued"  # queued, submitted, done, failed, collected, abandoned
    reason: str = ""


# --- the interface -------------------------------------------------------------------------------


class CondorInterface:
    name = "condor"
    trusted = True  # the pool runs our own jobs

    def __init__(
        self,
        app_path: str | os.PathLike[str] | None = None,
        app_args: str | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        tag: str | None = None,
        schedd: htcondor2.Schedd | None = None,
        submit_options: dict[str, str] | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        if tag is not None and not _TAG.match(tag):
            raise UsageError(f"condor tag {tag!r}: use 1-64 letters, digits, '.', '_' or '-'")
        self.program = worker_program(app_path, app_args)
        self.poll_interval = poll_interval
        self.submit_options = dict(submit_options or {})
        # find the schedd before anything is created: "no schedd" must leave nothing behind
        try:
            self.schedd = schedd if schedd is not None else htcondor2.Schedd()
        except Exception as exc:  # the bindings raise several types for "no schedd"
            raise EngineUnavailable(f"no HTCondor schedd could be located: {exc}") from None
        self._temporary = state_dir is None and tag is None
        if state_dir is not None:
            self.state_dir = Path(state_dir).resolve()
        elif tag is not None:
            self.state_dir = default_state_root() / tag
        else:
            self.state_dir = Path(tempfile.mkdtemp(prefix="pymw-condor-"))
        self._tasks: dict[str, _Task] = {}
        self._by_job: dict[str, str] = {}  # job id -> task id, for the live attempt only
        self._pending: list[tuple[str, bytes]] = []
        self._ready: deque[Completion] = deque()
        self._running: dict[str, str] = {}  # job id -> slot, from the last poll
        self._done_by_slot: dict[str, int] = {}
        self._resumed: list[tuple[str, str]] = []
        self._query_failing_since: float | None = None
        self._closed = False
        try:
            self._open_state(tag)
        except BaseException:
            if self._temporary:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            raise

    def _open_state(self, tag: str | None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = StateLock.claim(
            self.state_dir,
            f"condor state directory {self.state_dir} is in use by a running master "
            "(pid {pid}); wait for it to end or use another -p/tag",
        )
        try:
            for sub in ("tasks", "out"):
                (self.state_dir / sub).mkdir(exist_ok=True)
            tag_file = self.state_dir / "tag"
            if tag_file.exists():
                self.tag = tag_file.read_text().strip()
            else:
                self.tag = tag or f"pymw-{uuid.uuid4().hex[:12]}"
                tag_file.write_text(self.tag + "\n")
            self._journal = Journal(self.state_dir / "journal.jsonl")
            try:
                self._resume()
            except BaseException:
                self._journal.close()
                raise
        except BaseException:
            self._lock.release()
            raise

    # --- resume ----------------------------------------------------------------------------------

    def _resume(self) -> None:
        """Re-adopt what a previous master left in this state directory."""
        for event in self._journal.read():
            if not (isinstance(event, dict) and isinstance(event.get("id"), str)
                    and isinstance(event.get("e"), str)):
                continue  # valid JSON, but not an event of ours
            task_id = event["id"]
            kind = event["e"]
            if kind == "task":
                self._tasks[task_id] = _Task(task_id, event.get("name", ""))
            elif task_id not in self._tasks:
                continue
            task = self._tasks[task_id]
            if kind == "job" and isinstance(event.get("job"), str):
                task.job, task.state = event["job"], "submitted"
            elif kind in ("done", "collected", "abandoned"):
                task.state = kind
            elif kind == "failed":
                task.state, task.reason = "failed", event.get("why", "")
        live = {t.task_id: t for t in self._tasks.values()
                if t.state not in ("collected", "abandoned")}
        if not live:
            return
        # not the tolerant _query: taking "no answer" for "no jobs" would submit every live
        # task again while its job still runs
        try:
            ads = self.schedd.query(f"PymwTag == {classad2.quote(self.tag)}", _PROJECTION)
        except Exception as exc:
            why = " ".join(str(exc).split())
            raise EngineUnavailable(f"cannot resume: the HTCondor schedd does not answer: {why}"
                                    ) from None
        queue = {ad["PymwTask"]: ad for ad in ads}
        resubmit: list[tuple[str, bytes]] = []
        for task in live.values():
            blob_path = self.state_dir / "tasks" / f"{task.task_id}.task"
            try:
                blob = blob_path.read_bytes()
            except OSError:
                continue  # nothing to run again: leave it out
            self._resumed.append((task.task_id, task.name))
            ad = queue.get(task.task_id)
            result = self.state_dir / "out" / f"{task.task_id}.result"
            if task.state == "done" and result.exists():
                self._ready.append(Completion(task.task_id, record=result.read_bytes(),
                                              worker="(resumed)"))
            elif task.state == "failed":
                self._ready.append(Completion(task.task_id, failure=task.reason,
                                              retryable=False))
            elif ad is not None and not (
                ad["JobStatus"] == HELD and ad.get("HoldReasonCode") == HOLD_SPOOLING_INPUT
            ):
                job = f"{ad['ClusterId']}.{ad['ProcId']}"
                task.job, task.state = job, "submitted"
                self._by_job[job] = task.task_id
            elif ad is None and result.exists():
                # retrieved, then the master died before writing "done": the file is whole
                # (the schedd lets a job go only after its output was fetched)
                self._ready.append(Completion(task.task_id, record=result.read_bytes(),
                                              worker="(resumed)"))
            else:
                if ad is not None:  # its input never finished spooling
                    self._remove([f"{ad['ClusterId']}.{ad['ProcId']}"], "input never spooled")
                resubmit.append((task.task_id, blob))
        self._pending.extend(resubmit)

    def resumed_tasks(self) -> list[tuple[str, str]]:
        """(task_id, name) of every task a previous master left uncollected."""
        return list(self._resumed)

    # --- submitting ------------------------------------------------------------------------------

    def submit(self, task_id: str, task_file: bytes) -> None:
        if self._closed:
            raise RuntimeError("the condor interface is closed")
        self._pending.append((task_id, task_file))

    def submit_many(self, tasks: list[tuple[str, bytes]]) -> None:
        if self._closed:
            raise RuntimeError("the condor interface is closed")
        self._pending.extend(tasks)
        self._flush()

    def _description(self) -> htcondor2.Submit:
        out = self.state_dir / "out"
        desc = {
            "universe": "vanilla",
            "executable": str(self.program.path),
            "transfer_executable": "true",
            "arguments": "$(pymw_task).task $(pymw_task).result",
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_input_files": str(self.state_dir / "tasks" / "$(pymw_task).task"),
            "transfer_output_files": "$(pymw_task).result",
            "initialdir": str(out),
            "output": "$(pymw_task).out",
            "error": "$(pymw_task).err",
            "request_cpus": "1",
            "batch_name": self.tag,
            "+PymwTag": classad2.quote(self.tag),
            "+PymwTask": '"$(pymw_task)"',
        }
        desc.update(self.submit_options)
        return htcondor2.Submit(desc)

    def _take_in(self, batch: list[tuple[str, bytes]]) -> None:
        """Write the batch's task files and journal its new tasks, before the schedd sees them."""
        events = []
        for task_id, blob in batch:
            (self.state_dir / "tasks" / f"{task_id}.task").write_bytes(blob)
            known = self._tasks.get(task_id)
            if known is None:
                name = read_task_header(blob)[0].name
                self._tasks[task_id] = _Task(task_id, name)
                events.append({"e": "task", "id": task_id, "name": name})
            else:  # a retry: the previous attempt's job is gone
                if known.job:
                    self._by_job.pop(known.job, None)
                for suffix in (".result", ".out", ".err"):
                    (self.state_dir / "out" / f"{task_id}{suffix}").unlink(missing_ok=True)
        self._journal.write(*events)

    def _flush(self) -> None:
        """Hand every pending task to the schedd as one cluster."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._take_in(batch)
        try:
            result = self.schedd.submit(
                self._description(), itemdata=iter([{"pymw_task": t} for t, _ in batch]),
                spool=True,
            )
        except Exception as exc:
            # report every task of the batch, so the master retries it or fails it (raising
            # here would lose the batch and leave the master waiting for it). No "failed" in
            # the journal: a resumed master submits these journalled, never-submitted tasks.
            why = "HTCondor refused the jobs: " + " ".join(str(exc).split())
            for task_id, _ in batch:
                task = self._tasks[task_id]
                task.job, task.state, task.reason = None, "failed", why
                self._ready.append(Completion(task_id, failure=why, retryable=True))
            return
        cluster = result.cluster()
        jobs = [f"{cluster}.{i}" for i in range(len(batch))]
        for (task_id, _), job in zip(batch, jobs, strict=True):
            task = self._tasks[task_id]
            task.job, task.state = job, "submitted"
            self._by_job[job] = task_id
        self._journal.write(*({"e": "job", "id": t, "job": j}
                              for (t, _), j in zip(batch, jobs, strict=True)))
        try:
            self.schedd.spool(result)
        except Exception as exc:
            self._remove(jobs, "spooling failed")
            for job in jobs:
                self._report_failure(job, f"spooling the job's input to the schedd failed: {exc}")

    # --- collecting ------------------------------------------------------------------------------

    def _query(self) -> list[classad2.ClassAd]:
        try:
            ads = self.schedd.query(f"PymwTag == {classad2.quote(self.tag)}", _PROJECTION)
        except Exception as exc:
            now = time.monotonic()
            if self._query_failing_since is None:
                self._query_failing_since = now
            if now - self._query_failing_since > 60:
                raise EngineUnavailable(f"the HTCondor schedd stopped answering: {exc}") from None
            return []
        self._query_failing_since = None
        return list(ads)

    def _remove(self, jobs: list[str], why: str) -> None:
        if not jobs:
            return
        with contextlib.suppress(Exception):  # already gone
            self.schedd.act(htcondor2.JobAction.Remove, jobs, reason=f"pymw-admin: {why}")

    def _report_failure(self, job: str, why: str, retryable: bool = True, stderr: str = "",
                        worker: str = "") -> None:
        task_id = self._by_job.pop(job, None)
        if task_id is None:
            return
        task = self._tasks[task_id]
        task.state, task.reason = "failed", why
        self._journal.write({"e": "failed", "id": task_id, "why": why})
        self._ready.append(Completion(task_id, failure=why, retryable=retryable, stderr=stderr,
                                      worker=worker))

    def _poll(self) -> None:
        ads = self._query()
        if not ads and self._query_failing_since is not None:
            return  # the schedd did not answer; try again later
        seen: set[str] = set()
        completed: list[tuple[str, classad2.ClassAd]] = []
        held: list[tuple[str, classad2.ClassAd]] = []
        running: dict[str, str] = {}
        for ad in ads:
            job = f"{ad['ClusterId']}.{ad['ProcId']}"
            if job not in self._by_job:
                continue
            seen.add(job)
            status = ad["JobStatus"]
            if status == COMPLETED:
                completed.append((job, ad))
            elif status == HELD and ad.get("HoldReasonCode") != HOLD_SPOOLING_INPUT:
                held.append((job, ad))
            elif status == REMOVED:
                self._report_failure(job, f"HTCondor job {job} was removed from the queue")
            elif status in (RUNNING, TRANSFERRING):
                running[job] = str(ad.get("RemoteHost") or "")
        self._running = running
        if completed:
            self._collect(completed)
        for job, ad in held:
            reason = str(ad.get("HoldReason") or "no reason given")
            code = ad.get("ExitCode")
            if isinstance(code, int) and not isinstance(code, bool):
                reason += f" (the worker exited with status {code})"
            elif ad.get("ExitBySignal") is True:
                reason += f" (the worker was killed by signal {ad.get('ExitSignal')})"
            self._remove([job], "held")
            self._report_failure(job, f"HTCondor held job {job}: {reason}")
        for job in [j for j in self._by_job if j not in seen]:
            task_id = self._by_job[job]
            result = self.state_dir / "out" / f"{task_id}.result"
            if result.exists():
                self._by_job.pop(job)
                self._deliver(task_id, result.read_bytes(), "")
            else:
                self._report_failure(job, f"HTCondor job {job} left the queue without a result")

    def _collect(self, completed: list[tuple[str, classad2.ClassAd]]) -> None:
        jobs = [job for job, _ in completed]
        try:
            self.schedd.retrieve(jobs)
        except Exception as exc:
            for job in jobs:  # output transfer failed: counts as a lost attempt
                self._remove([job], "output retrieval failed")
                self._report_failure(job, f"retrieving HTCondor job {job}'s output failed: {exc}")
            return
        for job, ad in completed:
            task_id = self._by_job[job]
            out = self.state_dir / "out"
            result = out / f"{task_id}.result"
            slot = str(ad.get("LastRemoteHost") or ad.get("RemoteHost") or "")
            if result.exists():
                self._by_job.pop(job)
                self._deliver(task_id, result.read_bytes(), slot)
                continue
            if ad.get("ExitBySignal"):
                how = f"was killed by signal {ad.get('ExitSignal')}"
            else:
                how = f"exited with status {ad.get('ExitCode')}"
            try:
                stderr = (out / f"{task_id}.err").read_text(errors="replace")[-4000:]
            except OSError:
                stderr = ""
            self._report_failure(job, f"HTCondor job {job}'s worker {how} without a result",
                                 stderr=stderr, worker=slot)
        # retrieved jobs leave the queue on their own; this only hurries them
        self._remove(jobs, "collected")

    def _deliver(self, task_id: str, record: bytes, slot: str) -> None:
        task = self._tasks[task_id]
        task.state = "done"
        self._journal.write({"e": "done", "id": task_id})
        if slot:
            self._done_by_slot[slot] = self._done_by_slot.get(slot, 0) + 1
        self._ready.append(Completion(task_id, record=record, worker=slot))

    def wait(self, timeout: float | None) -> list[Completion]:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flush()
        while True:
            if self._ready:
                done = list(self._ready)
                self._ready.clear()
                return done
            if self._by_job:
                self._poll()
                if self._ready:
                    continue
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return []
            if not self._by_job and not self._pending:
                # nothing in flight: waiting longer cannot produce anything. Still pause, or a
                # caller that waits forever (deadline None) spins on this at full speed.
                pause = self.poll_interval if deadline is None else deadline - now
                time.sleep(max(0.0, min(self.poll_interval, pause)))
                return []
            pause = self.poll_interval if deadline is None else min(self.poll_interval,
                                                                     deadline - now)
            time.sleep(max(0.0, pause))
            self._flush()

    def acknowledge(self, task_id: str) -> None:
        """The master handed this task's outcome to its caller: a resumed master skips it."""
        task = self._tasks.get(task_id)
        if task is None or task.state == "collected":
            return
        task.state = "collected"
        self._journal.write({"e": "collected", "id": task_id})
        if not self._temporary:
            (self.state_dir / "tasks" / f"{task_id}.task").unlink(missing_ok=True)
            for suffix in (".result", ".out", ".err"):
                (self.state_dir / "out" / f"{task_id}{suffix}").unlink(missing_ok=True)

    def cancel(self, task_id: str) -> None:
        self._pending = [(t, b) for t, b in self._pending if t != task_id]
        task = self._tasks.get(task_id)
        if task is None:
            return
        if task.job and task.job in self._by_job:
            self._by_job.pop(task.job)
            self._remove([task.job], "cancelled")
        task.state = "abandoned"
        self._journal.write({"e": "abandoned", "id": task_id})

    def workers(self) -> list[WorkerStats]:
        slots = set(self._running.values()) | set(self._done_by_slot)
        stats = []
        for slot in sorted(s for s in slots if s):
            stats.append(WorkerStats(
                name=slot,
                tasks_done=self._done_by_slot.get(slot, 0),
                in_flight=sum(1 for s in self._running.values() if s == slot),
            ))
        idle = len(self._by_job) - len(self._running)
        stats.append(WorkerStats(name=f"schedd queue ({self.tag})", in_flight=idle,
                                 extra={"idle_jobs": idle, "state_dir": str(self.state_dir)}))
        return stats

    @property
    def jobs(self) -> dict[str, str]:
        """task id -> HTCondor job id of every job in flight."""
        return {t: j for j, t in self._by_job.items()}

    def detach(self) -> None:
        """Let go of the state directory but leave the jobs running, for a later master to resume
        (the master ends by an exception or Ctrl-C). Tasks handed over but not yet submitted are
        journalled, so that master submits them. A temporary state directory cannot be resumed:
        there this is ``close()``."""
        if self._closed:
            return
        if self._temporary:
            self.close()
            return
        self._closed = True
        try:
            self._take_in([(t, b) for t, b in self._pending if t not in self._tasks])
        finally:
            self._journal.close()
            self._lock.release()
            self._pending.clear()
            self._by_job.clear()

    def close(self) -> None:
        """Remove this master's jobs from the queue; a temporary state directory goes too."""
        if self._closed:
            return
        self._closed = True
        constraint = f"PymwTag == {classad2.quote(self.tag)}"
        try:
            self.schedd.act(htcondor2.JobAction.Remove, constraint, reason="pymw-admin: cleanup")
            # completed jobs wait in the queue for their output to be fetched: let them go
            self.schedd.edit(f"{constraint} && JobStatus == {COMPLETED}", "LeaveJobInQueue",
                             "false")
        except Exception:
            pass  # the schedd is gone: nothing of ours can still run there
        abandoned = [t for t in self._tasks.values()
                     if t.state not in ("collected", "abandoned")]
        for task in abandoned:
            task.state = "abandoned"
            # nobody collects these any more (a result that returned is in the master's kept
            # results): nothing of them outlives the run
            (self.state_dir / "tasks" / f"{task.task_id}.task").unlink(missing_ok=True)
            for suffix in (".result", ".out", ".err"):
                (self.state_dir / "out" / f"{task.task_id}{suffix}").unlink(missing_ok=True)
        self._journal.write(*({"e": "abandoned", "id": t.task_id} for t in abandoned))
        self._journal.close()
        self._lock.release()  # a later master may take the state directory now
        self._by_job.clear()
        if self._temporary:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def build(
    num_workers: int | None = None,
    project_home: str | None = None,
    app_path: str | None = None,
    app_args: str | None = None,
    **_: object,
) -> CondorInterface:
    """``-i condor``: ``-c`` the worker (bundle or the nodes' Python), ``-a`` its arguments,
    ``-p`` the state directory that makes the run resumable."""
    return CondorInterface(app_path=app_path, app_args=app_args, state_dir=project_home)


__all__ = ["CondorInterface", "WorkerProgram", "build", "worker_program"]
