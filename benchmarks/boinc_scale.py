"""The BOINC interface at project scale, on a real project, against named peers in the same run:

1. bulk submission: ``Master.submit_many`` to work units that exist (encode, stage into the
   download hierarchy, ``create_work --stdin``, journal), streamed in batches; peers: one
   ``create_work`` per work unit (PyMW's way), and ``create_work --stdin`` alone on files
   staged beforehand (BOINC's own bulk path, with none of our work).
2. a master holding many outstanding work units: the cost of one ``get_result`` poll with
   100,000 outstanding against the same poll with 1,000 (flat: ratio near 1), and RSS per
   10,000 tasks.
3. the assimilator path: the project's ``bin/pymw_assimilator`` filing real result records
   from the upload hierarchy, called the way script_assimilator calls it (``system()`` from
   PROJECT/tmp_HOST, ``WU_ID FILE``); ``bin/pymw_compare`` on pairs the way script_validator
   calls it; the master collecting the filed results.
4. latency with the real client (``--latency``, needs the deployed ``pymw`` app and an attached
   client): one short task from submit to the master holding its result, by stage, and the
   scheduler RPCs the client made meanwhile.

    sudo -u OWNER PYTHON benchmarks/boinc_scale.py -p PROJECT_DIR [--latency]

Items 1-3 use the app ``pymwbench`` (no app version: no client runs its work units) and delete
what they made. The machine may be shared: run it twice, the figures are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import noop
from boinc_create_work import APP, clean, prepare

from pymw_admin.interfaces.boinc import BoincInterface, ProjectLayout
from pymw_admin.runtime import Master
from pymw_admin.runtime.errors import TaskTimeout
from pymw_admin.wire import encoding, untrusted

SUBMIT_TARGET = 5_000.0  # tasks/s end to end
FILING_TARGET = 1_000.0  # results/s filed and collected
FLAT_TARGET = 1.5  # poll cost at 100,000 outstanding / at 1,000
RPC_TARGET = 2  # scheduler RPCs beyond the run


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def remove_task_files(layout: ProjectLayout, prefix: str) -> None:
    for path in layout.download_dir.glob(f"*/{prefix}*"):
        path.unlink(missing_ok=True)


def remove_state(root: Path, tag: str) -> None:
    shutil.rmtree(root / "pymw" / "masters" / tag, ignore_errors=True)


class TimedInterface(BoincInterface):
    """The interface, noting when its first batch of work units existed."""

    first_created: float | None = None

    def _reap(self) -> None:
        running = self._creating is not None
        super()._reap()
        if running and self.first_created is None and self._open:
            self.first_created = time.perf_counter()


# --- 1. bulk submission ------------------------------------------------------------------------

def submission(root: Path, count: int, pymw_count: int) -> bool:
    layout = ProjectLayout.read(root)
    tag = f"scale{os.getpid()}"
    iface = TimedInterface(root, app_name=APP, tag=tag)
    master = Master(iface)
    last_taken = 0.0

    def items() -> Iterator[int]:
        """The inputs, noting when the last one is taken: its task is encoded right after."""
        nonlocal last_taken
        for i in range(count):
            if i == count - 1:
                last_taken = time.perf_counter()
            yield i

    start = time.perf_counter()
    master.submit_many(noop, items())
    iface.flush()
    ours = time.perf_counter() - start
    first = (iface.first_created or start) - start
    last = last_taken - start  # start is the peers' clock below
    created = len(iface._open)
    iface.close()
    remove_task_files(layout, f"pymw_{tag}_")
    remove_state(root, tag)

    # peer: one create_work per work unit, on fewer of them (it is slow)
    blobs = tasks(pymw_count, "old")
    start = time.perf_counter()
    for task_id, blob in blobs:
        name = f"pymwold_{os.getpid()}_{task_id}"
        layout.stage(f"{name}.task", blob)
        subprocess.run(["bin/create_work", "--appname", APP, "--wu_name", name,
                        "--wu_template", f"templates/{APP}_in", "--result_template",
                        f"templates/{APP}_out", f"{name}.task"],
                       cwd=root, check=True, capture_output=True)
    one_by_one = pymw_count / (time.perf_counter() - start)
    remove_task_files(layout, f"pymwold_{os.getpid()}_")

    # peer: create_work --stdin alone, on task files staged before the clock starts
    names = [f"pymwbulk_{os.getpid()}_{i}" for i in range(count)]
    for name, (_, blob) in zip(names, tasks(count, "bulk"), strict=True):
        layout.stage(f"{name}.task", blob)
    lines = "".join(f"--wu_name {n} {n}.task\n" for n in names)
    start = time.perf_counter()
    subprocess.run(["bin/create_work", "--appname", APP, "--wu_template", f"templates/{APP}_in",
                    "--result_template", f"templates/{APP}_out", "--stdin"], input=lines,
                   text=True, cwd=root, check=True, capture_output=True)
    bulk = count / (time.perf_counter() - start)
    remove_task_files(layout, f"pymwbulk_{os.getpid()}_")
    clean(root)

    rate = count / ours
    ok = rate >= SUBMIT_TARGET and created == count and first < last
    print(f"1. bulk submission of {count:,} tasks: pymw {rate:,.0f} tasks/s ({ours:.2f} s, "
          f"{created:,} work units); first work units existed at {first:.2f} s, last task "
          f"encoded at {last:.2f} s")
    print(f"   vs one create_work per work unit (PyMW, {pymw_count} of them) {one_by_one:,.0f}/s: "
          f"ratio {rate / one_by_one:.1f}x; vs create_work --stdin alone {bulk:,.0f}/s: "
          f"ratio {rate / bulk:.2f}x ({verdict(ok)} target {SUBMIT_TARGET:,.0f} tasks/s, "
          f"streamed)")
    return ok


def tasks(count: int, label: str) -> list[tuple[str, bytes]]:
    function = encoding.pickle_function(noop)
    return [(f"{label}{i}", encoding.encode_task(f"{label}{i}", noop, (i,), (), (), {},
                                                 function_blob=function))
            for i in range(count)]


# --- 2. many outstanding -----------------------------------------------------------------------

def poll_cost(master: Master, polls: int = 200) -> float:
    """Median seconds of one ``get_result(timeout=0)`` finding nothing finished."""
    times = []
    for _ in range(polls):
        start = time.perf_counter()
        with contextlib.suppress(TaskTimeout):
            master.get_result(timeout=0)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def outstanding(root: Path, small: int, large: int) -> bool:
    layout = ProjectLayout.read(root)
    figures: dict[int, tuple[float, int]] = {}
    for count in (small, large):
        tag = f"out{count}x{os.getpid()}"
        before = rss_kib()
        iface = BoincInterface(root, app_name=APP, tag=tag, poll_seconds=0.0)
        master = Master(iface)
        master.submit_many(noop, range(count))
        iface.flush()
        held = rss_kib() - before
        figures[count] = (poll_cost(master), held)
        master.cleanup()
        remove_task_files(layout, f"pymw_{tag}_")
        remove_state(root, tag)
        clean(root)
        del master, iface
    (small_cost, _), (large_cost, large_rss) = figures[small], figures[large]
    ratio = large_cost / small_cost
    ok = ratio <= FLAT_TARGET
    print(f"2. {large:,} outstanding: one get_result poll {large_cost * 1e6:,.0f} us vs "
          f"{small_cost * 1e6:,.0f} us with {small:,} outstanding: ratio {ratio:.2f} "
          f"({verdict(ok)} target <= {FLAT_TARGET}); RSS {large_rss / 1024 * 10_000 / large:,.1f}"
          f" MiB per 10,000 tasks; the master never queries the database")
    return ok


# --- 3. the assimilator path -------------------------------------------------------------------

def config_value(root: Path, tag: str, default: str) -> str:
    from lxml import etree

    node = etree.parse(str(root / "config.xml")).find(f"config/{tag}")
    return (node.text or "").strip() if node is not None and node.text else default


def upload_path(root: Path, name: str) -> Path:
    upload = Path(config_value(root, "upload_dir", str(root / "upload")))
    layout = ProjectLayout(root, upload, int(config_value(root, "uldl_dir_fanout", "1024")), "")
    return layout.download_path(name)


def record(task_id: str, value: object) -> bytes:
    return encoding.encode_result(encoding.ResultRecord(
        task_id=task_id, ok=True, python=encoding.python_minor(), worker="bench",
        started=time.time(), finished=time.time(), payload=pickle.dumps(value, protocol=5)))


def system_rate(commands: list[str], cwd: Path) -> float:
    """Commands per second, each run as BOINC's daemons run their scripts: system()."""
    here = os.getcwd()
    os.chdir(cwd)
    try:
        start = time.perf_counter()
        for command in commands:
            if os.system(command) != 0:
                raise SystemExit(f"failed: {command}")
        return len(commands) / (time.perf_counter() - start)
    finally:
        os.chdir(here)


def assimilation(root: Path, count: int, compare_count: int) -> bool:
    host_tmp = next((p for p in root.glob("tmp_*") if p.is_dir()), root / "tmp_bench")
    host_tmp.mkdir(exist_ok=True)
    tag = f"collect{os.getpid()}"
    iface = BoincInterface(root, app_name=APP, tag=tag)
    names = [iface.wu_name(f"t{i}") for i in range(count)]
    uploads = []
    for i, name in enumerate(names):
        path = upload_path(root, f"{name}_0_r{1000 + i}_0")
        if not path.parent.is_dir():
            # as the upload handler makes them: the web server (in the owner's group) must
            # still write there, or a volunteer's later upload into this fan-out is lost
            path.parent.mkdir(mode=0o2771)
            path.parent.chmod(0o2771)
        path.write_bytes(record(f"t{i}", i))
        uploads.append(path)
    # peer first, on a tenth of them: the Python filer (it copies, leaving the uploads)
    python_filer = root / "bin" / "pymw_assimilate_error"
    peer, rate = "", 0.0
    if python_filer.exists():
        rate = system_rate([f"../bin/{python_filer.name} {i} {p}"
                            for i, p in enumerate(uploads[: max(1, count // 10)])], host_tmp)
        for name in names:
            (iface.results_dir / f"{name}.result").unlink(missing_ok=True)
    filed = system_rate([f"../bin/pymw_assimilator {i} {p}" for i, p in enumerate(uploads)],
                        host_tmp)
    if rate:
        peer = f" (the Python filer run the same way: {rate:,.0f}/s, ratio {filed / rate:.1f}x)"
    # the ceiling of any script_assimilator script: one that does nothing, started the same way
    noop = host_tmp / f"pymw-bench-noop-{os.getpid()}"
    noop.write_text("#!/bin/sh\nexit 0\n")
    noop.chmod(0o755)
    try:
        ceiling = system_rate([f"./{noop.name} {i} {p}" for i, p in enumerate(uploads)], host_tmp)
    finally:
        noop.unlink()
    filed_at = [iface.results_dir / f"{name}.result" for name in names]
    compared = system_rate([f"../bin/pymw_compare {filed_at[i]} {filed_at[i]}"
                            for i in range(compare_count)], host_tmp)
    # the master collects them: the journal names the work units, as a resumed master finds it
    iface._append_log(iface._submitted_log, [{"task_id": f"t{i}", "wu": n}
                                             for i, n in enumerate(names)])
    iface.close()
    master = Master(BoincInterface(root, app_name=APP, tag=tag, poll_seconds=0.01, resume=True))
    untrusted.prepare()  # once a master, at its first result: start-up, not the collecting rate
    start = time.perf_counter()
    values = sorted(master.get_result()[1] for _ in range(count))
    collected = count / (time.perf_counter() - start)
    master.cleanup()
    for path in uploads:
        path.unlink(missing_ok=True)
    remove_state(root, tag)
    ok = filed >= FILING_TARGET and collected >= FILING_TARGET and values == list(range(count))
    kind = "sh" if (root / "bin" / "pymw_assimilator").read_text().startswith("#!/bin/sh") \
        else "Python"
    print(f"3. assimilator path, {count:,} real result records: filed by bin/pymw_assimilator "
          f"({kind}) "
          f"{filed:,.0f}/s{peer}; a script doing nothing, started the same way: {ceiling:,.0f}/s"
          f" (ratio {filed / ceiling:.2f}); master collected {collected:,.0f}/s ({verdict(ok)} "
          f"target {FILING_TARGET:,.0f}/s); bin/pymw_compare {compared:,.0f} pairs/s")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-p", "--project-home", required=True)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--pymw-count", type=int, default=200)
    parser.add_argument("--outstanding", type=int, default=100_000)
    parser.add_argument("--results", type=int, default=2_000)
    parser.add_argument("--compare", type=int, default=200)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--only", default="1234", help="which items to run, e.g. 13")
    args = parser.parse_args()
    root = Path(args.project_home).resolve()
    prepare(root)
    steps: list[Callable[[], bool]] = []
    if "1" in args.only:
        steps.append(lambda: submission(root, args.tasks, args.pymw_count))
    if "2" in args.only:
        steps.append(lambda: outstanding(root, 1_000, args.outstanding))
    if "3" in args.only:
        steps.append(lambda: assimilation(root, args.results, args.compare))
    if "4" in args.only and args.latency:
        from boinc_latency import latency

        steps.append(lambda: latency(root))
    try:
        results = [step() for step in steps]
    finally:
        clean(root)
    print(json.dumps({"ok": all(results)}))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
