"""Time to first result: from a host with no project to a volunteer's result in the master's hands.

On the testbed's second sshd host ("vm2": its own address, files, MariaDB and Apache, none of
which has seen a project before), as an admin would: ``pymw-admin init-project`` from source,
``deploy-app`` with the testbed's PyBOINC bundle, a real BOINC client attached by URL, then
``pymw-admin run examples/monte_pi.py`` until it prints pi. Each stage is printed, and the total
against BOINC's own target of about an hour from nothing to jobs running on volunteers (BOINC
issue 4169) and ours, ten minutes here.

    python benchmarks/first_result.py            # cold: BOINC cloned and built from git
    python benchmarks/first_result.py --built    # the testbed's BOINC tree, already built

Cold clones the testbed's bare BOINC repository (served by git on this machine's end of vm2's
link) at the release's commit, so the build goes to a directory of its own under
/opt/pymw-admin/boinc/ that this benchmark removes first; the tree the tests share is never
touched. The client is one of its own (data directory and RPC port apart from the tests'), and
vm2 is ended afterwards, its project with it. Run it as root on a provisioned testbed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed import boinc_client, boinc_git, boinc_tree, second_host  # noqa: E402
from testbed import bundle as bundle_bed  # noqa: E402
from testbed.cache import CACHE  # noqa: E402

NAME, OWNER = "pmfirst", "boincfirst"
MASTER_URL = f"http://{second_host.VM_ADDR}/{NAME}/"
GIT_PID = CACHE / "first-result-git.pid"
# a client of its own: the tests' client (and its projects) are left alone
boinc_client.DATA = CACHE / "boinc-client-first-result"
boinc_client.PID_FILE = boinc_client.DATA / "pymw-client.pid"
boinc_client.RPC_PORT = 31418
BOINC_TARGET = 3600.0  # BOINC's: a scientist's jobs on volunteers within about an hour
OUR_TARGET = 600.0


def pymw_admin(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("pymw-admin", path=str(Path(sys.executable).parent)) or "pymw-admin"
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False, cwd=REPO)


def checked(what: str, result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode != 0:
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n"
                         f"{result.stdout.strip()[-3000:]}\n{result.stderr.strip()[-2000:]}")
    return result.stdout


def cold_source() -> str:
    """The release pinned to its commit (a build directory of its own, removed to start cold),
    from a git daemon on this machine's end of vm2's link."""
    repo = boinc_git.find()
    if repo is None:
        raise SystemExit(f"cold: {boinc_git.missing_reason()} (or pass --built)")
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", f"{boinc_git.RELEASE}^{{}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    shutil.rmtree(f"/opt/pymw-admin/boinc/{commit}", ignore_errors=True)
    subprocess.run(
        ["env", "HOME=/nonexistent", "git", "-c", "safe.directory=*", "daemon", "--detach",
         "--reuseaddr", "--export-all", f"--base-path={repo.parent}",
         f"--listen={second_host.HOST_ADDR}", f"--port={boinc_git.PORT}",
         f"--pid-file={GIT_PID}", "--user=nobody", "--group=nogroup", str(repo)], check=True)
    time.sleep(0.5)
    return f"git://{second_host.HOST_ADDR}/{repo.name}@{commit}"


def stop_git() -> None:
    if GIT_PID.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(GIT_PID.read_text().strip()), 15)
        GIT_PID.unlink(missing_ok=True)


def first_result(project_file: Path) -> float:
    """``pymw-admin run examples/monte_pi.py`` until its answer; the client is asked to contact
    the project every 10 s meanwhile, as a volunteer's would on its own within the next RPC."""
    done = threading.Event()

    def kick() -> None:
        while not done.wait(10):
            boinc_client.update(MASTER_URL)

    started = time.monotonic()
    threading.Thread(target=kick, daemon=True).start()
    try:
        out = checked("pymw-admin run examples/monte_pi.py", pymw_admin(
            "run", "--project-file", str(project_file), str(REPO / "examples" / "monte_pi.py"),
            "--", "--tasks", "2", "--darts", "100000"))
    finally:
        done.set()
    if not re.search(r"pi is about [0-9.]+", out):
        raise SystemExit(f"monte_pi printed no answer: {out[-1000:]}")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--built", action="store_true",
                        help="use the testbed's already built BOINC tree (not a cold build)")
    args = parser.parse_args()
    tree = boinc_tree.find()
    if args.built and tree is None:
        raise SystemExit(boinc_tree.missing_reason())
    bundles = bundle_bed.up().root.parent
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} CPU(s)")
    second_host.down()  # a host no project has been on
    vm2 = second_host.up()
    stages: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        project_file = Path(scratch) / "pymw-admin.toml"
        try:
            source = str(tree) if args.built else cold_source()
            started = time.monotonic()
            checked("init-project", pymw_admin(
                "init-project", NAME, "--host", "vm2", "--ssh-config", str(vm2.ssh_config),
                "--owner", OWNER, "--boinc-source", source, "--project-file", str(project_file)))
            stages.append((f"init-project ({'built tree' if args.built else 'cold build'})",
                           time.monotonic() - started))
            started = time.monotonic()
            checked("deploy-app", pymw_admin("deploy-app", "--project-file", str(project_file),
                                             "--bundles", str(bundles)))
            stages.append(("deploy-app", time.monotonic() - started))
            started = time.monotonic()
            boinc_client.up()
            boinc_client.attach(MASTER_URL)
            stages.append(("client attached", time.monotonic() - started))
            stages.append(("run monte_pi to its result", first_result(project_file)))
        finally:
            stop_git()
            boinc_client.detach(MASTER_URL)
            boinc_client.down()
            second_host.down()
    total = sum(seconds for _, seconds in stages)
    # the build is CPU-bound: a figure means little without the machine's load beside it
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} CPU(s)")
    for name, seconds in stages:
        print(f"  {name}: {seconds:.1f} s")
    ok = total <= OUR_TARGET
    print(f"time to first result: {total:.1f} s ({total / 60:.1f} min); BOINC's target "
          f"{BOINC_TARGET / 60:.0f} min: {BOINC_TARGET / total:.1f}x within it; "
          f"{'meets' if ok else 'MISSES'} our target of {OUR_TARGET / 60:.0f} min")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
