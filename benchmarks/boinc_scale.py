"""The BOINC interface at project scale, on a real project, against named peers in the same run:

1. bulk submission: ``Master.submit_many`` to work units that exist (encode, sign, each small
   task into its work unit's command line, ``create_work --stdin``, journal), streamed in
   batches; also with every task staged as a file (the way of a task too large for a command
   line, or of an app whose versions predate it); peers: one ``create_work`` per work unit
   (PyMW's way), and ``create_work --stdin`` alone on files staged beforehand (BOINC's own bulk
   path, with none of our work).
2. a master holding many outstanding work units: the cost of one ``get_result`` poll with
   100,000 outstanding against the same poll with 1,000 (flat: ratio near 1), and RSS per
   10,000 tasks.
3. the assimilator path: work units made ready in the database the way BOINC's validator
   leaves them (a canonical result whose upload is a real result record), filed by the app's
   assimilator daemon (``bin/pymw_assimilator --app``, one pass at a time) against BOINC's
   ``script_assimilator`` running a script that does nothing (the ceiling of one process per
   work unit); ``bin/pymw_compare`` on pairs the way script_validator calls it; the master
   collecting the filed results.
4. latency with the real client (``--latency``, needs the deployed ``pymw`` app and an attached
   client): one short task from submit to the master holding its result, by stage, and the
   scheduler RPCs the client made meanwhile. It runs first, on a quiet project.

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
from boinc_create_work import APP, clean, mysql, prepare

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
    """Task files staged where create_work looks them up (the peers'), and a tag's own."""
    for path in layout.download_dir.glob(f"*/{prefix}*"):
        path.unlink(missing_ok=True)
    tag = prefix.removeprefix("pymw_").rstrip("_")
    shutil.rmtree(layout.task_dir(tag), ignore_errors=True)


def remove_state(root: Path, tag: str) -> None:
    shutil.rmtree(root / "pymw" / "masters" / tag, ignore_errors=True)


class TimedInterface(BoincInterface):
    """The interface, noting when its first batch of work units existed."""

    first_created: float | None = None

    def _reap_oldest(self) -> None:
        super()._reap_oldest()
        if self.first_created is None and self._open:
            self.first_created = time.perf_counter()


# --- 1. bulk submission ------------------------------------------------------------------------

def submit(root: Path, count: int, inline: bool) -> tuple[float, float, float, int]:
    """Seconds for ``count`` tasks to become work units, when the first existed, when the last
    was taken, and how many were created."""
    tag = f"scale{os.getpid()}{'i' if inline else 'f'}"
    iface = TimedInterface(root, app_name=APP, tag=tag)
    # pymwbench has no versions (no client runs these): it is told what deploy-app's notes
    # say of a current app
    iface.inline_tasks = inline
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
    last = last_taken - start
    created = len(iface._open)
    iface.close()
    remove_task_files(ProjectLayout.read(root), f"pymw_{tag}_")
    remove_state(root, tag)
    clean(root)
    return ours, first, last, created


def submission(root: Path, count: int, pymw_count: int) -> bool:
    layout = ProjectLayout.read(root)
    ours, first, last, created = submit(root, count, inline=True)
    files_time, _, _, files_created = submit(root, count, inline=False)

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
          f"{created:,} work units, tasks in the command line); first work units existed at "
          f"{first:.2f} s, last task encoded at {last:.2f} s")
    print(f"   every task as a file: {count / files_time:,.0f} tasks/s ({files_time:.2f} s, "
          f"{files_created:,} work units)")
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
    masters: dict[int, tuple[Master, str]] = {}
    held: dict[int, int] = {}
    for count in (small, large):
        tag = f"out{count}x{os.getpid()}"
        before = rss_kib()
        iface = BoincInterface(root, app_name=APP, tag=tag, poll_seconds=0.0)
        master = Master(iface)
        master.submit_many(noop, range(count))
        iface.flush()
        held[count] = rss_kib() - before
        masters[count] = (master, tag)
    # measured in turns, so both meet the same background (the project's daemons work through
    # the new work units meanwhile, and a poll costs microseconds)
    costs: dict[int, list[float]] = {small: [], large: []}
    for _ in range(9):
        for count, (master, _tag) in masters.items():
            costs[count].append(poll_cost(master, 500))
    for master, tag in masters.values():
        master.cleanup()
        remove_task_files(layout, f"pymw_{tag}_")
        remove_state(root, tag)
    clean(root)
    figures = {count: (statistics.median(costs[count]), held[count]) for count in masters}
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


def ready_work_units(root: Path, names: list[str]) -> list[Path]:
    """Work units of the benchmark's app as BOINC's validator leaves them: each with a canonical
    result record (replica 5: the transitioner's own are 0 and 1) whose upload is a real result
    record in the upload hierarchy, and ``assimilate_state`` READY. Their uploads."""
    app_id = int(mysql(root, f"SELECT id FROM app WHERE name='{APP}'"))
    layout = ProjectLayout.read(root)
    for name in names:
        layout.stage(f"{name}.task", b"task")
    subprocess.run(["bin/create_work", "--appname", APP, "--wu_template", f"templates/{APP}_in",
                    "--result_template", f"templates/{APP}_out", "--stdin"],
                   input="".join(f"--wu_name {n} {n}.task\n" for n in names), text=True,
                   cwd=root, check=True, capture_output=True)
    mysql(root, f"UPDATE workunit SET transition_time=UNIX_TIMESTAMP()+86400 WHERE appid={app_id}")
    for name in names:
        layout.download_path(f"{name}.task").unlink()
    zeros = ("client_state", "hostid", "userid", "report_deadline", "sent_time", "received_time",
             "exit_status",
             "cpu_time", "batch", "file_delete_state", "claimed_credit", "granted_credit",
             "opaque", "random", "app_version_num", "teamid", "priority", "elapsed_time",
             "flops_estimate", "app_version_id", "runtime_outlier", "peak_working_set_size",
             "peak_swap_size", "peak_disk_usage")
    # the result template's file, as the transitioner writes xml_doc_in
    xml = ("CONCAT('<file_info>\\n<name>', name, '_5_r4242_0</name>\\n</file_info>\\n<result>"
           "\\n<file_ref>\\n<file_name>', name, '_5_r4242_0</file_name>\\n<open_name>"
           "pymw_result</open_name>\\n</file_ref>\\n</result>\\n')")
    mysql(root, f"INSERT INTO result (create_time, workunitid, server_state, outcome, "
                f"validate_state, name, appid, xml_doc_in, {', '.join(zeros)}) "
                f"SELECT UNIX_TIMESTAMP(), id, 5, 1, 1, CONCAT(name, '_5'), appid, {xml}, "
                f"{', '.join('0' for _ in zeros)} FROM workunit WHERE appid={app_id}; "
                f"UPDATE workunit w JOIN result r ON r.name=CONCAT(w.name, '_5') "
                f"SET w.canonical_resultid=r.id, w.assimilate_state=1 WHERE w.appid={app_id}")
    uploads = []
    for i, name in enumerate(names):
        path = upload_path(root, f"{name}_5_r4242_0")
        if not path.parent.is_dir():
            # as the upload handler makes them: the web server (in the owner's group) must
            # still write there, or a volunteer's later upload into this fan-out is lost
            path.parent.mkdir(mode=0o2771)
            path.parent.chmod(0o2771)
        path.write_bytes(record(f"t{i}", i))
        uploads.append(path)
    return uploads


def assimilated_rate(root: Path, command: str, count: int) -> float:
    """Work units per second that ``command`` (one pass, up to 1,000 work units) assimilates,
    run from PROJECT/tmp_HOST as bin/start runs daemons, until none is ready."""
    app_id = int(mysql(root, f"SELECT id FROM app WHERE name='{APP}'"))
    host_tmp = next((p for p in root.glob("tmp_*") if p.is_dir()), root / "tmp_bench")
    host_tmp.mkdir(exist_ok=True)
    start = time.perf_counter()
    for _ in range(count // 1000 + 2):
        subprocess.run(command, shell=True, cwd=host_tmp, check=True, capture_output=True)
        if int(mysql(root, f"SELECT COUNT(*) FROM workunit WHERE appid={app_id} "
                           "AND assimilate_state=1")) == 0:
            break
    elapsed = time.perf_counter() - start
    done = int(mysql(root, f"SELECT COUNT(*) FROM workunit WHERE appid={app_id} "
                           "AND assimilate_state=2"))
    if done != count:
        raise SystemExit(f"{command}: {done} of {count} work units assimilated")
    mysql(root, f"UPDATE workunit SET assimilate_state=1 WHERE appid={app_id}")
    return count / elapsed


def assimilation(root: Path, count: int, compare_count: int) -> bool:
    tag = f"collect{os.getpid()}"
    iface = BoincInterface(root, app_name=APP, tag=tag)
    names = [iface.wu_name(f"t{i}") for i in range(count)]
    uploads = ready_work_units(root, names)
    # ours first: once work units are done, the transitioner and the file deleter may take the
    # uploads away; the peer needs none
    filed = assimilated_rate(root, f"../bin/pymw_assimilator --app {APP} --one_pass", count)
    # peer: BOINC's script_assimilator, one system() a work unit, with a script that does
    # nothing: the ceiling of any script it runs
    noop = root / "bin" / f"pymwbench_noop_{os.getpid()}"
    noop.write_text("#!/bin/sh\nexit 0\n")
    noop.chmod(0o755)
    try:
        ceiling = assimilated_rate(
            root, f"../bin/script_assimilator --app {APP} --script {noop.name} --one_pass", count)
    finally:
        noop.unlink()
    filed_at = [iface.results_dir / f"{name}.result" for name in names]
    host_tmp = next((p for p in root.glob("tmp_*") if p.is_dir()), root / "tmp_bench")
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
    clean(root)
    ok = filed >= FILING_TARGET and collected >= FILING_TARGET and values == list(range(count))
    print(f"3. assimilator path, {count:,} work units ready in the database with real result "
          f"records: filed by bin/pymw_assimilator {filed:,.0f}/s; BOINC's script_assimilator "
          f"running a script that does nothing {ceiling:,.0f}/s (ratio {filed / ceiling:.1f}x); "
          f"master collected {collected:,.0f}/s ({verdict(ok)} target {FILING_TARGET:,.0f}/s); "
          f"bin/pymw_compare {compared:,.0f} pairs/s")
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
    if "4" in args.only and args.latency:
        from boinc_latency import latency

        # first, on a quiet project: after items 1-3 the transitioner and the database are
        # busy for tens of seconds with the 40,000 work units they made and deleted
        steps.append(lambda: latency(root))
    if "1" in args.only:
        steps.append(lambda: submission(root, args.tasks, args.pymw_count))
    if "2" in args.only:
        steps.append(lambda: outstanding(root, 1_000, args.outstanding))
    if "3" in args.only:
        steps.append(lambda: assimilation(root, args.results, args.compare))
    try:
        results = [step() for step in steps]
    finally:
        clean(root)
    print(json.dumps({"ok": all(results)}))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
