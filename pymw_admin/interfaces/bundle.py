"""The bundle interface: every task through the built bundle, each in a BOINC-like slot directory.

``pymw-admin rehearse SCRIPT --bundle`` (or ``-i bundle`` in a master script) drives it through the
ordinary Master API, so a BOINC app is debugged on this machine before it is submitted: the frozen
program, its logical names, its init_data.xml and its finish file are the ones a client would see.
Its results are decoded as the BOINC interface decodes volunteers' (untrusted: plain data only),
so a result type the real master would refuse is refused here, before the app is deployed.
``checkpoint_period`` is the client's setting the task reads from init_data.xml, and
``restart_after`` stops and starts each task once in its slot, as a client restarted would, so
a task's checkpointing can be seen to work.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from pymw_admin.bundles import slot as slots
from pymw_admin.bundles import targets
from pymw_admin.bundles.build import default_dist
from pymw_admin.bundles.manifest import Bundle, open_bundle, platform_name
from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats, drain
from pymw_admin.wire.encoding import python_minor

_GRACE = 5.0  # seconds a bundle gets to exit after SIGTERM at close()
DEFAULT_CHECKPOINT_PERIOD = 60.0  # seconds: a client's default "at most every" setting
CHECKPOINT_PERIOD_ENV = "PYMW_BUNDLE_CHECKPOINT_PERIOD"  # rehearse --checkpoint-period
RESTART_AFTER_ENV = "PYMW_BUNDLE_RESTART_AFTER"  # rehearse --restart-after


def locate(app_path: str | None = None) -> Bundle:
    """The bundle to use: ``app_path`` (-c), ``PYMW_BUNDLE``, or pyboinc_bundles/dist/<platform>.

    The platform is this machine's, or ``PYMW_BUNDLE_PLATFORM`` (``rehearse --platform``): another
    platform's bundle then runs through wine or qemu-user.
    """
    given = app_path or os.environ.get("PYMW_BUNDLE")
    wanted = os.environ.get("PYMW_BUNDLE_PLATFORM") or platform_name()
    root = Path(given) if given else default_dist() / wanted
    if root.name == "bundle" and not (root / "manifest.json").exists():
        root = root.parent  # the bundle directory itself was named
    if not (root / "manifest.json").is_file():
        raise EngineUnavailable(
            f"no built bundle at {root}: run `pymw-admin bundle build --platform {wanted}` "
            "(or give -c / PYMW_BUNDLE)"
        )
    return open_bundle(root)


class BundleInterface:
    name = "bundle"
    # the bundle runs here, but the rehearsal is of BOINC, whose master decodes volunteers'
    # results without executing code: a type it refuses must be refused before deploying
    trusted = False

    def __init__(self, bundle: Bundle, num_workers: int | None = None, *, api: str = "python",
                 keep_slots: bool = False, timeout: float | None = None,
                 checkpoint_period: float = DEFAULT_CHECKPOINT_PERIOD,
                 restart_after: float | None = None) -> None:
        bundle.require_python(python_minor())  # refuse before anything runs
        targets.runner(bundle.manifest.platform)  # wine or qemu-user missing: say so now
        if num_workers is None:
            num_workers = os.cpu_count() or 1
        if num_workers < 1:
            raise UsageError(f"the bundle interface needs at least 1 worker, not {num_workers}")
        if not checkpoint_period >= 0:  # NaN too
            raise UsageError(f"the checkpoint period must be 0 s or more, not {checkpoint_period}")
        if restart_after is not None and not restart_after > 0:
            raise UsageError(f"restart after must be more than 0 s, not {restart_after}")
        self.bundle = bundle
        self.num_workers = num_workers
        self.api = api
        self.keep_slots = keep_slots
        self.timeout = timeout
        self.checkpoint_period = checkpoint_period
        self.restart_after = restart_after
        self.base = Path(tempfile.mkdtemp(prefix="pymw-boinc-rehearsal-"))
        self._pending: deque[tuple[str, bytes]] = deque()
        self._cancelled: set[str] = set()
        self._cond = threading.Condition()
        self._completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._stats = [WorkerStats(name=f"slot-{i}") for i in range(num_workers)]
        self._threads: list[threading.Thread] = []
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # slot -> its running bundle
        self._closed = False

    def _start(self) -> None:
        for i in range(self.num_workers):
            t = threading.Thread(target=self._slot_loop, args=(i,), daemon=True, name=f"slot-{i}")
            t.start()
            self._threads.append(t)

    def _slot_loop(self, index: int) -> None:
        stats = self._stats[index]
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                task_id, blob = self._pending.popleft()
                stats.in_flight = 1
            started = time.monotonic()
            slot_dir: Path | None = None
            try:
                # a small task in the command line, as the BOINC interface sends it
                args = slots.inline_args(self.bundle, blob)
                slot_dir = slots.prepare(self.base, index, self.bundle, task_id, blob,
                                         inline=bool(args),
                                         checkpoint_period=self.checkpoint_period)
                outcome = slots.run(self.base, slot_dir, self.bundle, task_id, api=self.api,
                                    timeout=self.timeout,
                                    on_start=lambda proc: self._started(index, proc), args=args,
                                    restart_after=self.restart_after)
                done = self._completion(outcome, stats.name)
            except Exception as exc:  # a broken slot fails its task; the thread serves on
                text = " ".join(str(exc).split()) or type(exc).__name__
                done = Completion(task_id, failure=f"slot {index}: {text}", worker=stats.name)
            finally:
                with self._cond:
                    self._procs.pop(index, None)
            # before the master hears of it: a failure it retries at once, in another slot, must
            # not have its new task file (the same name) removed by this cleanup
            if slot_dir is not None and not self.keep_slots:
                with contextlib.suppress(OSError):
                    slots.cleanup(self.base, slot_dir, task_id)
            with self._cond:
                stats.in_flight = 0
                stats.tasks_done += 1
                stats.busy_seconds += time.monotonic() - started
                if task_id in self._cancelled or self._closed:
                    continue
            self._completions.put(done)

    @staticmethod
    def _completion(outcome: slots.SlotRun, worker: str) -> Completion:
        failure = outcome.failure()
        if failure:
            return Completion(outcome.task_id, failure=failure, worker=worker,
                              stderr=outcome.stderr[-4000:])
        return Completion(outcome.task_id, record=outcome.result, worker=worker)

    def _started(self, index: int, proc: subprocess.Popen[bytes]) -> None:
        with self._cond:
            self._procs[index] = proc
            if self._closed:  # close() has already looked: stop this one here
                proc.kill()

    # --- the Interface protocol ------------------------------------------------------------------

    def submit(self, task_id: str, task_file: bytes) -> None:
        self.submit_many([(task_id, task_file)])

    def submit_many(self, tasks: list[tuple[str, bytes]]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the bundle interface is closed")
            if not self._threads:
                self._start()
            self._pending.extend(tasks)
            self._cond.notify_all()

    def wait(self, timeout: float | None) -> list[Completion]:
        return drain(self._completions, timeout)

    def cancel(self, task_id: str) -> None:
        with self._cond:
            self._cancelled.add(task_id)
            self._pending = deque(t for t in self._pending if t[0] != task_id)

    def workers(self) -> list[WorkerStats]:
        with self._cond:
            return list(self._stats)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            running = list(self._procs.values())
            self._cond.notify_all()
        # stop the bundles first (as a client does on exit): joining would wait out whole tasks,
        # and the slot tree must not be removed under a running program
        for proc in running:
            with contextlib.suppress(OSError):
                proc.terminate()
        deadline = time.monotonic() + _GRACE
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        for t in self._threads:
            t.join(timeout=_GRACE)
        if not self.keep_slots:
            shutil.rmtree(self.base, ignore_errors=True)


def _seconds(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, not {text!r}") from None


def build(
    num_workers: int | None = None, app_path: str | None = None, **_: object
) -> BundleInterface:
    period = _seconds(CHECKPOINT_PERIOD_ENV)
    return BundleInterface(
        locate(app_path), num_workers=num_workers, api=os.environ.get("PYMW_BOINC_API", "python"),
        checkpoint_period=DEFAULT_CHECKPOINT_PERIOD if period is None else period,
        restart_after=_seconds(RESTART_AFTER_ENV))
