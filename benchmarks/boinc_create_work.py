"""Creating 2,000 work units: the BOINC interface (one ``create_work --stdin``) against one
``create_work`` process per work unit (PyMW's way), in the same run, on the same project.

    sudo -u OWNER PYTHON benchmarks/boinc_create_work.py -p PROJECT_DIR [--count 2000]

Run it on the server as the project's owner (it needs a project made by init-project). Both sides
write the same real task files; the work units go to a separate app, ``pymwbench``, registered
here with no app version, so no client ever runs them, and they are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import noop, report

from pymw_admin.admin import boincxml
from pymw_admin.interfaces.boinc import BoincInterface, ProjectLayout
from pymw_admin.interfaces.boinc_database import query
from pymw_admin.wire import encoding

APP = "pymwbench"
TARGET = 20.0


def prepare(root: Path) -> None:
    """The benchmark's app: in project.xml and the database (bin/xadd), with its templates."""
    project_xml = root / "project.xml"
    text = project_xml.read_text()
    if APP not in boincxml.project_apps(text):
        project_xml.write_text(boincxml.add_app(text, APP, "pymw-admin benchmark (no versions)"))
        subprocess.run(["bin/xadd"], cwd=root, check=True, capture_output=True)
    (root / "templates" / f"{APP}_in").write_text(boincxml.input_template())
    (root / "templates" / f"{APP}_out").write_text(boincxml.output_template())


def mysql(root: Path, statement: str) -> str:
    return query(root, statement)


def clean(root: Path) -> None:
    app_id = mysql(root, f"SELECT id FROM app WHERE name='{APP}'").strip()
    if app_id:
        mysql(root, f"DELETE FROM result WHERE appid={app_id}; "
                    f"DELETE FROM workunit WHERE appid={app_id}")


def tasks(count: int, label: str) -> list[tuple[str, bytes]]:
    function = encoding.pickle_function(noop)
    return [(f"{label}{i}", encoding.encode_task(f"{label}{i}", noop, (i,), (), (), {},
                                                 function_blob=function))
            for i in range(count)]


def ours(root: Path, batch: list[tuple[str, bytes]]) -> float:
    iface = BoincInterface(root, app_name=APP, tag=f"bench{os.getpid()}")
    start = time.perf_counter()
    iface.submit_many(batch)
    iface.flush()  # the clock stops when every work unit exists, as the peer's does
    return time.perf_counter() - start


def pymw_way(root: Path, batch: list[tuple[str, bytes]]) -> float:
    """PyMW's BOINC interface: write the input, then one create_work per task."""
    layout = ProjectLayout.read(root)
    start = time.perf_counter()
    for task_id, blob in batch:
        name = f"pymwold_{os.getpid()}_{task_id}"
        path = layout.download_path(f"{name}.task")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        subprocess.run(["bin/create_work", "--appname", APP, "--wu_name", name,
                        "--wu_template", f"templates/{APP}_in", "--result_template",
                        f"templates/{APP}_out", f"{name}.task"],
                       cwd=root, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-p", "--project-home", required=True)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    root = Path(args.project_home).resolve()
    prepare(root)
    try:
        peer = pymw_way(root, tasks(args.count, "old"))
        mine = ours(root, tasks(args.count, "new"))
        made = mysql(root, f"SELECT COUNT(*) FROM workunit w JOIN app a ON w.appid=a.id "
                           f"WHERE a.name='{APP}'").strip()
    finally:
        clean(root)
        for path in (root / "download").rglob("pymw*_*.task"):
            if path.name.startswith(("pymwold_", f"pymw_bench{os.getpid()}_")):
                path.unlink()
        with contextlib.suppress(OSError):
            (root / "download" / "pymw_tasks" / f"bench{os.getpid()}").rmdir()
    print(f"work units created: {made} (expected {2 * args.count}) in {shlex.quote(str(root))}")
    ok = report(f"create {args.count} BOINC work units", args.count, mine, peer,
                "one create_work per work unit (PyMW)", TARGET)
    return 0 if ok and int(made) == 2 * args.count else 1


if __name__ == "__main__":
    sys.exit(main())
